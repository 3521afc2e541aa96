"""The dataset examples view alone in Chromium: js/widget.js against a stand-in model whose
state is a real `FeatureExplorer`'s after a dataset scan (see test_widget_js.py). The
thumbnails are painted (pixels), hover names the image, a click sends the `example` message,
a layer outside the scan shows Python's note, and no dataset hides the view."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from conftest import resnet18_64px, scene
from matplotlib import cbook
from PIL import Image

from featviz_widgets.widget.explorer import FeatureExplorer
from featviz_widgets.widget.panels import CONTRACT

from .standalone import open_view, synced_state

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def state():
    model = resnet18_64px()
    with cbook.get_sample_data("grace_hopper.jpg") as photo:
        hopper = Image.open(photo).convert("RGB")
    images = [hopper.crop((x, x, x + 250, x + 250)) for x in (0, 120, 240)]
    images += [scene(80, 80, seed=seed) for seed in range(5)]
    explorer = FeatureExplorer(model, layer="layer4", num_features=4)
    explorer.scan_dataset(images, ["layer4"], k=4, batch_size=8)
    explorer.wait(120)
    assert explorer.error == "" and explorer._examples["n"] == 4
    return synced_state(explorer)


@pytest.fixture
def view(browser, state):
    yield from open_view(browser, state, "canvas.fvz-examples[data-state]", height=1600)


TILE_MEANS = """([cols, n, label, gap]) => {
  const c = document.querySelector("canvas.fvz-examples");
  const ratio = c.width / c.getBoundingClientRect().width;
  const tile = c.getBoundingClientRect().width / cols - gap;
  const ctx = c.getContext("2d");
  const means = [];
  for (let i = 0; i < n; i++) {
    const x = (i % cols) * (tile + gap), y = Math.floor(i / cols) * (tile + label + gap) + label;
    const d = ctx.getImageData(Math.round((x + 2) * ratio), Math.round((y + 2) * ratio),
      Math.round((tile - 4) * ratio), Math.round((tile - 4) * ratio)).data;
    const sum = [0, 0, 0];
    for (let p = 0; p < d.length; p += 4) for (let k = 0; k < 3; k++) sum[k] += d[p + k];
    means.push(sum.map((s) => s / (d.length / 4)));
  }
  return { means, tile };
}"""


def test_the_thumbnails_are_painted_with_their_scores(view, state):
    meta = state["_examples"]
    canvas = view.locator("canvas.fvz-examples")
    assert canvas.is_visible()
    assert canvas.get_attribute("data-state") == f"layer4|{state['channel']}|4"
    assert canvas.get_attribute("data-indices") == ",".join(map(str, meta["indices"]))
    caption = view.locator(".fvz-examples-figure figcaption").inner_text()
    assert caption.startswith(f"Top 4 of 8 dataset images: layer4, ch {state['channel']}")
    size = meta["size"]
    thumbs = np.frombuffer(base64.b64decode(state["_examples"]["data"]["__b64__"]), np.uint8)
    thumbs = thumbs.reshape(4, size, size, 3).astype(float)
    painted = view.evaluate(TILE_MEANS, [meta["cols"], 4, 15, 4])
    assert painted["tile"] >= size
    for i in range(4):
        expected = thumbs[i, 1:-1, 1:-1].reshape(-1, 3).mean(axis=0)
        assert painted["means"][i] == pytest.approx(expected.tolist(), abs=4), f"tile {i}"


def test_hover_names_the_image_and_a_click_sends_its_index(view, state):
    meta = state["_examples"]
    canvas = view.locator("canvas.fvz-examples")
    tile = canvas.bounding_box()["width"] / meta["cols"] - 4
    second = {"x": tile + 4 + tile / 2, "y": 15 + tile / 2}
    canvas.hover(position=second)
    assert view.locator(".fvz-tooltip").inner_text().startswith(f"#2 {meta['names'][1]}: ")
    canvas.click(position=second)
    example = CONTRACT["messages"]["example"]
    assert view.evaluate("() => window.sent") == [
        [{"type": example, "index": meta["indices"][1]}, []]
    ]
    assert view.evaluate("() => window.sets") == []  # Python sets the image


def test_a_note_replaces_the_thumbnails_and_no_dataset_hides_them(view, state):
    note = {**state["_examples"], "n": 0, "layer": "layer2", "note": "not scanned."}
    note.pop("data")
    view.evaluate("(meta) => window.model.set('_examples', meta)", note)
    canvas = view.locator("canvas.fvz-examples")
    view.wait_for_function(
        "() => document.querySelector('canvas.fvz-examples').dataset.state.startsWith('layer2')"
    )
    assert view.locator(".fvz-examples-figure figcaption").inner_text() == (
        "Dataset examples: not scanned."
    )
    assert canvas.bounding_box()["height"] <= 1
    view.evaluate("() => window.model.set('_examples', {})")
    view.wait_for_function("() => document.querySelector('.fvz-examples-figure').hidden")
    assert not canvas.is_visible()
