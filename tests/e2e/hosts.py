"""Serve the explorer from hosts other than JupyterLab (Voila, `marimo run`), each a real
server on 127.0.0.1 whose kernel imports this checkout, for Chromium to open."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from .jupyter import REPO, _free_port, write_notebook

# One explorer on a small random resnet18: every host shows the same view.
EXPLORER = """\
import timm, torch
from featviz_widgets.widget.explorer import FeatureExplorer

torch.manual_seed(0)
model = timm.create_model(
    "resnet18", pretrained=False, pretrained_cfg_overlay=dict(input_size=(3, 112, 112)),
)
explorer = FeatureExplorer(model, layer="layer2", num_features=9)
"""

MARIMO_APP = """\
import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
{explorer}
    shown = mo.ui.anywidget(explorer)
    shown
    return


if __name__ == "__main__":
    app.run()
"""


def _voila(root: Path, port: int, explorer: str) -> list[str]:
    write_notebook(root / "explorer.ipynb", explorer, "explorer")
    return [
        sys.executable, "-m", "voila", "explorer.ipynb", "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1",
    ]  # fmt: skip


def _marimo(root: Path, port: int, explorer: str) -> list[str]:
    source = MARIMO_APP.format(explorer=textwrap.indent(explorer, "    "))
    (root / "app.py").write_text(source)
    return [
        sys.executable, "-m", "marimo", "run", "app.py", "--headless", "--no-token",
        f"--port={port}", "--host=127.0.0.1",
    ]  # fmt: skip


PANEL_APP = """\
import panel as pn

pn.extension("ipywidgets")
{explorer}
pn.panel(explorer).servable()
"""


def _panel(root: Path, port: int, explorer: str) -> list[str]:
    (root / "app.py").write_text(PANEL_APP.format(explorer=explorer))
    return [
        sys.executable, "-m", "panel", "serve", "app.py", f"--port={port}",
        "--address=127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}",
    ]  # fmt: skip


HOSTS = {"voila": _voila, "marimo": _marimo, "panel": _panel}
PAGES = {"panel": "app"}  # where a host serves the page, when not at its root


def route_anywidget_locally(page) -> None:
    """ipywidgets_bokeh (Panel) loads anywidget's front end from unpkg.com; serve the copy
    the installed anywidget ships instead (an AMD module, as that loader wants): these tests
    run offline."""
    import anywidget

    amd = (Path(anywidget.__file__).parent / "nbextension" / "index.js").read_text()
    page.route(
        "https://unpkg.com/anywidget@**",
        lambda route: route.fulfill(body=amd, content_type="application/javascript"),
    )


@contextlib.contextmanager
def serving(
    host: str, base: Path, explorer: str = EXPLORER, theme: str | None = None
) -> Iterator[str]:
    """`host` serving the explorer (made by the source `explorer`) from a fresh folder under
    `base`; yields its page's URL. `theme` ("dark"): marimo's user setting `display.theme`."""
    root = base / host
    root.mkdir()
    port = _free_port()
    env = dict(os.environ, HOME=str(base / "home"), MPLBACKEND="Agg")
    env["XDG_CONFIG_HOME"] = str(base / "home" / ".config")
    if theme is not None:  # marimo's user config file, where marimo looks for it
        config = base / "home" / ".config" / "marimo" / "marimo.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'[display]\ntheme = "{theme}"\n')
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["JUPYTER_CONFIG_DIR"] = str(base / "jupyter-config")
    log = open(base / f"{host}.log", "w")  # noqa: SIM115 - closed below, whatever happens
    process = subprocess.Popen(
        HOSTS[host](root, port, explorer), cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/{PAGES.get(host, '')}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except (OSError, urllib.error.URLError):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    text = (base / f"{host}.log").read_text()[-3000:]
                    raise RuntimeError(f"{host} did not start:\n{text}") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
