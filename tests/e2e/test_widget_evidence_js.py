"""The class evidence row alone in Chromium: js/widget.js against a stand-in model whose state
is a real `FeatureExplorer`'s (as in test_widget_looks_for.py): a model without a classifier
gets the row disabled with the reason; with evidence, the overlay is the payload's Grad-CAM in
jet over the image, it arrives in chunks too, and the controls write the traits."""

from __future__ import annotations

import pytest
import timm
from conftest import resnet18_64px

from featviz_widgets.widget.explorer import FeatureExplorer

from .standalone import open_view, synced_state

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def headless_state():
    model = timm.create_model(
        "resnet18",
        pretrained=False,
        num_classes=0,
        pretrained_cfg_overlay=dict(input_size=(3, 64, 64), crop_pct=1.0),
    )
    explorer = FeatureExplorer(model, layer="layer2", num_features=4).wait(60)
    explorer.class_evidence = True
    explorer.wait(60)
    return synced_state(explorer)


@pytest.fixture(scope="module")
def evidence_state():
    explorer = FeatureExplorer(resnet18_64px(), layer="layer3", num_features=4, target_class=207)
    explorer.wait(60)
    assert explorer._evidence["n"] == 1, explorer.error
    return synced_state(explorer)


def test_a_model_without_a_classifier_gets_the_row_disabled_with_the_reason(
    browser, headless_state
):
    for page in open_view(browser, headless_state, "canvas.fvz-grid[data-state]"):
        note = page.locator(".fvz-class-note").inner_text()
        assert "num_classes=0" in note and "classifier" in note
        for control in ("input.fvz-classes-on", "select.fvz-class", "input.fvz-cam"):
            assert page.locator(control).is_disabled(), control
        option = page.locator("select.fvz-sort option[value='class contribution']")
        assert option.get_attribute("disabled") is not None
        assert "num_classes=0" in option.get_attribute("title")
        # the other views paint as ever
        assert page.locator("canvas.fvz-grid").get_attribute("data-state").startswith("layer2|")
        assert page.locator("canvas.fvz-input").get_attribute("data-state").endswith("|cam:off")


def wait_input(page, ending: str) -> None:
    """Wait until the input canvas's last paint was stamped ending with `ending`."""
    page.wait_for_function(
        "(end) => document.querySelector('canvas.fvz-input').dataset.state.endsWith(end)",
        arg=ending,
    )


# The colour a third of the way into the input canvas (off the unit's marker): the image
# alone, or under the Grad-CAM.
CENTRE = """() => {
  const c = document.querySelector("canvas.fvz-input");
  const x = Math.floor(c.width / 3), y = Math.floor(c.height / 3);
  const d = c.getContext("2d").getImageData(x, y, 1, 1).data;
  return [d[0], d[1], d[2]];
}"""


def test_the_overlay_follows_show_cam_and_arrives_in_chunks(browser, evidence_state):
    for page in open_view(browser, evidence_state, "canvas.fvz-input[data-state]"):
        wait_input(page, "|cam:off")
        plain = page.evaluate(CENTRE)
        page.locator("input.fvz-cam").check()
        assert ["show_cam", True] in page.evaluate("() => window.sets")
        wait_input(page, "|cam:layer3:207")
        tinted = page.evaluate(CENTRE)
        assert tinted != plain
        # the same bytes in two chunk messages, the trait saying `chunked`: the same picture
        page.evaluate(
            """() => {
                const { data: trait, ...meta } = model.get("_evidence");
                const bytes = new Uint8Array(
                  trait.buffer, trait.byteOffset, trait.byteLength).slice();
                const half = Math.ceil(bytes.length / 2), size = bytes.length;
                model.set("_evidence", {});
                const pieces = [bytes.subarray(0, half), bytes.subarray(half)];
                for (const [index, piece] of pieces.entries()) {
                  model.emit("msg:custom",
                    { type: "chunk", name: "_evidence", id: 4, index, count: 2, size }, [piece]);
                }
                model.set("_evidence", { ...meta, chunked: { id: 4, size, count: 2 } });
            }"""
        )
        wait_input(page, "|cam:layer3:207")
        assert page.evaluate(CENTRE) == tinted
        # another class chosen: its evidence is not there yet, the overlay goes, the note says so
        page.evaluate("() => { model.set('target_class', 3); }")
        wait_input(page, "|cam:off")
        assert page.locator(".fvz-class-note").inner_text() == "computing…"
        assert page.evaluate(CENTRE) == plain


def test_the_class_controls_write_the_traits(browser, evidence_state):
    for page in open_view(browser, evidence_state, "select.fvz-class option"):
        menu = page.locator("select.fvz-class")
        assert menu.input_value() == "207"  # the chosen class, listed whether or not in the top-5
        top = evidence_state["_evidence"]["top"]
        menu.select_option(str(top[1][0]))
        menu.select_option("")
        page.locator("input.fvz-class-search").fill("tabby")
        page.locator("select.fvz-class optgroup[label^='Matching'] option").first.wait_for(
            state="attached"
        )
        menu.select_option("281")  # tabby, tabby cat
        page.locator("input.fvz-classes-on").uncheck()
        sets = page.evaluate("() => window.sets")
        assert [v for k, v in sets if k == "target_class"] == [top[1][0], None, 281]
        assert ["class_evidence", False] in sets
        # the channel view says the selected channel's contribution, as Python writes it
        meta = evidence_state["_evidence"]
        page.evaluate(
            "() => { model.set('class_evidence', true); model.set('target_class', 207); }"
        )
        channel = evidence_state["channel"]
        page.wait_for_function(
            "() => document.querySelector('.fvz-contribution').textContent.includes('rank')"
        )
        text = page.locator(".fvz-contribution").inner_text()
        value = f"{meta['contributions'][channel]:+.3g}"
        assert text == (
            f"contribution to 'golden retriever': {value} (rank {meta['ranks'][channel]} of 256)"
        )
