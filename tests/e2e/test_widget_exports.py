"""What an HTML export of a notebook with the explorer shows where no kernel runs, opened from
file:// in Chromium with the network cut (as the README says):

- exported as executed (`nbclient` and `nbconvert --execute` save the widget state): the cell
  holds the widget view, which needs a widget manager from the internet: offline it is blank;
- exported with `--ClearMetadataPreprocessor.enabled=True` (the widget state left out): the
  static PNG of the view shows.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from pathlib import Path

import pytest

from .cdn import CdnFromNpm
from .hosts import EXPLORER
from .jupyter import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def executed():
    """The explorer's notebook, executed in a real kernel (its widget state saved)."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(EXPLORER), nbformat.v4.new_code_cell("explorer")]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    paths = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = paths  # the kernel imports this checkout
    try:
        nbclient.NotebookClient(notebook, timeout=180).execute()
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    assert "widgets" in notebook.metadata  # nbclient saved the widget state
    return notebook


def export(notebook, tmp_path, clear: bool):
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.ClearMetadataPreprocessor.enabled = clear
    html, _ = HTMLExporter(config=config).from_notebook_node(notebook)
    path = tmp_path / f"explorer{'-clear' if clear else ''}.html"
    path.write_text(html)
    return path


def open_offline(browser, path):
    context = browser.new_context(viewport={"width": 1200, "height": 1200})
    page = context.new_page()
    page.route(re.compile(r"^https?://"), lambda route: route.abort())  # no network: no CDN
    page.goto(path.as_uri())
    page.wait_for_timeout(1000)
    return context, page


# the pictures in the output cells, by their natural size
PICTURES = """() => [...document.querySelectorAll(".jp-OutputArea-output img")]
  .map((img) => [img.naturalWidth, img.naturalHeight])"""


def test_an_export_without_widget_state_shows_the_picture_offline(executed, browser, tmp_path):
    context, page = open_offline(browser, export(executed, tmp_path, clear=True))
    try:
        pictures = page.evaluate(PICTURES)
        assert len(pictures) == 1 and pictures[0][0] > 400 and pictures[0][1] > 100
    finally:
        context.close()


def test_an_export_with_widget_state_is_blank_offline(executed, browser, tmp_path):
    context, page = open_offline(browser, export(executed, tmp_path, clear=False))
    try:
        assert page.evaluate(PICTURES) == []
        views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]')
        assert views.count() == 1 and page.locator(".fvz").count() == 0
    finally:
        context.close()


def anywidget_url() -> str:
    """Where the widget manager looks for anywidget's front end: jsDelivr, at the version range
    the model declares (`_model_module_version`)."""
    from anywidget._version import _ANYWIDGET_SEMVER_VERSION

    return f"https://cdn.jsdelivr.net/npm/anywidget@{_ANYWIDGET_SEMVER_VERSION}/dist/index.js"


def export_urls() -> list[str]:
    """What an nbconvert export and an `embed_minimal_html` page load from CDNs."""
    from ipywidgets import embed
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    manager = "@jupyter-widgets/html-manager@{}/dist/embed-amd.js"
    return [
        exporter.require_js_url,
        exporter.jupyter_widgets_base_url + manager.format(exporter.html_manager_semver_range),
        re.search(r'src="([^"]+)"', embed.load_requirejs_template)[1],
        embed.DEFAULT_EMBED_REQUIREJS_URL,
        anywidget_url(),
    ]


@pytest.fixture(scope="module")
def cdn_cache(request) -> Path:
    """The npm packages behind `export_urls()`, fetched before any page asks (a route handler
    that waits on npm for seconds trips requirejs's 7 s load timeout)."""
    cache = Path(request.config.cache.mkdir("featviz-npm"))
    for url in export_urls():
        assert CdnFromNpm(cache, cache).file_for(url).is_file(), url
    return cache


def open_online(browser, cdn_cache, path):
    context = browser.new_context(viewport={"width": 1200, "height": 1200})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    cdn = CdnFromNpm(cdn_cache, path.parent)
    start = time.perf_counter()
    cdn.open(page, path.name)
    return context, page, cdn, errors, start


# how many colours a canvas shows
COLOURS = """(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4) {
    seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  }
  return seen.size;
}"""

NEEDS_A_KERNEL = [
    "input.fvz-filter", "select.fvz-layer", "input.fvz-all", "select.fvz-sort",
    "select.fvz-channel", "input.fvz-num", "select.fvz-scale", "input.fvz-file",
    "button.fvz-occlude", "button.fvz-looks", "select.fvz-looks-steps", "button.fvz-cancel",
]  # fmt: skip


def assert_a_snapshot(page, start: float, label: str) -> None:
    """The view paints the grid from the saved state, says within the pull timeout (+ slack)
    that it is a snapshot, disables what needs a kernel, and is not busy."""
    grid = page.locator("canvas.fvz-grid[data-state^='layer2|activation|9|']")
    grid.wait_for(state="attached", timeout=60_000)
    first = time.perf_counter() - start
    assert grid.evaluate(COLOURS) > 100  # nine viridis maps, not a blank canvas
    page.locator(".fvz.fvz-snapshot").wait_for(state="attached", timeout=15_000)
    marked = time.perf_counter() - start
    print(f"{label}: first paint {first:.1f} s, marked a snapshot after {marked:.1f} s")
    status = page.locator(".fvz-status-text")
    assert status.inner_text().startswith("Snapshot: no kernel answered")
    assert page.locator(".fvz").get_attribute("data-busy") == "0"
    assert page.locator(".fvz progress").is_hidden()
    for selector in NEEDS_A_KERNEL:
        assert page.locator(selector).is_disabled(), selector
    assert page.locator("button.fvz-export").is_enabled()  # drawn here: no kernel needed
    assert page.locator("select.fvz-export-view").is_enabled()
    channel = page.locator("select.fvz-channel").input_value()
    painted = grid.get_attribute("data-state")
    box = grid.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # another tile
    page.wait_for_timeout(1000)
    assert page.locator("select.fvz-channel").input_value() == channel
    assert page.locator("canvas.fvz-grid").get_attribute("data-state") == painted
    assert status.inner_text().startswith("Snapshot: no kernel answered")  # still, not "working…"


def saved_payloads(state: dict) -> dict[str, int]:
    """The explorer's payload traits in a saved widget state, each by the bytes saved with it."""
    from featviz_widgets.widget.panels import PAYLOADS

    (model,) = (m for m in state.values() if m["state"].get("_model_name") == "AnyModel")
    buffers = {tuple(b["path"]): len(base64.b64decode(b["data"])) for b in model.get("buffers", [])}
    saved = {}
    for name in PAYLOADS:
        payload = model["state"].get(name) or {}
        assert "chunked" not in payload, name  # a saved trait holds its bytes itself
        if payload:
            saved[name] = buffers[(name, "data")]
    return saved


def test_an_export_with_widget_state_paints_a_snapshot_online(
    executed, browser, cdn_cache, tmp_path
):
    """nbconvert's export, its widget manager, requirejs and anywidget served from npm as the
    CDNs would: the view paints what the notebook saved and says it is a snapshot."""
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    saved = saved_payloads(state)
    assert saved["_grid"] == 9 * 14 * 14 and saved["_image"] > 0, saved  # uint8 tiles
    path = export(executed, tmp_path, clear=False)
    context, page, cdn, errors, start = open_online(browser, cdn_cache, path)
    try:
        assert_a_snapshot(page, start, "nbconvert export")
        assert anywidget_url() in cdn.served and cdn.dropped_integrity == []
        assert errors == []
    finally:
        context.close()


def test_embed_minimal_html_paints_a_snapshot_online(browser, cdn_cache, tmp_path):
    """`ipywidgets.embed.embed_minimal_html(path, views=[explorer])` writes a page that paints
    the explorer (its state in full: `get_state` keeps what drop_defaults would drop)."""
    from ipywidgets.embed import embed_minimal_html

    names: dict = {}
    exec(EXPLORER, names)
    explorer = names["explorer"]
    try:
        explorer.wait(timeout=120)
        path = tmp_path / "minimal.html"
        embed_minimal_html(path, views=[explorer], title="explorer")
    finally:
        explorer.close()
    html = path.read_text()
    state = json.loads(re.search(r'widget-state\+json">(.*?)</script>', html, re.S)[1])["state"]
    assert saved_payloads(state)["_grid"] == 9 * 14 * 14
    context, page, cdn, errors, start = open_online(browser, cdn_cache, path)
    try:
        assert_a_snapshot(page, start, "embed_minimal_html")
        assert anywidget_url() in cdn.served
        assert cdn.dropped_integrity == [export_urls()[2]]  # see tests/e2e/cdn.py
        assert errors == []
    finally:
        context.close()
