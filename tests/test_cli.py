"""`featviz-widgets demo`: copying the notebook, argument handling, clear errors, a failing run
reported as one, and JupyterLab really serving the copy. (The passing `--execute` run of the
quickstart notebook is tests/test_widget_notebook.py.)"""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from featviz_widgets.cli import command as _cli
from featviz_widgets.cli.command import DemoError, copy_notebook, main
from featviz_widgets.cli.demo_run import NOTEBOOK, SAVED_PNGS

REPO = Path(__file__).resolve().parents[1]


def test_notebook_has_one_source_and_ships_in_the_wheel():
    tomllib = pytest.importorskip("tomllib")
    assert _cli.packaged_notebook() == REPO / "notebooks" / NOTEBOOK
    assert not (REPO / "featviz_widgets" / "notebooks").exists()  # no second copy to drift
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert (
        wheel["force-include"][f"notebooks/{NOTEBOOK}"] == f"featviz_widgets/notebooks/{NOTEBOOK}"
    )
    assert project["project"]["scripts"]["featviz-widgets"] == "featviz_widgets.cli:main"
    extras = project["project"]["optional-dependencies"]
    assert set(extras["demo"]) <= set(extras["test"])


def test_python_m_runs_the_command(monkeypatch, capsys):
    """`python -m featviz_widgets` is the `featviz-widgets` command (run here in-process, so the
    quick tier runs `__main__` too; the demo tests start it as a subprocess)."""
    monkeypatch.setattr(sys, "argv", ["featviz_widgets", "demo", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("featviz_widgets", run_name="__main__")
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage: featviz-widgets demo") and "--execute" in usage


def test_copy_creates_then_keeps_an_edited_copy_unless_forced(tmp_path):
    folder = tmp_path / "new" / "demo"
    target, action = copy_notebook(folder)
    assert action == "created" and target == folder / NOTEBOOK
    assert target.read_bytes() == _cli.packaged_notebook().read_bytes()
    assert copy_notebook(folder) == (target, "unchanged")
    target.write_text(target.read_text().replace("quickstart", "my notes"))
    edited = target.read_bytes()
    assert copy_notebook(folder) == (target, "kept")
    assert target.read_bytes() == edited
    assert copy_notebook(folder, force=True) == (target, "replaced")
    assert target.read_bytes() == _cli.packaged_notebook().read_bytes()


def test_dir_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    with pytest.raises(DemoError, match="not a folder"):
        copy_notebook(tmp_path / "taken")
    assert main(["demo", "--execute", "--dir", str(tmp_path / "taken")]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_unreadable_copy_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("nbclient")
    (tmp_path / NOTEBOOK).write_text("{ not json")  # kept: it differs from the packaged one
    assert main(["demo", "--execute", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "--force restores the demo notebook" in err


def test_arguments(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--execute", "--port", "9999"])
    assert exit_info.value.code == 2
    assert "--execute does not" in capsys.readouterr().err
    argv = _cli._lab_argv(Path("/d/q.ipynb"), 9999, True, ["--ip=0.0.0.0"])
    assert argv[0] == "/d/q.ipynb" and argv[-1] == "--ip=0.0.0.0"
    assert {"--port=9999", "--no-browser"} <= set(argv)
    assert ("--allow-root" in argv) == (hasattr(os, "geteuid") and os.geteuid() == 0)
    assert _cli._lab_argv(Path("q.ipynb"), None, False, []) in (
        ["q.ipynb"],
        ["q.ipynb", "--allow-root"],
    )


@pytest.mark.parametrize(("missing", "args"), [("jupyterlab", []), ("nbclient", ["--execute"])])
def test_missing_jupyter_names_the_install_command(missing, args, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` fail
    assert main(["demo", "--dir", str(tmp_path), *args]) == 1
    err = capsys.readouterr().err
    assert f"{missing} is not installed" in err
    assert "pip install 'featviz-widgets[demo]'" in err and "-e '.[demo]'" in err


@pytest.mark.timeout(180)
def test_failing_notebook_fails_the_run_with_reasons(tmp_path, capsys):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1 / 0")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, tmp_path / NOTEBOOK)  # a user's edited copy: kept, and run as it is
    stale = tmp_path / SAVED_PNGS[1]
    stale.write_bytes(b"old")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert main(["demo", "--execute", "--dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "Keeping your edited" in out
    assert "demo FAILED" in err
    assert "code cell 2 raised ZeroDivisionError" in err
    assert "no cell displayed a widget" in err
    assert f"{SAVED_PNGS[0]} was not saved" in err
    assert f"{SAVED_PNGS[1]} is left from an earlier run" in err
    assert "demo OK" not in out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_demo_starts_jupyterlab_on_the_copy(tmp_path):
    pytest.importorskip("jupyterlab")
    folder, token, port = tmp_path / "demo", "featviz-cli-test", _free_port()
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for key in ("HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        env[key] = str(tmp_path / key.lower())
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / "settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "workspaces")
    command = [sys.executable, "-m", "featviz_widgets", "demo", "--dir", str(folder)]
    command += ["--no-browser", "--port", str(port), "--", "--ip=127.0.0.1"]
    command += [f"--IdentityProvider.token={token}"]
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)

    def api(path: str, method: str = "GET") -> bytes:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            method=method,
            headers={"Authorization": f"token {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                api("/api/status")
                break
            except OSError:
                assert server.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.25)
        model = json.loads(api(f"/api/contents/{NOTEBOOK}"))
        assert model["type"] == "notebook"  # served from --dir, which is the server's root
        assert "sample_image()" in json.dumps(model["content"])
        assert b"JupyterLab" in api(f"/lab/tree/{NOTEBOOK}")
        api("/api/shutdown", method="POST")
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
    assert (folder / NOTEBOOK).read_bytes() == _cli.packaged_notebook().read_bytes()
    text = log.read_text()
    assert "Copied the quickstart notebook" in text and "Starting JupyterLab" in text
