"""FeatureExplorer over two models in a real JupyterLab 4, driven in Debian's Chromium: the model
menu switches the grid to the other model at the layer nearest in relative depth, and the
comparison chart draws one line per model with the model and layer shown ringed.

The notebook mirrors the explorer's traits into `state.json` from a trait observer, as in
test_widget_browser.py, so the test sees what Python sees.
"""

from __future__ import annotations

import pytest

from .jupyter import app_ready, pixels, run_all, wait_canvas
from .test_widget_browser import save_screenshot, wait_state
from .test_widget_browser import write_notebook as _write_notebook

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stop_kernels")]

SETUP = """\
import json, pathlib, threading
import timm, torch
from featviz_widgets import FeatureExplorer

small = dict(pretrained_cfg_overlay=dict(input_size=(3, 112, 112), crop_pct=1.0))
torch.manual_seed(0)
resnet = timm.create_model("resnet18", pretrained=False, zero_init_last=False, **small)
convnext = timm.create_model("convnext_atto", pretrained=False, **small)
explorer = FeatureExplorer(
    {"resnet18": resnet, "convnext_atto": convnext}, layer="layer2", num_features=9
)

STATE, LOCK = pathlib.Path("state.json"), threading.Lock()

def dump(change=None):
    state = {key: getattr(explorer, key) for key in ("model_name", "layer", "error")}
    state["compared"] = explorer._comparison.get("done", 0)
    state["viz_model"] = type(explorer.visualizer.model).__name__
    state["layers"] = explorer.layers
    with LOCK:
        STATE.with_suffix(".tmp").write_text(json.dumps(state))
        STATE.with_suffix(".tmp").replace(STATE)

explorer.observe(dump)
dump()
"""


def test_jupyterlab_model_menu_switches_and_the_comparison_has_a_line_per_model(
    jupyter_server, page
):
    server = jupyter_server
    _write_notebook(server, "explorer_models.ipynb", SETUP)
    page.goto(server.page_url("/lab/tree/explorer_models.ipynb?reset"))
    scope = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    app_ready(page)
    run_all(page)
    widget = f"{scope} .fvz"
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer2|activation|9|')", 90_000)
    wait_state(server, lambda s: s["compared"] == 2, 60, what="both models profiled")
    menu = page.locator(f"{widget} select.fvz-model")
    assert menu.is_visible()
    assert menu.locator("option").all_inner_texts() == ["resnet18", "convnext_atto"]
    assert menu.input_value() == "resnet18"
    chart = page.locator(f"{widget} canvas.fvz-models")
    wait_canvas(page, widget, "models", "(s) => s === 'models|2/2|resnet18|layer2'")
    assert chart.is_visible()
    assert chart.get_attribute("data-lines") == "2"
    assert chart.get_attribute("data-models") == "resnet18,convnext_atto"
    chart_before = pixels(page, widget, "models")

    # pick the other model: Python's trait, the grid repaints with its layer nearest in depth
    before = pixels(page, widget, "grid")
    menu.select_option("convnext_atto")
    state = wait_state(
        server,
        lambda s: s["model_name"] == "convnext_atto" and s["layer"] == "stages.1",
        60,
        what="convnext_atto at stages.1",
    )
    assert state["error"] == "" and state["viz_model"] == "ConvNeXt"
    assert "stages.1" in state["layers"] and "layer2" not in state["layers"]
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('stages.1|activation|9|')", 60_000)
    assert pixels(page, widget, "grid") != before
    assert page.locator(f"{widget} select.fvz-layer").input_value() == "stages.1"
    assert menu.input_value() == "convnext_atto"
    # the chart rings convnext_atto's stages.1 now; still one line per model
    wait_canvas(page, widget, "models", "(s) => s === 'models|2/2|convnext_atto|stages.1'")
    assert chart.get_attribute("data-lines") == "2"
    assert pixels(page, widget, "models") != chart_before
    assert not page.locator(f"{widget} .fvz-error").is_visible()
    save_screenshot(page, widget, "jupyterlab-models.png")
