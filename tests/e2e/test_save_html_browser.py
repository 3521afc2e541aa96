"""A page saved by `FeatureExplorer.save_html`, opened from file:// in real Chromium with every
network request blocked: it paints, switches layers, sort modes and channels (one the grid
does not show included) from the saved data, keeps its controls past the pull timeout, marks
itself a snapshot, and disables what would need a kernel, saying why.

A real timm model (resnet18, random weights, 64 px input) and a real photo (Grace Hopper).
"""

from __future__ import annotations

import re

import pytest
from conftest import resnet18_64px
from matplotlib import cbook
from PIL import Image

from featviz_widgets.widget.explorer import FeatureExplorer
from featviz_widgets.widget.panels.evidence import CLASS_CONTRIBUTION
from featviz_widgets.widget.protocol import PULL_TIMEOUT_MS
from featviz_widgets.widget.saved_page import HELD_TITLE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# the canvas's colours: how many distinct ones, and a fingerprint of its pixels
PIXELS = """(selector) => {
  const canvas = document.querySelector(selector);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) {
    colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    sum = (sum * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) % 1000000007;
  }
  return [colours.size, sum];
}"""
STAMP = "(args) => document.querySelector(args[0]).dataset.state === args[1]"
STAMP_STARTS = "(args) => (document.querySelector(args[0]).dataset.state || '').startsWith(args[1])"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The saved page's path and the rankings it should follow (from the explorer itself)."""
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        photo = Image.open(file).convert("RGB")
    explorer = FeatureExplorer(
        resnet18_64px(), photo, layer="layer1", num_features=9, stride=16, class_evidence=True
    )
    explorer.wait(60)
    explorer.position = [4, 4]  # an occlusion sweep of layer1's selected channel
    explorer.wait(60)
    path = explorer.save_html(tmp_path_factory.mktemp("saved") / "explorer.html")
    rankings = {
        name: explorer.visualizer.layer_view(explorer.image, name).rankings
        for name in ("layer1", "layer3")
    }
    channel = explorer.channel
    explorer.close()
    return path, rankings, channel


@pytest.fixture
def page(browser, saved):
    context = browser.new_context(viewport={"width": 1200, "height": 1400})
    context.route(re.compile(r"^https?://"), lambda route: route.abort())
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(saved[0].as_uri())
    page.wait_for_selector("#fvz-host[data-ready='1'] canvas.fvz-grid[data-state]")
    yield page
    assert errors == []
    assert requests and all(url.startswith("file://") for url in requests), requests
    context.close()


def grid_channels(page) -> list[int]:
    return [
        int(c) for c in page.locator("canvas.fvz-grid").get_attribute("data-channels").split(",")
    ]


def test_the_saved_page_paints_and_says_it_is_a_snapshot(page, saved):
    rankings = saved[1]["layer1"]
    assert (
        page.locator("canvas.fvz-grid")
        .get_attribute("data-state")
        .startswith("layer1|activation|9|per-tile|")
    )
    assert grid_channels(page) == rankings["activation"][:9]
    colours, _ = page.evaluate(PIXELS, "canvas.fvz-grid")
    assert colours > 20  # nine painted maps, not a blank canvas
    assert page.locator("canvas.fvz-unit").get_attribute("data-state") == f"layer1|{saved[2]}"
    assert page.locator("canvas.fvz-occlusion").get_attribute("data-state").endswith("|16/16")
    assert page.locator("canvas.fvz-pca").get_attribute("data-state").startswith("layer1|16x16|")
    assert page.evaluate(PIXELS, "canvas.fvz-input")[0] > 100  # the photo
    mark = page.locator(".fvz-saved-mark")
    assert mark.is_visible() and "Snapshot without a kernel" in mark.inner_text()
    for selector in ("button.fvz-occlude", "input.fvz-file", "input.fvz-all", "button.fvz-looks"):
        control = page.locator(selector)
        assert control.is_disabled(), selector
        assert control.get_attribute("title") == HELD_TITLE, selector
    # past the pull timeout the page still answers for itself: its own controls stay live
    page.wait_for_timeout(PULL_TIMEOUT_MS + 500)
    for selector in ("select.fvz-layer", "select.fvz-sort", "select.fvz-channel", "input.fvz-num"):
        assert page.locator(selector).is_enabled(), selector
    assert mark.is_visible()


def test_the_layer_menu_switches_to_each_saved_layer(page, saved):
    before = page.evaluate(PIXELS, "canvas.fvz-grid")
    options = page.locator("select.fvz-layer option")
    assert options.count() == 18
    page.select_option("select.fvz-layer", "layer3")
    page.wait_for_function(STAMP_STARTS, arg=["canvas.fvz-grid", "layer3|activation|9|"])
    assert grid_channels(page) == saved[1]["layer3"]["activation"][:9]
    after = page.evaluate(PIXELS, "canvas.fvz-grid")
    assert after[0] > 20 and after[1] != before[1]
    first = saved[1]["layer3"]["activation"][0]
    assert page.locator("canvas.fvz-unit").get_attribute("data-state") == f"layer3|{first}"
    assert page.locator("select.fvz-channel option").count() == 256
    assert "256" in page.locator("dl.fvz-stats").inner_text()
    # what was computed for layer1 only says so on layer3
    page.wait_for_function(STAMP, arg=["canvas.fvz-pca", "layer3|note"])
    assert "saved for layer1 only" in page.locator("figure.fvz-pca-figure").inner_text()
    assert page.locator("canvas.fvz-occlusion").get_attribute("data-state") == "empty"
    # and back: the first layer's grid again, its layer as colour and its occlusion map
    page.select_option("select.fvz-layer", "layer1")
    page.wait_for_function(STAMP_STARTS, arg=["canvas.fvz-grid", "layer1|activation|9|"])
    assert page.evaluate(PIXELS, "canvas.fvz-grid") == before
    page.wait_for_function(STAMP_STARTS, arg=["canvas.fvz-pca", "layer1|16x16|"])
    # a new layer shows its top channel: the one the explorer showed, and swept, at first
    assert saved[2] == saved[1]["layer1"]["activation"][0]
    page.wait_for_function(STAMP_STARTS, arg=["canvas.fvz-occlusion", "layer1|"])
    assert page.locator("canvas.fvz-occlusion").get_attribute("data-state").endswith("|16/16")


def test_a_channel_outside_the_grid_is_shown(page, saved):
    page.select_option("select.fvz-layer", "layer3")
    page.wait_for_function(STAMP_STARTS, arg=["canvas.fvz-grid", "layer3|"])
    rankings = saved[1]["layer3"]
    # the most varied channel the grid (top nine by activation) does not show
    chosen = next(c for c in rankings["variance"] if c not in rankings["activation"][:9])
    assert chosen not in grid_channels(page)
    before = page.evaluate(PIXELS, "canvas.fvz-unit")
    page.select_option("select.fvz-channel", str(chosen))
    page.wait_for_function(STAMP, arg=["canvas.fvz-unit", f"layer3|{chosen}"])
    caption = page.locator("figure", has=page.locator("canvas.fvz-unit")).inner_text()
    assert caption.startswith(f"Channel {chosen} ")
    colours, fingerprint = page.evaluate(PIXELS, "canvas.fvz-unit")
    assert colours > 1 and fingerprint != before[1]


def test_sort_modes_follow_the_saved_rankings(page, saved):
    page.select_option("select.fvz-sort", "variance")
    page.wait_for_function(STAMP_STARTS, arg=["canvas.fvz-grid", "layer1|variance|9|"])
    assert grid_channels(page) == saved[1]["layer1"]["variance"][:9]
    contribution = page.locator(f"select.fvz-sort option[value='{CLASS_CONTRIBUTION}']")
    assert contribution.is_enabled()  # class evidence was computed for layer1
    page.select_option("select.fvz-layer", "layer3")
    page.wait_for_function(STAMP_STARTS, arg=["canvas.fvz-grid", "layer3|variance|9|"])
    assert grid_channels(page) == saved[1]["layer3"]["variance"][:9]
    assert contribution.is_disabled()
    assert "no class evidence was computed" in contribution.get_attribute("title")
    page.fill("input.fvz-num", "20")
    page.locator("input.fvz-num").dispatch_event("change")
    page.wait_for_function(STAMP_STARTS, arg=["canvas.fvz-grid", "layer3|variance|20|"])
    assert grid_channels(page) == saved[1]["layer3"]["variance"][:20]
    # the class line says where the class evidence was saved
    assert "saved for layer1 only" in page.locator(".fvz-class-note").inner_text()
