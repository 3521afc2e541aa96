"""The "looks for" view alone in Chromium: js/widget.js against a stand-in model whose state is
a real `FeatureExplorer`'s after a (tiny) `run_looks_for()`, as in test_widget_js.py."""

from __future__ import annotations

import base64

import pytest
from conftest import resnet18_64px

from featviz_widgets.widget.explorer import FeatureExplorer

from .standalone import open_view, synced_state

pytestmark = pytest.mark.e2e

SIZE = 16  # the picture's side: few pixels, each drawn large


@pytest.fixture(scope="module")
def state():
    model = resnet18_64px()
    explorer = FeatureExplorer(
        model,
        layer="layer1",
        num_features=9,
        looks_for_steps=8,
        looks_for_options={"size": SIZE, "model_size": 64},
    )
    explorer.wait(60)
    explorer.run_looks_for()
    explorer.wait(60)
    assert explorer._looks_for["complete"], explorer.error
    return synced_state(explorer)


@pytest.fixture
def view(browser, state):
    yield from open_view(browser, state, "canvas.fvz-looks-for[data-state]")


# The colour at the centre of each source pixel of the picture drawn on the canvas.
SAMPLE = """(n) => {
  const c = document.querySelector("canvas.fvz-looks-for");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const out = [];
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    const px = Math.floor(((x + 0.5) / n) * c.width), py = Math.floor(((y + 0.5) / n) * c.height);
    const o = (py * c.width + px) * 4;
    out.push([d[o], d[o + 1], d[o + 2]]);
  }
  return out;
}"""


def expected(state) -> list[list[int]]:
    data = base64.b64decode(state["_looks_for"]["data"]["__b64__"])
    return [list(data[i : i + 3]) for i in range(0, len(data), 3)]


def close(painted, wanted, tolerance=12) -> bool:
    return all(abs(a - b) <= tolerance for p, w in zip(painted, wanted) for a, b in zip(p, w))


def test_paints_the_pictures_pixels(view, state):
    meta = state["_looks_for"]
    assert (meta["h"], meta["w"]) == (SIZE, SIZE)
    canvas = view.locator("canvas.fvz-looks-for")
    assert canvas.get_attribute("data-state") == f"layer1|{state['channel']}|8/8|done"
    assert view.locator("figure:has(canvas.fvz-looks-for) figcaption").inner_text() == (
        f"ch {state['channel']} looks for (8 steps · still rising)"  # 8 steps: too few to tell
    )
    painted = view.evaluate(SAMPLE, SIZE)
    assert close(painted, expected(state)), "the canvas does not show the payload's pixels"


def test_button_and_double_click_send_the_message(view, state):
    view.locator("button.fvz-looks").click()
    assert view.evaluate("() => window.sent") == [
        [{"type": "looks_for", "channel": state["channel"]}, []]
    ]
    channels = [
        int(c) for c in view.locator("canvas.fvz-grid").get_attribute("data-channels").split(",")
    ]
    box = view.locator("canvas.fvz-grid").bounding_box()
    tile = (box["width"] - 8) / 3
    view.locator("canvas.fvz-grid").dblclick(position={"x": tile * 1.5 + 4, "y": 15 + tile / 2})
    assert ["channel", channels[1]] in view.evaluate("() => window.sets")
    assert view.evaluate("() => window.sent")[-1] == [
        {"type": "looks_for", "channel": channels[1]},
        [],
    ]
    # another channel selected: the picture stays, faded, until Python sends that channel's
    assert view.locator("canvas.fvz-looks-for").get_attribute("data-state").startswith("layer1|")


def test_the_steps_menu_shows_and_sets_looks_for_steps(view, state):
    menu = view.locator("select.fvz-looks-steps")
    assert state["looks_for_steps"] == 8
    assert menu.input_value() == "8"  # a value set from Python, not among the choices, is shown
    offered = menu.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
    assert offered == ["", *map(str, state["_contract"]["panels"]["looks_for"]["steps"]), "8"]
    menu.select_option("256")
    menu.select_option("")
    sets = [value for key, value in view.evaluate("() => window.sets") if key == "looks_for_steps"]
    assert sets == [256, None]
    view.evaluate("() => { model.set('looks_for_steps', 1024); }")
    view.wait_for_function(
        "() => document.querySelector('select.fvz-looks-steps').value === '1024'"
    )
    # another value Python sets outside the choices replaces the extra option, never piles up
    view.evaluate("() => { model.set('looks_for_steps', 300); }")
    view.wait_for_function("() => document.querySelector('select.fvz-looks-steps').value === '300'")
    offered = menu.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
    assert offered == ["", *map(str, state["_contract"]["panels"]["looks_for"]["steps"]), "300"]


def test_partial_cancelled_chunked_and_empty(view, state):
    view.evaluate(
        """() => { model.set("_looks_for",
                   { ...model.get("_looks_for"), step: 4, complete: false }); }"""
    )
    caption = view.locator("figure:has(canvas.fvz-looks-for) figcaption")
    view.wait_for_function(
        "() => document.querySelector('canvas.fvz-looks-for').dataset.state.endsWith('4/8|running')"
    )
    assert caption.inner_text().endswith("(step 4/8…)")
    view.evaluate(
        """() => { model.set("_looks_for",
                   { ...model.get("_looks_for"), cancelled: true }); }"""
    )
    view.wait_for_function(
        "() => document.querySelector('canvas.fvz-looks-for').dataset.state.endsWith('|cancelled')"
    )
    assert caption.inner_text().endswith("(cancelled at 4/8)")
    # the bytes in two pushes.chunk messages, the trait saying `chunked`: the same pixels
    view.evaluate(
        """() => {
            const { data: trait, ...meta } = model.get("_looks_for");
            const bytes = new Uint8Array(trait.buffer, trait.byteOffset, trait.byteLength).slice();
            const half = Math.ceil(bytes.length / 2), size = bytes.length;
            const pieces = [bytes.subarray(0, half), bytes.subarray(half)];
            for (const [index, piece] of pieces.entries()) {
              model.emit("msg:custom",
                { type: "chunk", name: "_looks_for", id: 9, index, count: 2, size }, [piece]);
            }
            model.set("_looks_for", { ...meta, complete: true, cancelled: false, step: 8,
                                      chunked: { id: 9, size, count: 2 } });
        }"""
    )
    view.wait_for_function(
        "() => document.querySelector('canvas.fvz-looks-for').dataset.state.endsWith('8/8|done')"
    )
    assert close(view.evaluate(SAMPLE, SIZE), expected(state))
    view.evaluate("""() => { model.set("_looks_for", {}); }""")
    view.wait_for_function(
        "() => document.querySelector('canvas.fvz-looks-for').dataset.state === 'empty'"
    )
    assert "double-click a tile" in caption.inner_text()


def test_cancel_is_enabled_while_it_runs_and_export_saves_it(view):
    view.evaluate(
        """() => { model.set("_job", "looks_for"); model.set("busy", true);
                   model.set("status", "looks for: layer1 ch 3, step 4/8…"); }"""
    )
    view.wait_for_function("() => !document.querySelector('button.fvz-cancel').disabled")
    view.evaluate(
        """() => { HTMLAnchorElement.prototype.click = function () {
                     window.exported = [this.download, this.href.slice(0, 22)]; }; }"""
    )
    view.locator("select.fvz-export-view").select_option("looks_for")
    view.locator("button.fvz-export").click()
    name, href = view.evaluate("() => window.exported")
    assert name == "featviz-layer1-looks_for.png" and href == "data:image/png;base64,"
