"""FeatureExplorer in a real JupyterLab 4 / Notebook 7, driven in Debian's Chromium.

Each test writes a fresh notebook that builds an explorer on a timm resnet18 (random weights,
112 px input) and mirrors the explorer's traits into `state.json` from a trait observer, so
the test sees what Python sees. The widget stamps every canvas paint into `data-state` /
`data-paints` attributes; pixels are compared through a hash of `getImageData`.

Screenshots go to the git-ignored test-artifacts/ folder. To refresh the README's picture
(docs/screenshot.png) from the JupyterLab test, run it deliberately:
`FEATVIZ_UPDATE_SCREENSHOT=1 python3 -m pytest
tests/e2e/test_widget_browser.py::test_jupyterlab_controls_repaint_and_reach_python`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from . import jupyter
from .jupyter import (
    ARTIFACTS,
    PIXEL_HASH,
    REPO,
    app_ready,
    canvas_state,
    pixels,
    run_all,
    set_theme,
    wait_canvas,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stop_kernels")]
README_SCREENSHOT = REPO / "docs" / "screenshot.png"


SETUP = """\
import json, pathlib, threading, time
import timm, torch
from featviz_widgets.widget.explorer import FeatureExplorer

torch.manual_seed(0)
model = timm.create_model(
    "resnet18", pretrained=False, zero_init_last=False,
    pretrained_cfg_overlay=dict(input_size=(3, 112, 112), crop_pct=1.0),
)
# A slow stem (0.2 s per call): the engine is fast enough that a sweep of this small model
# would end before the test can change the sort mode and cancel it. A subclass, not a hook:
# the explorer works on a twin of the model, which has the model's classes, not its hooks.
class SlowStem(type(model.conv1)):
    def forward(self, x):
        time.sleep(0.2)
        return super().forward(x)

model.conv1.__class__ = SlowStem
explorer = FeatureExplorer(model, layer="layer2", num_features=9, stride=4)

STATE, LOCK = pathlib.Path("state.json"), threading.Lock()
KEYS = (
    "layer", "sort_by", "channel", "num_features", "position", "color_scale", "error",
    "looks_for_steps",
)

def dump(change=None):
    state = {key: getattr(explorer, key) for key in KEYS}
    state["image"] = explorer._image.get("name", "")
    occlusion = explorer._occlusion
    keys = ("done", "total", "complete", "cancelled", "channel")
    state["occlusion"] = {k: occlusion.get(k) for k in keys}
    with LOCK:
        STATE.with_suffix(".tmp").write_text(json.dumps(state))
        STATE.with_suffix(".tmp").replace(STATE)

explorer.observe(dump)
dump()
"""


def write_notebook(server, name: str, setup: str = SETUP) -> Path:
    """A fresh copy each run, and no state file from an earlier test."""
    (server.root / "state.json").unlink(missing_ok=True)
    return jupyter.write_notebook(server.root / name, setup, "explorer")


def read_state(server) -> dict:
    try:
        return json.loads((server.root / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_state(server, predicate, timeout: float = 30.0, what: str = "") -> dict:
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = read_state(server)
        if state and predicate(state):
            return state
        time.sleep(0.05)
    raise AssertionError(f"Python state never satisfied {what}: last state {state}")


def save_screenshot(page, widget: str, name: str, readme: bool = False) -> Path:
    """Keep a picture of the widget in test-artifacts/ (git-ignored).

    The README's picture, docs/screenshot.png, is tracked: a test run never changes it. With
    `readme` and FEATVIZ_UPDATE_SCREENSHOT=1 in the environment this shot replaces it.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    page.locator(widget).screenshot(path=str(shot))
    if readme and os.environ.get("FEATVIZ_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, README_SCREENSHOT)
    return shot


def make_upload(path: Path) -> Path:
    """A striped test picture, unlike the bundled sample."""
    y, x = np.mgrid[0:160, 0:200]
    rgb = np.stack([(x * 3) % 256, (y * 5) % 256, ((x + y) // 8 % 2) * 255], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def test_jupyterlab_controls_repaint_and_reach_python(jupyter_server, page, tmp_path):
    server = jupyter_server
    write_notebook(server, "explorer_lab.ipynb")
    opened = time.perf_counter()
    page.goto(server.page_url("/lab/tree/explorer_lab.ipynb?reset"))
    scope = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    app_ready(page)
    set_theme(page, "JupyterLab Light")
    run_all(page)
    widget = f"{scope} .fvz"
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer2|activation|9|')", 90_000)
    first = time.perf_counter() - opened
    state = wait_state(server, lambda s: s["layer"] == "layer2", what="initial layer2")
    page.locator(f"{widget} canvas.fvz-input[data-state]").wait_for(state="attached")

    # layer change: one forward, a new grid
    before = pixels(page, widget, "grid")
    start = time.perf_counter()
    page.locator(f"{widget} select.fvz-layer").select_option("layer1")
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer1|')")
    print(
        f"jupyterlab: first paint {first:.1f} s, layer repaint {time.perf_counter() - start:.2f} s"
    )
    assert pixels(page, widget, "grid") != before
    state = wait_state(server, lambda s: s["layer"] == "layer1", what="layer1")

    # sort mode: re-ranked tiles, no model run
    before = pixels(page, widget, "grid")
    page.locator(f"{widget} select.fvz-sort").select_option("variance")
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer1|variance|')")
    assert pixels(page, widget, "grid") != before
    wait_state(server, lambda s: s["sort_by"] == "variance", what="sort_by variance")

    # the "looks for" steps menu reaches the kernel's trait
    assert wait_state(server, lambda s: "looks_for_steps" in s)["looks_for_steps"] is None
    page.locator(f"{widget} select.fvz-looks-steps").select_option("64")
    wait_state(server, lambda s: s["looks_for_steps"] == 64, what="looks_for_steps 64")

    # channel selector: the third channel of the ranking
    before = pixels(page, widget, "unit")
    options = page.locator(f"{widget} select.fvz-channel option")
    third = int(options.nth(2).get_attribute("value"))
    page.locator(f"{widget} select.fvz-channel").select_option(str(third))
    wait_canvas(page, widget, "unit", f"(s) => s === 'layer1|{third}'")
    assert pixels(page, widget, "unit") != before
    wait_state(server, lambda s: s["channel"] == third, what=f"channel {third}")

    # tile click: the 5th tile (row 1, col 1 of a 3x3 grid) selects its channel
    grid = page.locator(f"{widget} canvas.fvz-grid")
    channels = [int(c) for c in grid.get_attribute("data-channels").split(",")]
    box = grid.bounding_box()
    tile = (box["width"] - 2 * 4) / 3
    before = pixels(page, widget, "unit")
    grid.click(position={"x": tile * 1.5 + 4, "y": (tile + 15 + 4) + 15 + tile / 2})
    wait_canvas(page, widget, "unit", f"(s) => s === 'layer1|{channels[4]}'")
    assert pixels(page, widget, "unit") != before
    wait_state(server, lambda s: s["channel"] == channels[4], what="tile-click channel")
    grid.hover(position={"x": tile / 2, "y": 15 + tile / 2})
    tooltip = page.locator(f"{widget} .fvz-tooltip")
    tooltip.wait_for(state="visible")
    assert tooltip.inner_text().startswith(f"ch {channels[0]} (")

    # occlusion: click a unit on the channel view; partial maps stream in (625 placements)
    before = pixels(page, widget, "occlusion")
    unit = page.locator(f"{widget} canvas.fvz-unit")
    ubox = unit.bounding_box()
    unit.click(position={"x": ubox["width"] * 0.3, "y": ubox["height"] * 0.6})
    partial = "/\\|([1-9]\\d*)\\/(\\d+)$/"
    wait_canvas(
        page,
        widget,
        "occlusion",
        f"(s) => s.startsWith('layer1|{channels[4]}|') && {partial}.test(s)",
    )
    assert pixels(page, widget, "occlusion") != before
    # the kernel stays responsive during the sweep: a sort change repaints at once
    page.locator(f"{widget} select.fvz-sort").select_option("activation")
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer1|activation|')")
    done, total = canvas_state(page, widget, "occlusion").rsplit("|", 1)[1].split("/")
    assert int(done) < int(total), "the sweep ended before the sort change was answered"
    assert page.locator(f"{widget} .fvz-progress").is_visible()
    page.locator(f"{widget} button.fvz-cancel").click()
    state = wait_state(server, lambda s: s["occlusion"]["cancelled"], what="occlusion cancelled")
    assert not state["occlusion"]["complete"] and state["error"] == ""
    page.wait_for_function(
        "(sel) => document.querySelector(sel).textContent.includes('cancelled')",
        arg=f"{widget} figure:has(canvas.fvz-occlusion) figcaption",
    )
    # run it again for that unit, to the end
    page.locator(f"{widget} button.fvz-occlude").click()
    wait_canvas(
        page,
        widget,
        "occlusion",
        f"(s) => s.startsWith('layer1|{channels[4]}|') && /\\|(\\d+)\\/\\1$/.test(s)",
        60_000,
    )
    state = wait_state(server, lambda s: s["occlusion"]["complete"], what="occlusion done")
    assert state["position"] and state["occlusion"]["channel"] == channels[4] == state["channel"]
    expected = [int(28 * 0.6), int(28 * 0.3)]  # layer1 is 28x28 at 112 px
    assert all(abs(a - b) <= 1 for a, b in zip(state["position"], expected)), state["position"]
    save_screenshot(page, widget, "jupyterlab-widget.png", readme=True)

    # upload a picture: the input canvas and the grid repaint, Python sees the new image
    before_input = pixels(page, widget, "input")
    before_grid = pixels(page, widget, "grid")
    picture = make_upload(tmp_path / "stripes.png")
    page.locator(f"{widget} input.fvz-file").set_input_files(str(picture))
    wait_state(server, lambda s: s["image"] == "stripes.png", what="uploaded image")
    wait_canvas(page, widget, "input", "(s) => s.startsWith('stripes.png|')")
    page.wait_for_function(
        "([sel, old]) => (" + PIXEL_HASH + ")(sel) !== old",
        arg=[f"{widget} canvas.fvz-grid", before_grid],
    )
    assert pixels(page, widget, "input") != before_input

    # an unreadable upload gives a message in the widget, the image stays
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.locator(f"{widget} input.fvz-file").set_input_files(str(bad))
    error = page.locator(f"{widget} .fvz-error")
    error.wait_for(state="visible")
    assert "Could not read 'notes.png'" in error.inner_text()
    assert wait_state(server, lambda s: "notes.png" in s["error"])["image"] == "stripes.png"

    # export from the widget: a PNG download of the grid
    with page.expect_download() as download:
        page.locator(f"{widget} button.fvz-export").click()
    saved = tmp_path / "export.png"
    download.value.save_as(saved)
    assert Image.open(saved).size[0] > 50


def test_notebook7_layer_change_and_tile_click(jupyter_server, page):
    server = jupyter_server
    write_notebook(server, "explorer_nb7.ipynb")
    opened = time.perf_counter()
    page.goto(server.page_url("/notebooks/explorer_nb7.ipynb?reset"))
    app_ready(page)
    run_all(page)
    widget = ".jp-NotebookPanel .fvz"
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer2|activation|9|')", 90_000)
    first = time.perf_counter() - opened
    before = pixels(page, widget, "grid")
    start = time.perf_counter()
    page.locator(f"{widget} select.fvz-layer").select_option("layer3")
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer3|')")
    print(
        f"notebook 7: first paint {first:.1f} s, layer repaint {time.perf_counter() - start:.2f} s"
    )
    assert pixels(page, widget, "grid") != before
    wait_state(server, lambda s: s["layer"] == "layer3", what="layer3")

    grid = page.locator(f"{widget} canvas.fvz-grid")
    channels = [int(c) for c in grid.get_attribute("data-channels").split(",")]
    tile = (grid.bounding_box()["width"] - 2 * 4) / 3
    grid.click(position={"x": tile * 2.5 + 8, "y": 15 + tile / 2})  # third tile
    wait_canvas(page, widget, "unit", f"(s) => s === 'layer3|{channels[2]}'")
    wait_state(server, lambda s: s["channel"] == channels[2], what="tile-click channel")
    save_screenshot(page, widget, "notebook7-widget.png")


LATE_VIEWS = """\
import timm, torch
from featviz_widgets.widget.explorer import FeatureExplorer

torch.manual_seed(0)
model = timm.create_model(
    "resnet18", pretrained=False, pretrained_cfg_overlay=dict(input_size=(3, 112, 112)),
)
explorer = FeatureExplorer(model, layer="layer2", num_features=9)
explorer.wait(120)
explorer.layer = "layer3"
_ = explorer.wait(120)  # all of it published before any view exists (and none shown here)
"""

# Every view of the page: its grid's data-state, its layer and how many options its Layer and
# Channel menus hold.
VIEWS = """(scope) => [...document.querySelectorAll(scope + " .fvz")].map((root) => ({
  grid: root.querySelector("canvas.fvz-grid").dataset.state || "",
  layer: root.querySelector("select.fvz-layer").value,
  layers: root.querySelectorAll("select.fvz-layer option").length,
  channels: root.querySelectorAll("select.fvz-channel option").length,
}))"""


def wait_views(page, scope: str, count: int) -> list[dict]:
    """Wait until `count` views paint layer3's grid with both menus filled; their states."""
    try:
        page.wait_for_function(
            f"""(scope) => {{
                const views = ({VIEWS})(scope);
                return views.length === {count} && views.every((v) => v.grid.startsWith("layer3|")
                    && v.layer === "layer3" && v.layers > 1 && v.channels === 256);
            }}""",
            arg=scope,
            timeout=90_000,
        )
    except PlaywrightTimeout:
        views = page.evaluate(VIEWS, scope)
        raise AssertionError(f"the views never all painted: {views}") from None
    return page.evaluate(VIEWS, scope)


def test_a_late_view_and_a_reloaded_page_paint_the_current_state(jupyter_server, page):
    """Views that connect after the explorer finished (a second `display`, a reload) pull the
    current state: the grid of the layer shown, with filled menus, not "working…"."""
    server = jupyter_server
    cells = (LATE_VIEWS, "explorer", "_ = explorer.wait(60)\ndisplay(explorer)")
    jupyter.write_notebook(server.root / "late.ipynb", *cells)
    page.goto(server.page_url("/lab/tree/late.ipynb?reset"))
    scope = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    app_ready(page)
    run_all(page)
    first, second = wait_views(page, scope, 2)
    assert first["grid"] == second["grid"]
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000
    )
    page.reload()
    app_ready(page)
    reloaded = wait_views(page, scope, 2)
    assert [view["grid"] for view in reloaded] == [first["grid"]] * 2
    assert not page.locator(f"{scope} .fvz.fvz-snapshot").count()


# The widget's controls and canvases that stick out of its output sideways, and how far the
# output scrolls sideways.
OVERFLOW = """(scope) => {
  const root = document.querySelector(scope + " .fvz");
  const area = root.closest(".jp-OutputArea-output") || root.parentElement;
  const right = Math.min(root.getBoundingClientRect().right, area.getBoundingClientRect().right);
  const parts = root.querySelectorAll("select, input, button, label, canvas");
  const out = [...parts].filter((el) => el.offsetParent !== null)
    .filter((el) => el.getBoundingClientRect().right > right + 0.5)
    .map((el) => `${el.tagName.toLowerCase()}.${el.className}`);
  return { out, scroll: Math.max(0, area.scrollWidth - area.clientWidth) };
}"""


def test_jupyterlab_at_600px_with_the_file_browser_open_shows_every_control(jupyter_server, page):
    server = jupyter_server
    jupyter.write_notebook(server.root / "narrow.ipynb", LATE_VIEWS, "explorer")
    page.set_viewport_size({"width": 600, "height": 1000})
    page.goto(server.page_url("/lab/tree/narrow.ipynb?reset"))
    scope = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    app_ready(page)
    page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
    page.wait_for_function("() => !!document.querySelector('.jp-FileBrowser:not(.lm-mod-hidden)')")
    run_all(page)
    wait_views(page, scope, 1)
    page.wait_for_timeout(300)  # the layout settles after the last paint
    assert page.evaluate(OVERFLOW, scope) == {"out": [], "scroll": 0}
    save_screenshot(page, f"{scope} .fvz", "jupyterlab-600px.png")


# WCAG contrast of every visible text in the widget against what is behind it: DOM text (and
# the values and placeholders of its inputs) from computed styles, composited over the
# backgrounds of its ancestors; canvas text from its pixels (the most opaque pixel of the tile
# captions and of the colour bar's labels is the ink) over the widget's background. Given the
# widget's selector, or its element (`locator.evaluate`: in a shadow root, as marimo shows it).
CONTRAST = """(selector) => {
  const root = typeof selector === "string" ? document.querySelector(selector) : selector;
  const up = (n) => n.parentElement || n.getRootNode().host || null;  // through shadow roots
  const parse = (css) => {  // rgb()/rgba(), or color(srgb ...) in 0-1 (marimo's theme)
    const srgb = css.match(/color\\(srgb ([^)]*)\\)/);
    const found = srgb || css.match(/rgba?\\(([^)]*)\\)/) || [, ""];
    const v = found[1].split(/[\\s,/]+/).filter(Boolean);
    const k = srgb ? 255 : 1;
    return v.length < 3 ? null : [v[0] * k, v[1] * k, v[2] * k, v.length > 3 ? +v[3] : 1];
  };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3]));
  const lum = (c) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const ratio = (a, b) => (Math.max(lum(a), lum(b)) + 0.05) / (Math.min(lum(a), lum(b)) + 0.05);
  const backdrop = (el) => {
    const layers = [];
    for (let n = el; n; n = up(n)) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) layers.push(c);
      if (c && c[3] >= 1) break;
    }
    return layers.reverse().reduce((under, c) => [...over(c, under), 1], [255, 255, 255, 1]);
  };
  const opacity = (el) => {
    let o = 1;
    for (let n = el; n; n = up(n)) o *= +getComputedStyle(n).opacity;
    return o;
  };
  const page = backdrop(root);
  const out = [];
  const add = (what, ink, behind, alpha = 1) => {
    const mix = (c) => c.map((v, i) => v * alpha + page[i] * (1 - alpha));
    out.push({ what, ratio: ratio(mix(over(ink, behind)), mix(behind)) });
  };
  for (const el of root.querySelectorAll("*")) {
    if (!el.getClientRects().length || getComputedStyle(el).visibility === "hidden") continue;
    const alpha = opacity(el);
    if (alpha === 0) continue;
    const style = getComputedStyle(el);
    const name = `${el.tagName.toLowerCase()}.${el.getAttribute("class") || ""}`;
    const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const field = el.matches("select, input[type=number], input[type=search]");
    const ink = parse(el instanceof SVGElement ? style.fill : style.color);
    const label = `${name} "${el.textContent.trim().slice(0, 30)}"`;
    if (text || field) add(label, ink, backdrop(el), alpha);
    if (el.matches("input[placeholder]") && !el.value) {
      add(`${name} placeholder`, parse(getComputedStyle(el, "::placeholder").color), backdrop(el));
    }
  }
  const canvasInk = (canvas, x, y, w, h) => {
    const r = canvas.width / canvas.clientWidth;
    const data = canvas.getContext("2d").getImageData(x * r, y * r, w * r, h * r).data;
    let best = [0, 0, 0, 0];
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > best[3]) best = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    }
    return [best[0], best[1], best[2], best[3] / 255];
  };
  const grid = root.querySelector("canvas.fvz-grid");
  add("grid canvas: tile caption", canvasInk(grid, 0, 0, 60, 15), page);
  const occlusion = root.querySelector("canvas.fvz-occlusion");
  const width = occlusion.clientWidth;
  add("occlusion canvas: colour bar labels", canvasInk(occlusion, width - 34, 0, 34, 40), page);
  return out;
}"""


TILE_INSIDE = """(sel) => {  // pixels inside the first tile, clear of its caption and frame
  const canvas = document.querySelector(sel);
  return Array.from(canvas.getContext("2d").getImageData(10, 26, 24, 24).data).join(",");
}"""


def assert_contrast(page, widget: str, theme: str) -> None:
    """Every text at least 4.5:1 (WCAG AA); canvases may take a moment to repaint."""
    deadline = time.monotonic() + 5
    while True:
        low = [c for c in page.evaluate(CONTRAST, widget) if not c["ratio"] >= 4.5]
        if not low or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not low, f"{theme}: text below 4.5:1 contrast: {low}"


def test_jupyterlab_dark_theme(jupyter_server, page, tmp_path):
    server = jupyter_server
    # A fixed width: nothing about the widget's size changes with the theme, so only the theme
    # change itself can repaint the canvases (JupyterLab reflows a full-width output on the way).
    construct = "num_features=9, stride=4)"
    assert construct in SETUP
    setup = SETUP.replace(construct, "num_features=9, stride=4, layout={'width': '900px'})")
    write_notebook(server, "explorer_dark.ipynb", setup)
    page.goto(server.page_url("/lab/tree/explorer_dark.ipynb?reset"))
    app_ready(page)
    set_theme(page, "JupyterLab Light")
    try:
        run_all(page)
        widget = ".jp-NotebookPanel:not(.lm-mod-hidden) .fvz"
        wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer2|')", 90_000)
        page.locator(f"{widget} .fvz-chart svg").first.wait_for(state="attached")
        bad = tmp_path / "notes.png"  # an error message, to measure its colours too
        bad.write_text("not an image")
        page.locator(f"{widget} input.fvz-file").set_input_files(str(bad))
        page.locator(f"{widget} .fvz-error").wait_for(state="visible")
        assert_contrast(page, widget, "JupyterLab Light")
        tile = f"{widget} canvas.fvz-grid"
        viridis = page.evaluate(TILE_INSIDE, tile)

        set_theme(page, "JupyterLab Dark")  # while the widget is shown
        colours = page.evaluate(
            """(sel) => {
                const root = document.querySelector(sel);
                const style = getComputedStyle(root);
                const label = getComputedStyle(root.querySelector(".fvz-field > span"));
                return [style.backgroundColor, style.color, label.color];
            }""",
            widget,
        )

        def luminance(css: str) -> float:
            r, g, b = (float(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
            return 0.2126 * r + 0.7152 * g + 0.0722 * b

        background, text, label = (luminance(c) for c in colours)
        assert background < 80, colours  # a dark surface...
        assert text > 150 and label > 100, colours  # ...with light text
        assert_contrast(page, widget, "JupyterLab Dark")
        # the colormap is data: the tiles' viridis pixels do not change, only the captions
        assert page.evaluate(TILE_INSIDE, tile) == viridis
        save_screenshot(page, widget, "jupyterlab-dark-widget.png")
    finally:
        set_theme(page, "JupyterLab Light")
