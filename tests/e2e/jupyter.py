"""Start a sandboxed Jupyter server and Debian's Chromium, and drive notebooks in it.

Shared by the e2e fixtures (`conftest.py`) and `benchmarks/widget_latency.py`. The server
runs on 127.0.0.1 with a fixed token; its config, data, runtime and settings dirs and HOME live
in a temp folder, and the repository is on the kernel's PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
TOKEN = "featviz-e2e-token"
CHROMIUM = os.environ.get("FEATVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(settings: Path) -> None:
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {"theme": "JupyterLab Light"},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
            "autoStartDefaultKernel": True
        },
    }
    for name, content in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


class JupyterServer:
    """Handle on the running server: its URL, token and notebook folder."""

    def __init__(self, url: str, root: Path, process: subprocess.Popen) -> None:
        self.url = url
        self.root = root
        self.process = process

    def page_url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.url}{path}{sep}token={TOKEN}"

    def api(self, method: str, path: str) -> bytes:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()


@contextlib.contextmanager
def running_server(base: Path, code: Path = REPO) -> Iterator[JupyterServer]:
    """A JupyterLab server (which also serves Notebook 7 at /notebooks/) rooted in `base`,
    whose kernels import featviz_widgets from the checkout `code`."""
    root = base / "work"
    root.mkdir()
    dirs = {
        "HOME": base / "home",
        "JUPYTER_CONFIG_DIR": base / "config",
        "JUPYTER_DATA_DIR": base / "data",
        "JUPYTER_RUNTIME_DIR": base / "runtime",
        "IPYTHONDIR": base / "ipython",
        "JUPYTERLAB_SETTINGS_DIR": base / "settings",
        "JUPYTERLAB_WORKSPACES_DIR": base / "workspaces",
    }
    env = dict(os.environ)
    for key, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    _write_settings(dirs["JUPYTERLAB_SETTINGS_DIR"])
    port = _free_port()
    log = open(base / "server.log", "w")  # noqa: SIM115 - closed below, whatever happens
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.disable_check_xsrf=True",
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",
            f"--ServerApp.root_dir={root}",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = JupyterServer(f"http://127.0.0.1:{port}", root, process)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.api("GET", "/api/status")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.close()
                raise RuntimeError(
                    "Jupyter server did not start:\n" + (base / "server.log").read_text()[-3000:]
                ) from None
            time.sleep(0.25)
    try:
        yield server
    finally:
        try:
            server.api("POST", "/api/shutdown")
            process.wait(timeout=15)
        except Exception:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def launch_browser(playwright):
    """Debian's Chromium with the flags that make it behave in containers and CI."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def write_notebook(path: Path, *sources: str) -> Path:
    """A fresh notebook of code cells (fresh copies: autosaved widget state must not leak)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


PIXEL_HASH = """(selector) => {
  const canvas = document.querySelector(selector);
  if (!canvas || !canvas.width || !canvas.height) return "";
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let a = 2166136261, b = 0;
  for (let i = 0; i < data.length; i += 1) { a = Math.imul(a ^ data[i], 16777619); b += data[i]; }
  return `${canvas.width}x${canvas.height}:${a >>> 0}:${b}`;
}"""


def wait_canvas(page, scope_selector: str, name: str, predicate_js: str, timeout=30_000):
    """Wait until `predicate_js(state)` holds for the canvas's data-state attribute."""
    page.wait_for_function(
        f"""() => {{
            const c = document.querySelector({json.dumps(scope_selector + " canvas.fvz-" + name)});
            const state = c ? (c.dataset.state || "") : "";
            return ({predicate_js})(state);
        }}""",
        timeout=timeout,
    )


def canvas_state(page, scope_selector: str, name: str) -> str:
    """The `data-state` the widget stamped on its last paint of canvas `name`."""
    locator = page.locator(f"{scope_selector} canvas.fvz-{name}")
    return locator.get_attribute("data-state") or ""


def pixels(page, scope_selector: str, name: str) -> str:
    return page.evaluate(PIXEL_HASH, f"{scope_selector} canvas.fvz-{name}")


def app_ready(page) -> None:
    """Wait until the notebook is the current widget and its kernel session is ready."""
    page.wait_for_function(
        """() => {
            const app = window.jupyterapp;
            const panel = app && app.shell && app.shell.currentWidget;
            return !!(panel && panel.sessionContext && panel.content && panel.content.widgets
                && panel.content.widgets.length > 0);
        }""",
        timeout=60_000,
    )
    page.evaluate("async () => { await jupyterapp.shell.currentWidget.sessionContext.ready; }")


def run_all(page) -> None:
    # Fire and forget: awaiting the command's promise can hang the evaluate call.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def set_theme(page, theme: str) -> None:
    if page.evaluate("() => document.body.dataset.jpThemeName") == theme:
        return
    page.evaluate(
        "(theme) => { window.jupyterapp.commands.execute('apputils:change-theme', {theme}); }",
        theme,
    )
    page.wait_for_function(
        "(theme) => document.body.dataset.jpThemeName === theme", arg=theme, timeout=30_000
    )
