"""Class evidence in a real JupyterLab, driven in Debian's Chromium: the class menu (top-5 and
search) sets the kernel's `target_class`, the Grad-CAM toggle repaints the input image, the
sort mode "class contribution" reorders the tiles as Python ranks them, and the channel view
says a channel's contribution and rank. As in test_widget_browser.py, the notebook mirrors the
explorer's traits into `state.json` so the test sees what Python sees."""

from __future__ import annotations

import pytest

from . import jupyter
from .jupyter import REPO, app_ready, canvas_state, pixels, run_all, set_theme, wait_canvas
from .test_widget_browser import read_state, save_screenshot, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stop_kernels")]

SETUP = """\
import json, pathlib, threading
import timm, torch
from matplotlib import cbook
from PIL import Image
import featviz_widgets
from featviz_widgets.widget.explorer import FeatureExplorer

torch.manual_seed(0)
model = timm.create_model(
    "resnet18", pretrained=False, zero_init_last=False,
    pretrained_cfg_overlay=dict(input_size=(3, 112, 112), crop_pct=1.0),
)
with cbook.get_sample_data("grace_hopper.jpg") as file:
    photo = Image.open(file).convert("RGB")
explorer = FeatureExplorer(model, photo, layer="layer3", num_features=9)

STATE, LOCK = pathlib.Path("state.json"), threading.Lock()
KEYS = ("layer", "sort_by", "channel", "error", "class_evidence", "target_class", "show_cam")

def dump(change=None):
    state = {key: getattr(explorer, key) for key in KEYS}
    state["package"] = featviz_widgets.__file__
    meta = explorer._evidence
    state["evidence"] = {k: meta.get(k) for k in ("layer", "target", "chosen", "n", "top")}
    state["ranking"] = explorer.ranking[:9]
    said = explorer.channel_contribution()
    state["contribution"] = said and said["rank"]
    with LOCK:
        STATE.with_suffix(".tmp").write_text(json.dumps(state))
        STATE.with_suffix(".tmp").replace(STATE)

explorer.observe(dump)
dump()
"""


def test_class_menu_grad_cam_and_contribution_sort_in_jupyterlab(jupyter_server, page):
    server = jupyter_server
    (server.root / "state.json").unlink(missing_ok=True)
    jupyter.write_notebook(server.root / "evidence_lab.ipynb", SETUP, "explorer")
    page.goto(server.page_url("/lab/tree/evidence_lab.ipynb?reset"))
    scope = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    widget = f"{scope} .fvz"
    app_ready(page)
    set_theme(page, "JupyterLab Light")
    run_all(page)
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer3|activation|9|')", 90_000)
    state = wait_state(server, lambda s: s["layer"] == "layer3", what="layer3 shown")
    # the kernel imports the package of this checkout
    assert state["package"].startswith(str(REPO / "featviz_widgets")), state["package"]
    assert not state["class_evidence"] and state["target_class"] is None
    page.locator(f"{widget} canvas.fvz-input[data-state]").wait_for(state="attached")
    wait_canvas(page, widget, "input", "(s) => s.endsWith('|cam:off')")

    # "classes" on: the kernel computes the evidence, the menu lists the top-5 classes
    page.locator(f"{widget} input.fvz-classes-on").check()
    state = wait_state(server, lambda s: s["evidence"]["n"] == 1, what="evidence computed")
    assert state["class_evidence"] and state["error"] == ""
    top = state["evidence"]["top"]
    menu = page.locator(f"{widget} select.fvz-class")
    top_options = menu.locator("optgroup[label='Top 5 predicted'] option")
    top_options.nth(4).wait_for(state="attached")
    assert [int(v) for v in top_options.evaluate_all("(os) => os.map((o) => o.value)")] == [
        entry[0] for entry in top
    ]
    assert top_options.nth(0).inner_text().startswith(top[0][1])

    # pick the third predicted class from the menu: Python's trait follows
    third = top[2][0]
    menu.select_option(str(third))
    state = wait_state(
        server,
        lambda s: s["target_class"] == third and s["evidence"]["target"] == third,
        what=f"target_class {third}",
    )
    assert state["evidence"]["chosen"] and state["error"] == ""

    # the search box finds any class by name: golden retriever (207)
    page.locator(f"{widget} input.fvz-class-search").fill("golden retr")
    matches = menu.locator("optgroup[label^='Matching'] option")
    matches.first.wait_for(state="attached")
    assert matches.first.get_attribute("value") == "207"
    menu.select_option("207")
    wait_state(
        server,
        lambda s: s["target_class"] == 207 and s["evidence"]["target"] == 207,
        what="target_class 207",
    )
    page.wait_for_function(
        "(sel) => document.querySelector(sel).textContent.includes('golden retriever')",
        arg=f"{widget} .fvz-class-note",
    )

    # the Grad-CAM overlay: the input canvas changes when toggled on, and back when off
    plain = pixels(page, widget, "input")
    page.locator(f"{widget} input.fvz-cam").check()
    wait_state(server, lambda s: s["show_cam"], what="show_cam on")
    wait_canvas(page, widget, "input", "(s) => s.endsWith('|cam:layer3:207')")
    with_cam = pixels(page, widget, "input")
    assert with_cam != plain
    page.locator(f"{widget} input.fvz-cam").uncheck()
    wait_state(server, lambda s: not s["show_cam"], what="show_cam off")
    wait_canvas(page, widget, "input", "(s) => s.endsWith('|cam:off')")
    assert pixels(page, widget, "input") == plain

    # sort by class contribution: the tiles reorder as Python ranks them
    grid = page.locator(f"{widget} canvas.fvz-grid")
    by_activation = grid.get_attribute("data-channels")
    before = pixels(page, widget, "grid")
    page.locator(f"{widget} select.fvz-sort").select_option("class contribution")
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer3|class contribution|9|')")
    state = wait_state(
        server, lambda s: s["sort_by"] == "class contribution", what="sorted by contribution"
    )
    channels = [int(c) for c in grid.get_attribute("data-channels").split(",")]
    assert channels == state["ranking"] and grid.get_attribute("data-channels") != by_activation
    assert pixels(page, widget, "grid") != before
    assert canvas_state(page, widget, "grid").startswith("layer3|class contribution|")

    # a click on the third tile: the channel view says its contribution and rank (3 of 256)
    box = grid.bounding_box()
    tile = (box["width"] - 2 * 4) / 3
    grid.click(position={"x": tile * 2.5 + 8, "y": 15 + tile / 2})
    wait_canvas(page, widget, "unit", f"(s) => s === 'layer3|{channels[2]}'")
    state = wait_state(server, lambda s: s["channel"] == channels[2], what="third tile")
    assert state["contribution"] == 3
    said = page.locator(f"{widget} .fvz-contribution")
    page.wait_for_function(
        "(sel) => document.querySelector(sel).textContent.includes('rank 3 of 256')",
        arg=f"{widget} .fvz-contribution",
    )
    assert said.inner_text().startswith("contribution to 'golden retriever': ")
    page.locator(f"{widget} input.fvz-cam").check()
    wait_canvas(page, widget, "input", "(s) => s.endsWith('|cam:layer3:207')")
    save_screenshot(page, widget, "jupyterlab-class-evidence.png")
    assert read_state(server)["error"] == ""
