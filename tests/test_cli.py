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


MODEL_MODULE = """
# tests/conftest.py's resnet18_64px
import timm, torch

def make():
    torch.manual_seed(0)
    return timm.create_model(
        "resnet18",
        pretrained=False,
        zero_init_last=False,
        pretrained_cfg_overlay=dict(input_size=(3, 64, 64), crop_pct=1.0),
    )
"""


@pytest.mark.slow
def test_microscope_command_builds_the_site_of_a_module_function(tmp_path):
    """`featviz-widgets microscope module:function FOLDER --out ...` in a subprocess, on this
    checkout's code: the site's units hold `dataset_examples`' top-k."""
    from conftest import resnet18_64px
    from test_microscope import layer_data, write_photos

    from featviz_widgets import FeatureVisualizer

    write_photos(tmp_path / "photos")
    (tmp_path / "my_models.py").write_text(MODEL_MODULE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "featviz_widgets", "microscope", "my_models:make"]
    command += ["photos", "--out", "site", "--layers", "layer2", "--top-k", "2", "--no-progress"]
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"Wrote {tmp_path / 'site' / 'index.html'} (open it in a browser)."
    assert "1 image(s) could not be read" in run.stderr  # broken.jpg, skipped
    viz = FeatureVisualizer(resnet18_64px(), device="cpu")
    with pytest.warns(UserWarning, match="skipped"):
        examples = viz.dataset_examples(tmp_path / "photos", ["layer2"], k=2, progress=False)
    data = layer_data(tmp_path / "site", "layer2")
    assert [[e["image"] for e in top] for top in data["top"]] == [
        [index for index, _, _ in examples.top("layer2", unit)] for unit in range(128)
    ]


def test_microscope_command_with_a_timm_name_and_files(tmp_path, capsys):
    from test_microscope import read_script, write_photos

    write_photos(tmp_path / "photos")
    files = [str(tmp_path / "photos" / name) for name in ("chelsea.jpg", "coffee.jpg")]
    argv = ["microscope", "resnet18", *files, "--out", str(tmp_path / "site"), "--no-progress"]
    argv += ["--layers", "layer4", "--top-k", "1", "--image-format", "png", "--max-classes", "0"]
    assert main(argv) == 0
    _, (manifest,) = read_script(tmp_path / "site" / "data" / "manifest.js")
    assert manifest["input_size"] == [224, 224] and manifest["scanned"] == 2
    assert [layer["name"] for layer in manifest["layers"]] == ["layer4"]
    # at 224 px layer4's units see the whole image: each image once, its cell outlined on the page
    assert sorted(p.name for p in (tmp_path / "site" / "images").iterdir()) == ["0.png", "1.png"]
    from test_microscope import layer_data

    classes = layer_data(tmp_path / "site", "layer4")["classes"]
    assert classes == {"note": "Not computed (max_classes=0)."}
    assert "Wrote" in capsys.readouterr().out


def test_microscope_command_reports_bad_input(tmp_path, capsys):
    from test_microscope import write_photos

    write_photos(tmp_path / "photos")
    photos = str(tmp_path / "photos")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    cases = [
        (["resnet18", photos, "--out", str(tmp_path / "a"), "--layers", "layer9"], "Closest"),
        (["resnet18", photos, "--out", str(tmp_path / "mine")], "is not a microscope"),
        (["resnet_nope", photos, "--out", str(tmp_path / "b")], "is not a timm model"),
        (["no_such_module:make", photos, "--out", str(tmp_path / "c")], "cannot import"),
    ]
    for args, message in cases:
        assert main(["microscope", *args, "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("featviz-widgets microscope: ") and message in err, err
    assert not any((tmp_path / name).exists() for name in "abc")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
