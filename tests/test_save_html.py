"""`FeatureExplorer.save_html` without a browser: the page is self-contained, holds every layer
of the menu (or those asked for) with every channel's map, keeps what was computed (occlusion,
class evidence), cuts the grid and channel payloads in JS byte for byte as `grid_view` and
`unit_view` make them (static/offline.js run by Node), and refuses bad input writing nothing.

A real timm model (random weights, 64 px input) and a real photo (matplotlib's Grace Hopper).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import resnet18_64px, scene
from matplotlib import cbook
from PIL import Image

from featviz_widgets.core.capture import LayerNotFoundError
from featviz_widgets.widget.explorer import FeatureExplorer
from featviz_widgets.widget.panels import PAYLOADS
from featviz_widgets.widget.panels.evidence import CLASS_CONTRIBUTION
from featviz_widgets.widget.panels.grid import grid_view
from featviz_widgets.widget.panels.unit import unit_view
from featviz_widgets.widget.payload import decode_maps
from featviz_widgets.widget.protocol import CORE_SORT_MODES, INLINE_PAYLOAD_BYTES

REPO = Path(__file__).resolve().parents[1]
OFFLINE_JS = REPO / "featviz_widgets" / "static" / "offline.js"
SAVED = re.compile(r'<script type="application/json" id="fvz-saved">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def explorer():
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        photo = Image.open(file).convert("RGB")
    explorer = FeatureExplorer(
        resnet18_64px(), photo, layer="layer1", num_features=9, stride=16, class_evidence=True
    )
    explorer.wait(60)
    explorer.position = [4, 4]  # an occlusion sweep: computed before saving, so saved
    explorer.wait(60)
    yield explorer
    explorer.close()


@pytest.fixture(scope="module")
def page(explorer, tmp_path_factory) -> tuple[Path, str]:
    path = explorer.save_html(tmp_path_factory.mktemp("saved") / "explorer.html")
    return path, path.read_text(encoding="utf-8")


def saved_data(text: str) -> dict:
    match = SAVED.search(text)
    assert match is not None, "the page holds no saved state"
    return json.loads(match.group(1))


def layer_bytes(record: dict) -> bytes:
    return base64.b64decode(record["data"])


def test_the_page_is_one_file_with_no_network_reference(page):
    path, text = page
    assert path.suffix == ".html" and text.startswith("<!doctype html>")
    assert re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I) == []
    assert re.findall(r"""\bimport\b[^;\n]*?["'](?:https?:)?//""", text) == []
    assert re.findall(r"""url\(\s*["']?(?:https?:)?//""", text, re.I) == []
    assert "<script src" not in text and "<link" not in text
    # its parts are inlined: the bundle (in the saved JSON), its CSS, the offline model
    saved = saved_data(text)
    static = REPO / "featviz_widgets" / "static"
    assert saved["esm"] == (static / "widget.js").read_text(encoding="utf-8")
    assert (static / "widget.css").read_text(encoding="utf-8") in text
    assert OFFLINE_JS.read_text(encoding="utf-8") in text
    assert "Snapshot without a kernel" in text


def test_every_menu_layer_is_saved_with_every_channel(page, explorer):
    saved = saved_data(page[1])
    assert list(saved["layers"]) == explorer.layers
    assert [entry["name"] for entry in saved["state"]["_layers"]] == explorer.layers
    for name, record in saved["layers"].items():
        features = explorer.visualizer.layer_view(explorer.image, name).features
        count, height, width = features.shape[1:]
        maps = record["maps"]
        assert (maps["n"], maps["h"], maps["w"]) == (count, height, width), name
        assert len(layer_bytes(record)) == count * height * width
        assert len(record["means"]) == len(record["unit_means"]) == count
        for mode in CORE_SORT_MODES:
            assert sorted(record["rankings"][mode]) == list(range(count)), (name, mode)
        decoded = decode_maps(layer_bytes(record), maps)
        np.testing.assert_allclose(
            decoded, features[0].numpy(), atol=float(np.ptp(features[0].numpy())) / 500
        )


def test_the_computed_payloads_are_kept_with_their_bytes(page, explorer):
    state = saved_data(page[1])["state"]
    assert set(PAYLOADS) <= set(state)
    raw = explorer.get_state()
    for name in ("_image", "_grid", "_unit", "_occlusion", "_evidence", "_pca"):
        assert "chunked" not in state[name], name
        meta = {k: v for k, v in raw[name].items() if k not in ("data", "chunked")}
        assert {k: v for k, v in state[name].items() if k != "data"} == meta, name
        assert base64.b64decode(state[name]["data"]["__b64__"]) == bytes(raw[name]["data"])
    assert state["_occlusion"]["layer"] == "layer1" and state["_occlusion"]["complete"]
    assert state["busy"] is False and state["error"] == ""
    # class evidence ranks layer1's channels: that layer's "class contribution" ranking
    layers = saved_data(page[1])["layers"]
    ranks = state["_evidence"]["ranks"]
    assert layers["layer1"]["rankings"][CLASS_CONTRIBUTION] == sorted(
        range(len(ranks)), key=ranks.__getitem__
    )
    assert CLASS_CONTRIBUTION not in layers["layer3"]["rankings"]


def test_a_payload_sent_in_chunks_is_saved_inline(tmp_path):
    """A 64-map grid of 112 x 112 maps is past `INLINE_PAYLOAD_BYTES`: the live view gets it in
    chunks, the saved page holds its bytes."""
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False)
    explorer = FeatureExplorer(model, scene(224, 224), layer="conv1", num_features=64)
    try:
        explorer.wait(60)
        assert "chunked" in explorer.get_state("_grid")["_grid"]
        path = explorer.save_html(tmp_path / "chunked.html", layers=["conv1"])
        grid = saved_data(path.read_text(encoding="utf-8"))["state"]["_grid"]
        data, meta = grid_view(explorer.features, explorer.ranking, 64, "conv1", "activation")
    finally:
        explorer.close()
    assert len(data) == 64 * 112 * 112 > INLINE_PAYLOAD_BYTES
    assert "chunked" not in grid and base64.b64decode(grid["data"]["__b64__"]) == data
    assert {key: value for key, value in grid.items() if key != "data"} == meta


def test_saving_leaves_the_explorer_as_it_was(page, explorer):
    assert (explorer.layer, explorer.num_features, explorer.busy) == ("layer1", 9, False)
    assert explorer.features.shape[1] == 64


def test_the_offline_model_cuts_the_views_python_would_send(page, explorer, tmp_path):
    """offline.js's grid and channel payloads, run by Node, equal `grid_view`'s and
    `unit_view`'s to the byte, for every sort mode and for channels the grid does not show."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js (the README's test command does)")
    layers = saved_data(page[1])["layers"]
    cases, expected = [], []
    for name in ("layer1", "layer3", "layer4.1"):
        record = layers[name]
        features = explorer.visualizer.layer_view(explorer.image, name).features.float()
        count = features.shape[1]
        for mode, order in record["rankings"].items():
            for num in (1, 9, 300):
                cases.append(
                    {"kind": "grid", "layer": name, "order": order, "num": num, "mode": mode}
                )
                expected.append(grid_view(features, order, num, name, mode))
        for channel in (0, record["rankings"]["activation"][-1], count - 1):
            cases.append({"kind": "unit", "layer": name, "channel": channel})
            expected.append(unit_view(features, channel, name))
    (tmp_path / "input.json").write_text(json.dumps({"layers": layers, "cases": cases}))
    script = f"""
import {{ readFileSync }} from "node:fs";
import {{ cutGrid, cutUnit, fromBase64 }} from {json.dumps(OFFLINE_JS.as_uri())};
const {{ layers, cases }} = JSON.parse(readFileSync(process.argv[1], "utf8"));
const out = cases.map((c) => {{
  const layer = layers[c.layer];
  const bytes = fromBase64(layer.data);
  const cut = c.kind === "grid"
    ? cutGrid(layer, bytes, c.order, c.num, c.layer, c.mode, 256)
    : cutUnit(layer, bytes, c.channel, c.layer);
  return {{ meta: cut.meta, data: Buffer.from(cut.data).toString("base64") }};
}});
process.stdout.write(JSON.stringify(out));
"""
    run = subprocess.run(
        [node, "--input-type=module", "-e", script, str(tmp_path / "input.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert len(got) == len(expected) > 20
    for case, cut, (data, meta) in zip(cases, got, expected, strict=True):
        assert base64.b64decode(cut["data"]) == data, case["kind"]
        assert cut["meta"] == json.loads(json.dumps(meta)), case["kind"]


def test_layers_saves_only_those(explorer, tmp_path):
    path = explorer.save_html(tmp_path / "two.html", layers=["layer3", "layer2", "layer3"])
    saved = saved_data(path.read_text(encoding="utf-8"))
    assert list(saved["layers"]) == ["layer3", "layer2"]
    assert [entry["name"] for entry in saved["state"]["_layers"]] == ["layer3", "layer2"]
    # a module outside the menu (a block's convolution) gets its own menu entry
    path = explorer.save_html(tmp_path / "conv.html", layers=["layer2.0.conv1"])
    entry = saved_data(path.read_text(encoding="utf-8"))["state"]["_layers"][0]
    assert entry["name"] == "layer2.0.conv1" and entry["shape"] == [128, 8, 8]


def test_the_size_follows_the_maps_saved(explorer, tmp_path, page):
    small = explorer.save_html(tmp_path / "small.html", layers=["layer4"])
    whole = page[0].stat().st_size
    maps = sum(len(layer_bytes(r)) for r in saved_data(page[1])["layers"].values())
    # base64 is 4/3 of the bytes; the front end and the state add the rest
    assert maps * 4 / 3 < whole < maps * 4 / 3 + 2_000_000
    assert small.stat().st_size < whole - maps  # one small layer instead of all of them


def test_an_unknown_layer_lists_the_closest_and_writes_nothing(explorer, tmp_path):
    target = tmp_path / "bad.html"
    with pytest.raises(LayerNotFoundError, match=r"'layr2'.*Closest layers: 'layer2'"):
        explorer.save_html(target, layers=["layer1", "layr2"])
    with pytest.raises(ValueError, match="`layers` is empty"):
        explorer.save_html(target, layers=[])
    with pytest.raises(TypeError, match="list of layer names"):
        explorer.save_html(target, layers="layer1")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_refused_and_nothing_is_written(explorer, tmp_path):
    target = tmp_path / "no" / "such" / "explorer.html"
    with pytest.raises(FileNotFoundError, match=r"the folder .*no/such' does not exist"):
        explorer.save_html(target)
    assert list(tmp_path.iterdir()) == []


def test_offline_js_type_checks():
    tsc = REPO / "js" / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        pytest.skip("js/node_modules is not installed (tests/test_js.py installs it: npm ci)")
    options = "--noEmit --allowJs --checkJs --strict --noUnusedLocals --noUnusedParameters"
    run = subprocess.run(
        [str(tsc), *options.split(), "--target", "es2022", "--module", "es2022"]
        + ["--moduleResolution", "bundler", "--lib", "es2022,dom,dom.iterable", str(OFFLINE_JS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert OFFLINE_JS.read_text(encoding="utf-8").startswith("// @ts-check")
