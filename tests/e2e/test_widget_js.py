"""The front end alone in Chromium: js/widget.js rendered against a stand-in model.

The model's state is a real `FeatureExplorer`'s synced state; the stand-in records what the
view sets and sends. No Jupyter server, so these run in about a second each: painting,
optimistic channel preview, hover values, keyboard, upload, cleanup, and the theme rules for
hosts without JupyterLab's variables (Colab, VS Code).
"""

from __future__ import annotations

import base64
import json

import pytest
from conftest import resnet18_64px

from featviz_widgets.widget.explorer import FeatureExplorer

from .standalone import open_view, synced_state

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def state():
    model = resnet18_64px()
    explorer = FeatureExplorer(model, layer="layer1", num_features=9, stride=16)
    explorer.wait(60)
    explorer.position = [4, 4]
    explorer.wait(60)
    return synced_state(explorer)


@pytest.fixture
def view(browser, state):
    yield from open_view(browser, state, "canvas.fvz-input[data-state]")


def paints(page, name: str) -> int:
    return int(page.locator(f"canvas.fvz-{name}").get_attribute("data-paints") or 0)


def test_renders_every_panel(view, state):
    grid = view.locator("canvas.fvz-grid")
    assert grid.get_attribute("data-state").startswith("layer1|activation|9|per-tile|")
    assert view.locator("canvas.fvz-unit").get_attribute("data-state") == (
        f"layer1|{state['channel']}"
    )
    assert view.locator("canvas.fvz-occlusion").get_attribute("data-state").endswith("|16/16")
    assert view.locator("select.fvz-layer").input_value() == "layer1"
    assert view.locator("select.fvz-channel option").count() == 64
    assert "active channels" in view.locator("dl.fvz-stats").inner_text()
    assert view.locator(".fvz-chart svg").count() == 4
    assert view.locator(".fvz-device-label").inner_text() == "device: cpu"
    assert not view.locator(".fvz-progress").is_visible()


def test_tile_click_previews_the_channel_before_python_answers(view, state):
    channels = [
        int(c) for c in view.locator("canvas.fvz-grid").get_attribute("data-channels").split(",")
    ]
    box = view.locator("canvas.fvz-grid").bounding_box()
    tile = (box["width"] - 8) / 3
    view.locator("canvas.fvz-grid").click(position={"x": tile * 2.5 + 8, "y": 15 + tile / 2})
    assert view.evaluate("() => window.sets") == [["channel", channels[2]]]
    # painted from the grid tile: no _unit payload has arrived
    assert view.locator("canvas.fvz-unit").get_attribute("data-state") == f"layer1|{channels[2]}"
    assert view.locator("select.fvz-channel").input_value() == str(channels[2])


def test_hover_shows_the_value_under_the_cursor(view, state):
    meta = state["_grid"]
    data = base64.b64decode(state["_grid"]["data"]["__b64__"])
    box = view.locator("canvas.fvz-grid").bounding_box()
    tile = (box["width"] - 8) / 3
    view.locator("canvas.fvz-grid").hover(position={"x": 0.5, "y": 15.5})  # tile 0, cell (0, 0)
    text = view.locator(".fvz-tooltip").inner_text()
    value = meta["lo"][0] + data[0] / 255 * (meta["hi"][0] - meta["lo"][0])
    assert text.startswith(f"ch {meta['channels'][0]} (0, 0): ")
    assert float(text.rsplit(" ", 1)[1]) == pytest.approx(value, rel=0.01, abs=1e-3)
    view.locator("canvas.fvz-grid").hover(position={"x": tile - 1, "y": 15 + tile - 1})
    assert (
        view.locator(".fvz-tooltip").inner_text().startswith(f"ch {meta['channels'][0]} (15, 15)")
    )


def test_shared_scale_repaints_without_new_data(view):
    hash_js = """() => {
        const c = document.querySelector("canvas.fvz-grid");
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let s = 0; for (let i = 0; i < d.length; i += 7) s = (s * 31 + d[i]) >>> 0; return s;
    }"""
    before = view.evaluate(hash_js)
    view.locator("select.fvz-scale").select_option("shared")
    assert view.evaluate("() => window.sets") == [["color_scale", "shared"]]
    assert "|shared|" in view.locator("canvas.fvz-grid").get_attribute("data-state")
    assert view.evaluate(hash_js) != before


def test_controls_write_the_model(view):
    view.locator("select.fvz-sort").select_option("variance")
    view.locator("select.fvz-layer").select_option("layer2")
    view.locator("input.fvz-all").check()
    view.locator("input.fvz-num").fill("4")
    view.locator("input.fvz-num").press("Enter")
    view.locator("button.fvz-occlude").click()
    sets = dict(view.evaluate("() => window.sets"))
    assert sets == {"sort_by": "variance", "layer": "layer2", "all_layers": True, "num_features": 4}
    assert view.evaluate("() => window.sent") == [[{"type": "occlude"}, []]]
    view.locator("input.fvz-filter").fill("layer3")
    names = view.locator("select.fvz-layer option").all_inner_texts()
    assert all("layer3" in n or n.startswith("layer2") for n in names) and len(names) >= 2


def test_unit_click_and_keyboard(view, state):
    unit = view.locator("canvas.fvz-unit")
    box = unit.bounding_box()
    unit.click(position={"x": box["width"] * 0.9, "y": box["height"] * 0.1})
    assert view.evaluate("() => window.sets") == [["position", [1, 14]]]
    # same unit again: the position does not change, so the view asks for a rerun
    unit.click(position={"x": box["width"] * 0.9, "y": box["height"] * 0.1})
    assert view.evaluate("() => window.sent") == [[{"type": "occlude"}, []]]
    unit.focus()
    view.keyboard.press("ArrowDown")
    view.keyboard.press("ArrowLeft")
    view.keyboard.press("Enter")
    assert view.evaluate("() => window.sets")[-1] == ["position", [2, 13]]
    grid = view.locator("canvas.fvz-grid")
    channels = [int(c) for c in grid.get_attribute("data-channels").split(",")]
    grid.focus()
    view.keyboard.press("ArrowRight")
    assert view.evaluate("() => window.sets")[-1] == ["channel", channels[1]]
    view.keyboard.press("ArrowDown")
    assert view.evaluate("() => window.sets")[-1] == ["channel", channels[4]]


def test_upload_sends_the_file_bytes(view, tmp_path):
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG fake bytes")
    view.locator("input.fvz-file").set_input_files(str(picture))
    view.wait_for_function("() => window.sent.length === 1")
    [[message, sizes]] = view.evaluate("() => window.sent")
    assert sizes == [15] and isinstance(message.pop("id"), str)
    assert message == {"type": "upload", "name": "photo.png", "index": 0, "count": 1, "size": 15}


def test_upload_is_sent_in_chunks_of_the_contract_size(view, tmp_path):
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG fake bytes")
    view.evaluate("() => { model.get('_contract').chunk_bytes = 4; }")
    view.locator("input.fvz-file").set_input_files(str(picture))
    view.wait_for_function("() => window.sent.length === 4")
    sent = view.evaluate("() => window.sent")
    assert [sizes for _, sizes in sent] == [[4], [4], [4], [3]]
    assert len({message.pop("id") for message, _ in sent}) == 1
    assert [message for message, _ in sent] == [
        {"type": "upload", "name": "photo.png", "index": i, "count": 4, "size": 15}
        for i in range(4)
    ]


def test_upload_on_a_json_only_host_sends_base64_text(view, tmp_path):
    """Colab carries front-end messages as JSON: the bytes travel as base64 in the contract's
    upload data key, in pieces whose text stays within the chunk size."""
    picture = tmp_path / "photo.png"
    data = b"\x89PNG fake bytes"
    picture.write_bytes(data)
    view.evaluate(
        "() => { window.google = { colab: {} }; model.get('_contract').chunk_bytes = 8; }"
    )
    try:
        view.locator("input.fvz-file").set_input_files(str(picture))
        view.wait_for_function("() => window.sent.length === 3")
        sent = view.evaluate("() => window.sent")
    finally:
        view.evaluate("() => { delete window.google; }")
    key = view.evaluate("() => model.get('_contract').upload_data_key")
    assert [sizes for _, sizes in sent] == [[], [], []]
    pieces = [base64.b64decode(message.pop(key)) for message, _ in sent]
    assert pieces == [data[0:6], data[6:12], data[12:15]]
    assert len({message.pop("id") for message, _ in sent}) == 1
    assert [message for message, _ in sent] == [
        {"type": "upload", "name": "photo.png", "index": i, "count": 3, "size": 15}
        for i in range(3)
    ]


GRID_PIXELS = """() => {
  const c = document.querySelector("canvas.fvz-grid");
  return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data).join(",");
}"""

# Deliver the grid's bytes again as `kind` (a view at an offset into a larger buffer, as hosts
# hand them over, or a bare ArrayBuffer): first as the `_grid` trait's `data`, then as three
# pushes.chunk custom messages.
DELIVER = """([kind, how]) => {
  const { data: grid, ...meta } = model.get("_grid");
  const bytes = grid instanceof ArrayBuffer ? new Uint8Array(grid.slice(0))
    : new Uint8Array(grid.buffer, grid.byteOffset, grid.byteLength).slice();
  const wrap = (piece) => {
    const big = new Uint8Array(piece.length + 7);
    big.set(piece, 3);
    if (kind === "ArrayBuffer") return big.buffer.slice(3, 3 + piece.length);
    return kind === "DataView" ? new DataView(big.buffer, 3, piece.length)
      : new Uint8Array(big.buffer, 3, piece.length);
  };
  // something else first, so that the grid's cached mosaic cannot stand in for the data
  model.set("_grid", { ...meta, layer: "other", data: new Uint8Array(bytes.length).fill(7) });
  return new Promise((resolve) => setTimeout(() => {
    if (how === "trait") {
      model.set("_grid", { ...meta, data: wrap(bytes) });
    } else {
      const count = 3, step = Math.ceil(bytes.length / count);
      for (let index = 0; index < count; index++) {
        const piece = wrap(bytes.subarray(index * step, (index + 1) * step));
        const content = { type: "chunk", name: "_grid", id: 41, index, count, size: bytes.length };
        model.emit("msg:custom", content, [piece]);
      }
      model.set("_grid", { ...meta, chunked: { id: 41, size: bytes.length, count } });
    }
    setTimeout(resolve, 50);
  }, 50));
}"""


@pytest.mark.parametrize("kind", ["DataView", "Uint8Array", "ArrayBuffer"])
def test_grid_bytes_as_dataview_uint8array_or_arraybuffer_paint_the_same_pixels(view, kind):
    before = view.evaluate(GRID_PIXELS)
    for how in ("trait", "chunks"):
        view.evaluate(DELIVER, [kind, how])
        assert view.locator("canvas.fvz-grid").get_attribute("data-state").startswith("layer1|")
        assert view.evaluate(GRID_PIXELS) == before, f"{kind} as {how} painted other pixels"
    assert view.evaluate("() => window.sent") == []


def test_the_view_pulls_the_current_state_when_it_renders(view):
    assert view.evaluate("() => window.renderSent") == [[{"type": "pull"}, []]]
    view.wait_for_timeout(300)  # the stand-in kernel answered: a live view, not a snapshot
    assert not view.locator(".fvz").evaluate("el => el.classList.contains('fvz-snapshot')")
    assert view.evaluate("() => window.sent") == []


# The grid's payload in three chunks of id 5, as Python sends one too large for its trait,
# with chunk `skip` lost on the way (none lost: -1).
CHUNKS = """(skip) => {
  const { data, ...meta } = model.get("_grid");
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  window.goodGrid = { bytes, meta };
  const chunked = { id: 5, size: bytes.length, count: 3 };
  model.set("_grid", { ...meta, layer: "chunked", chunked });
  const step = Math.ceil(bytes.length / 3);
  for (let index = 0; index < 3; index++) {
    if (index === skip) continue;
    const content = { type: "chunk", name: "_grid", id: 5, index, count: 3, size: bytes.length };
    model.emit("msg:custom", content, [bytes.slice(index * step, (index + 1) * step)]);
  }
}"""


def test_an_incomplete_payload_is_never_painted_and_is_pulled_again(view):
    before = view.evaluate(GRID_PIXELS)
    view.evaluate(CHUNKS, 1)  # chunk 1 lost: chunk 2 comes out of order
    view.wait_for_function(BLANK_GRID)
    assert not view.locator("canvas.fvz-grid").get_attribute("data-state").startswith("chunked|")
    assert view.evaluate("() => window.sent") == [[{"type": "pull", "names": ["_grid"]}, []]]
    # repainting the same incomplete payload does not ask again (no loop while Python answers)
    view.evaluate("""() => model.set("color_scale", "shared")""")
    view.wait_for_timeout(200)
    assert view.evaluate(BLANK_GRID)
    assert len(view.evaluate("() => window.sent")) == 1
    # Python's answer: the same payload's chunks, all of them
    view.evaluate("""() => { model.set("color_scale", "per-tile");
        const { bytes } = window.goodGrid, size = bytes.length, step = Math.ceil(size / 3);
        for (let index = 0; index < 3; index++) {
          const content = { type: "chunk", name: "_grid", id: 5, index, count: 3, size };
          model.emit("msg:custom", content, [bytes.slice(index * step, (index + 1) * step)]);
        } }""")
    view.wait_for_function(
        "() => document.querySelector('canvas.fvz-grid').dataset.state.startsWith('chunked|')"
    )
    assert view.evaluate(GRID_PIXELS) == before
    assert len(view.evaluate("() => window.sent")) == 1


def test_a_saved_page_with_no_kernel_says_it_is_a_snapshot(browser, state):
    saved = {**state, "busy": True, "status": "comparing layers…", "_job": "compare"}
    saved["_contract"] = {**state["_contract"], "pull_timeout_ms": 200}
    page = next(open_view(browser, saved, "canvas.fvz-input[data-state]", kernel=False))
    page.wait_for_function("() => document.querySelector('.fvz.fvz-snapshot')")
    assert page.locator(".fvz-status-text").inner_text().startswith("Snapshot: no kernel")
    assert not page.locator(".fvz-progress").is_visible()  # the saved "busy" never ends
    assert page.locator("canvas.fvz-grid").get_attribute("data-state").startswith("layer1|")
    assert page.evaluate("() => window.renderSent") == [[{"type": "pull"}, []]]
    # what needs a kernel is disabled, the PNG export (drawn here) is not; a click on a tile
    # and arrow keys on the grid ask for nothing
    needs = ["select.fvz-layer", "select.fvz-channel", "input.fvz-num", "button.fvz-looks"]
    was = {sel: page.locator(sel).is_disabled() for sel in [*needs, "button.fvz-cancel"]}
    assert all(was[sel] for sel in needs) and was["button.fvz-cancel"]
    assert page.locator("button.fvz-export").is_enabled()
    grid = page.locator("canvas.fvz-grid")
    grid.click(position={"x": 30, "y": 30})
    grid.dblclick(position={"x": 30, "y": 30})
    grid.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(200)
    assert page.evaluate("() => [window.sets, window.sent]") == [[], []]
    # a kernel answers after all: every control has back the state it had
    page.evaluate(
        "(pulled) => window.model.emit('msg:custom', { type: pulled, names: [] })",
        saved["_contract"]["pushes"]["pulled"],
    )
    page.wait_for_function("() => !document.querySelector('.fvz.fvz-snapshot')")
    assert all(page.locator(sel).is_enabled() for sel in needs)
    assert page.locator("button.fvz-cancel").is_disabled()  # "compare" cannot be cancelled
    assert page.locator(".fvz-status-text").inner_text() == "comparing layers…"  # live: busy
    assert page.locator(".fvz-progress").is_visible()
    page.context.close()


def test_batch_buttons_and_arrow_keys_step_through_the_images(view):
    prev, after = view.locator("button.fvz-prev-image"), view.locator("button.fvz-next-image")
    assert prev.is_hidden() and after.is_hidden()  # one image: nothing to step through
    view.evaluate(
        """() => { model.set("_image", { ...model.get("_image"), batch: 3 });
                   window.sets.length = 0; }"""
    )
    view.wait_for_function("() => !document.querySelector('button.fvz-next-image').hidden")
    assert prev.is_disabled() and not after.is_disabled()
    assert view.locator(".fvz-image-name").inner_text().endswith("· image 1 of 3")
    after.click()
    assert view.evaluate("() => window.sets") == [["image_index", 1]]
    view.wait_for_function("() => !document.querySelector('button.fvz-prev-image').disabled")
    assert view.locator(".fvz-image-name").inner_text().endswith("· image 2 of 3")
    view.locator("canvas.fvz-input").focus()
    view.keyboard.press("ArrowRight")
    view.wait_for_function("() => document.querySelector('button.fvz-next-image').disabled")
    view.keyboard.press("ArrowRight")  # the last image: no further
    view.keyboard.press("ArrowLeft")
    prev.click()
    sets = view.evaluate("() => window.sets")
    assert sets == [["image_index", 1], ["image_index", 2], ["image_index", 1], ["image_index", 0]]
    assert view.locator(".fvz-image-name").inner_text().endswith("· image 1 of 3")


BLANK_GRID = """() => {
  const c = document.querySelector("canvas.fvz-grid");
  return c.getContext("2d").getImageData(0, 0, c.width, c.height).data.every((v) => v === 0);
}"""


def test_a_payload_whose_bytes_went_missing_is_pulled_once_and_painted_when_they_come(view):
    # a host that drops a state's binary buffers (Colab) leaves `data` short or absent
    before = view.evaluate(GRID_PIXELS)
    painted = paints(view, "grid")
    view.evaluate(
        """() => {
            window.good = model.get("_grid");
            const { data, ...meta } = window.good;
            model.set("_grid", { ...meta, data: new Uint8Array(meta.n * meta.h * meta.w - 7) });
        }"""
    )
    view.wait_for_function(BLANK_GRID)
    assert view.evaluate("() => window.sent") == [[{"type": "pull", "names": ["_grid"]}, []]]
    view.evaluate("""() => model.set("color_scale", "shared")""")
    view.wait_for_timeout(200)
    assert view.evaluate(BLANK_GRID)
    assert len(view.evaluate("() => window.sent")) == 1
    view.evaluate("""() => { model.set("color_scale", "per-tile");
                             model.set("_grid", window.good); }""")
    view.wait_for_function(
        f"() => Number(document.querySelector('canvas.fvz-grid').dataset.paints) > {painted}"
    )
    assert view.evaluate(GRID_PIXELS) == before
    assert len(view.evaluate("() => window.sent")) == 1


def test_busy_error_and_cancel(view):
    view.evaluate(
        """() => { model.set("status", "occlusion 3/49"); model.set("progress", 0.25);
                   model.set("_job", "view"); model.set("busy", true);
                   model.set("error", "ValueError: nope"); }"""
    )
    view.wait_for_function("() => !document.querySelector('.fvz-progress').hidden")
    # the job, not the status text, says whether there is a sweep to cancel
    assert view.locator("button.fvz-cancel").is_disabled()
    view.evaluate("""() => model.set("_job", "occlusion")""")
    view.wait_for_function("() => !document.querySelector('button.fvz-cancel').disabled")
    assert view.locator(".fvz-status-text").inner_text() == "occlusion 3/49"
    assert view.locator(".fvz-progress").evaluate("p => p.value") == 0.25
    assert view.locator(".fvz-error").inner_text().startswith("ValueError: nope")
    view.locator("button.fvz-cancel").click()
    assert view.evaluate("() => window.sent") == [[{"type": "cancel"}, []]]
    view.locator("button.fvz-error-close").click()
    assert view.evaluate("() => window.sets")[-1] == ["error", ""]
    view.wait_for_function("() => document.querySelector('.fvz-error').hidden")


def test_other_byte_containers_and_new_payloads(view, state):
    before = paints(view, "grid")
    view.evaluate(
        """() => {
            const { data, ...meta } = model.get("_grid");
            const bytes = new Uint8Array(meta.n * meta.h * meta.w).fill(128);
            // an ArrayBuffer, not a DataView
            window.model.set("_grid", { ...meta, layer: "patched", data: bytes.buffer });
        }"""
    )
    view.wait_for_function(
        f"() => Number(document.querySelector('canvas.fvz-grid').dataset.paints) > {before}"
    )
    assert view.locator("canvas.fvz-grid").get_attribute("data-state").startswith("patched|")


def test_resize_repaints_at_the_new_width(view):
    grid = view.locator("canvas.fvz-grid")
    before = paints(view, "grid")
    view.evaluate("() => { document.getElementById('host').style.width = '420px'; }")
    view.wait_for_function(
        "(n) => Number(document.querySelector('canvas.fvz-grid').dataset.paints) > n", arg=before
    )
    assert "fvz-narrow" in view.locator(".fvz").get_attribute("class").split()
    assert grid.bounding_box()["width"] <= 420


# Every control and canvas of the view that sticks out of it sideways, and how far the view
# itself scrolls sideways.
OVERFLOW = """() => {
  const root = document.querySelector(".fvz");
  const right = root.getBoundingClientRect().right + 0.5;
  const parts = root.querySelectorAll("select, input, button, label, canvas, .fvz-caption");
  const out = [...parts].filter((el) => el.offsetParent !== null)
    .filter((el) => el.getBoundingClientRect().right > right)
    .map((el) => `${el.tagName.toLowerCase()}.${el.className} +${
      Math.round(el.getBoundingClientRect().right - right)} px`);
  return { out, scroll: root.scrollWidth - root.clientWidth };
}"""


@pytest.mark.parametrize("width", [600, 400, 300, 240])
def test_in_a_narrow_output_every_control_wraps_into_view(view, width):
    view.evaluate(f"() => {{ document.getElementById('host').style.width = '{width}px'; }}")
    view.wait_for_function(
        f"() => document.querySelector('canvas.fvz-grid').getBoundingClientRect().width <= {width}"
    )
    view.wait_for_timeout(100)
    found = view.evaluate(OVERFLOW)
    assert found == {"out": [], "scroll": 0}
    # the panels stack: the side views under the grid, not beside it
    grid = view.locator("canvas.fvz-grid").bounding_box()
    side = view.locator("section.fvz-side").bounding_box()
    assert side["y"] >= grid["y"] + grid["height"]
    # and the layer menu still shows its whole choice, shrunk to the output, not hidden
    menu = view.locator("select.fvz-layer").bounding_box()
    assert 60 <= menu["width"] <= width


def test_cleanup_removes_listeners_and_dom(view):
    assert view.evaluate("() => window.listenerCount()") > 10
    view.evaluate("() => window.cleanup()")
    assert view.evaluate("() => window.listenerCount()") == 0
    assert view.locator(".fvz").count() == 0


INK = """([selector, x, y, w, h]) => {  // the most opaque pixel in a box (CSS px) of a canvas
  const canvas = document.querySelector(selector) || window.detached;
  const r = canvas.width / parseFloat(canvas.style.width);
  const data = canvas.getContext("2d").getImageData(x * r, y * r, w * r, h * r).data;
  let best = [0, 0, 0, 0];
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > best[3]) best = [...data.slice(i, i + 4)];
  }
  return best;
}"""


def test_canvas_text_repaints_on_a_theme_change_until_cleanup(view):
    label = ["canvas.fvz-grid", 0, 0, 60, 15]  # the first tile's caption
    assert sum(view.evaluate(INK, label)[:3]) / 3 < 80  # dark text on the light fallback
    before = paints(view, "occlusion")
    view.evaluate("() => document.body.classList.add('vscode-dark')")
    view.wait_for_function(
        "(n) => Number(document.querySelector('canvas.fvz-occlusion').dataset.paints) > n",
        arg=before,
        timeout=5_000,
    )
    assert sum(view.evaluate(INK, label)[:3]) / 3 > 180  # light text, without new data
    view.evaluate("() => document.body.classList.remove('vscode-dark')")
    view.wait_for_function(f"() => ({INK})({json.dumps(label)})[0] < 80", timeout=5_000)
    view.emulate_media(color_scheme="dark")  # hosts without theme variables follow the OS
    view.wait_for_function(f"() => ({INK})({json.dumps(label)})[0] > 180", timeout=5_000)
    view.evaluate("() => { window.detached = document.querySelector('canvas.fvz-grid'); }")
    count = paints(view, "grid")
    view.evaluate("() => window.cleanup()")
    view.emulate_media(color_scheme="light")
    view.evaluate("() => document.body.classList.add('vscode-light')")
    view.wait_for_timeout(200)
    assert view.evaluate("() => Number(window.detached.dataset.paints)") == count


def _background(page) -> tuple[float, ...]:
    css = page.evaluate("() => getComputedStyle(document.querySelector('.fvz')).backgroundColor")
    return tuple(float(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])


@pytest.mark.parametrize(
    ("scheme", "setup", "dark"),
    [
        ("light", "", False),
        ("dark", "", True),  # Colab: no --jp-* variables, the OS scheme decides
        ("light", "document.body.classList.add('vscode-dark')", True),
        ("dark", "document.body.classList.add('vscode-light')", False),
        # JupyterLab light theme on a dark OS: the host's variables win
        ("dark", "document.body.style.setProperty('--jp-layout-color1', '#ffffff')", False),
        ("light", "document.body.style.setProperty('--jp-layout-color1', '#111111')", True),
    ],
)
def test_theme_follows_the_host_then_the_os(view, scheme, setup, dark):
    view.emulate_media(color_scheme=scheme)
    if setup:
        view.evaluate(f"() => {{ {setup}; }}")
    if "vscode-light" in setup:
        view.evaluate(
            "() => document.body.style.setProperty('--vscode-editor-background', '#fffffe')"
        )
    # the view re-reads the theme when the OS scheme or the page's attributes change
    view.wait_for_function(
        """(dark) => { const c = getComputedStyle(document.querySelector('.fvz')).backgroundColor;
            const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number);
            return (v[0] + v[1] + v[2]) / 3 < 100 === dark; }""",
        arg=dark,
        timeout=3_000,
    )
    luminance = sum(_background(view)) / 3
    assert (luminance < 100) == dark, (scheme, setup, _background(view))


def test_in_a_shadow_root_on_a_dark_page_the_view_is_dark(view):
    """marimo renders widgets in a shadow root, and marks its dark theme outside it: the view
    reads the page behind it, not a class on <body>."""
    view.emulate_media(color_scheme="light")
    root = view.evaluate_handle(
        """() => {
            document.documentElement.style.background = "#121212";
            const outer = document.createElement("div");
            document.body.append(outer);
            const shadow = outer.attachShadow({ mode: "open" });
            const style = document.createElement("style");
            style.textContent = document.getElementById("css").textContent;
            const el = document.createElement("div");
            el.style.width = "900px";
            shadow.append(style, el);
            window.cleanup();
            window.widget.render({ model: window.model, el });
            return shadow;
        }"""
    )
    view.wait_for_function("(shadow) => shadow.querySelector('.fvz.fvz-dark')", arg=root)
    colours = view.evaluate(
        """(shadow) => { const s = getComputedStyle(shadow.querySelector('.fvz'));
                         return [s.backgroundColor, s.color]; }""",
        root,
    )
    background, text = (
        [float(v) for v in c[c.index("(") + 1 : c.index(")")].split(",")[:3]] for c in colours
    )
    assert sum(background) / 3 < 60 and sum(text) / 3 > 200, colours
    view.evaluate("() => { document.documentElement.style.background = '#fafafa'; }")
    view.wait_for_function("(shadow) => !shadow.querySelector('.fvz.fvz-dark')", arg=root)
    # computed colours keep their space: marimo's dark theme computes to color(srgb 0-1 ...)
    for background, dark in [
        ("color(srgb 0.094 0.11 0.102)", True),
        ("color(srgb 0.98 0.98 0.98)", False),
        ("oklch(0.2 0.02 150)", True),
        ("oklch(0.97 0.01 150)", False),
        ("lab(12 2 3)", True),
    ]:
        view.evaluate("(c) => { document.documentElement.style.background = c; }", background)
        found = "" if dark else "!"
        view.wait_for_function(
            f"(shadow) => {found}shadow.querySelector('.fvz.fvz-dark')", arg=root, timeout=3_000
        )


def test_the_pca_panel_paints_its_payload_or_says_why_not(view, state):
    canvas = view.locator("canvas.fvz-pca")
    view.wait_for_function(
        "() => (document.querySelector('canvas.fvz-pca').dataset.state || '').includes('x')"
    )
    share = round(100 * sum(state["_pca"]["explained"]))
    assert canvas.get_attribute("data-state") == f"layer1|16x16|{share}"
    caption = view.locator("figure:has(canvas.fvz-pca) figcaption")
    assert caption.inner_text() == f"layer1 as colour: PCA 1–3, {share}% of the variance"
    drawn = view.evaluate(
        """() => { const c = document.querySelector("canvas.fvz-pca");
                   const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                   return new Set(Array.from(d.filter((_, i) => i % 4 === 0))).size; }"""
    )
    assert drawn > 16  # colours over the picture, not a blank canvas
    assert "pca" in view.locator("select.fvz-export-view option").all_inner_texts()
    view.evaluate(
        """() => model.set("_pca", { layer: "fc", h: 0, w: 0, explained: [],
                                     note: "one position", data: new Uint8Array(0) })"""
    )
    view.wait_for_function(
        "() => document.querySelector('canvas.fvz-pca').dataset.state === 'fc|note'"
    )
    assert caption.inner_text() == "Layer as colour: one position"
    assert view.evaluate("() => window.sent") == []
