"""FeatureExplorer's state machine, without a browser: traits, payloads, worker, errors, cache.

A real timm resnet18 (random weights, 64 px input so every forward takes milliseconds) stands
in for the model. The view's side is played by setting traits and calling the message handler,
exactly what the comm layer does for a front end.
"""

from __future__ import annotations

import base64
import gc
import inspect
import io
import json
import os
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import traitlets
from conftest import ModelSnapshot, before_each_forward, resnet18_64px, scene
from ipywidgets.widgets.widget import _instances
from PIL import Image
from torch import nn

from featviz_widgets.core.layers import default_compare, default_layer
from featviz_widgets.visualizer.facade import LayerInfo
from featviz_widgets.widget import payload as _payload
from featviz_widgets.widget.explorer import SAMPLE_IMAGE, FeatureExplorer, _asset
from featviz_widgets.widget.panels import PAYLOADS
from featviz_widgets.widget.payload import decode_maps, encode_maps
from featviz_widgets.widget.protocol import (
    CHUNK_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_UPLOAD_BYTES,
    UPLOAD_DATA_KEY,
    json_safe,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return resnet18_64px()


@pytest.fixture
def make(model):
    """Build explorers that are closed (worker stopped) after the test."""
    made: list[FeatureExplorer] = []

    def build(wait: bool = True, **kwargs) -> FeatureExplorer:
        kwargs.setdefault("layer", "layer1")
        explorer = FeatureExplorer(kwargs.pop("model", model), **kwargs)
        made.append(explorer)
        return explorer.wait(60) if wait else explorer

    yield build
    for explorer in made:
        explorer.close()


class ForwardCounter:
    """Counts forwards of the model and of one of its modules, via removable hooks."""

    def __init__(self, model: nn.Module, module: nn.Module) -> None:
        self.model_calls = 0
        self.module_calls = 0
        self._handles = [
            model.register_forward_pre_hook(lambda *_: self._bump("model_calls")),
            module.register_forward_pre_hook(lambda *_: self._bump("module_calls")),
        ]

    def _bump(self, name: str) -> None:
        setattr(self, name, getattr(self, name) + 1)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


@contextmanager
def held(explorer: FeatureExplorer):
    """Keep the explorer's worker busy with a job of the test's own: whatever is asked meanwhile
    stays queued behind it, as behind a slow forward, until the block ends."""
    started, release = threading.Event(), threading.Event()

    def hold(job) -> None:
        started.set()
        release.wait(30)

    explorer._worker.submit("test", hold, lambda job, exc: None)
    assert started.wait(30), "the worker never picked up the holding job"
    try:
        yield
    finally:
        release.set()


# ---------------------------------------------------------------------------- payloads
def test_encode_maps_round_trip_within_half_a_step():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 7, 9)).astype(np.float32) * [[[1]], [[10]], [[0.1]], [[3]], [[1]]]
    data, meta = encode_maps(maps)
    assert len(data) == 5 * 7 * 9 and (meta["n"], meta["h"], meta["w"]) == (5, 7, 9)
    decoded = decode_maps(data, meta)
    step = (np.asarray(meta["hi"]) - np.asarray(meta["lo"])) / 255
    assert np.all(np.abs(decoded - maps) <= step[:, None, None] / 2 + 1e-6)
    assert meta["lo"] == pytest.approx(maps.min(axis=(1, 2)).tolist())


def test_encode_maps_constant_and_non_finite_tiles():
    maps = np.stack([np.full((3, 3), 2.5), np.array([[0, np.nan, 1], [np.inf, 2, 0], [0, 0, 0]])])
    data, meta = encode_maps(maps)
    assert meta["lo"] == [2.5, 0.0] and meta["hi"] == [2.5, 2.0]  # inf/NaN do not widen
    q = np.frombuffer(data, np.uint8).reshape(2, 3, 3)
    assert (q[0] == 0).all() and q[1, 0, 1] == 0 and q[1, 1, 1] == 255
    assert encode_maps(np.zeros((0, 4, 4)))[1]["n"] == 0


def test_json_safe_replaces_non_finite_numbers():
    value = {"a": float("nan"), "b": [1, np.float32(np.inf)], "c": (np.int64(3), True)}
    assert json_safe(value) == {"a": None, "b": [1, None], "c": [3, True]}


def test_png_payload_is_a_png():
    rgb = np.zeros((4, 6, 3), np.uint8)
    assert Image.open(io.BytesIO(_payload.encode_png(rgb))).size == (6, 4)


# ---------------------------------------------------------------------------- front end
def test_front_end_is_the_packaged_bundle():
    # the package's own copy, so an installed wheel and an editable install load the same file
    assert _asset("widget.js") == REPO / "featviz_widgets" / "static" / "widget.js"
    assert _asset("widget.css").parent == _asset("widget.js").parent


def test_front_end_files_are_found_and_synced():
    assert _asset("widget.js").is_file() and _asset("widget.css").is_file()
    explorer_cls = FeatureExplorer
    assert "export default" in str(explorer_cls._esm)
    assert ".fvz" in str(explorer_cls._css)


# ---------------------------------------------------------------------------- construction
def test_initial_state(make, model):
    explorer = make(num_features=9)
    viz = explorer.visualizer
    names = [entry["name"] for entry in explorer._layers]
    assert "layer1" in names and "layer4" in names
    entry = explorer._layers[names.index("layer1")]
    assert entry["shape"] == [64, 16, 16] and entry["layout"] == "NCHW"
    assert explorer.layer == "layer1" and explorer.error == "" and not explorer.busy
    features = viz.get_features(SAMPLE_IMAGE, "layer1")
    assert torch.equal(explorer.features, features)
    order = viz.rank_channels(SAMPLE_IMAGE, "layer1", "activation")
    assert explorer._order == order and explorer.channel == order[0]
    # the grid payload: the top 9 maps, decoded within quantisation error
    meta = explorer._grid
    assert meta["channels"] == order[:9] and meta["layer"] == "layer1"
    grid = decode_maps(explorer._grid["data"], meta)
    expected = features[0, order[:9]].numpy()
    assert np.abs(grid - expected).max() <= (max(meta["hi"]) - min(meta["lo"])) / 255
    assert meta["means"] == pytest.approx(expected.mean(axis=(1, 2)).tolist(), rel=1e-5)
    # the channel view and the statistics
    unit = decode_maps(explorer._unit["data"], explorer._unit)[0]
    assert np.allclose(unit, features[0, order[0]].numpy(), atol=features.max().item() / 200)
    stats = viz.get_feature_statistics(SAMPLE_IMAGE, "layer1")
    assert explorer.statistics["mean"] == pytest.approx(stats["mean"])
    assert explorer.statistics["spatial_size"] == [16, 16]
    # the picture as the model sees it, as PNG
    picture = Image.open(io.BytesIO(explorer._image["data"]))
    assert picture.size == (64, 64) and explorer._image["name"] == "sample.png"
    assert explorer._devices[0] == "cpu" and explorer.device == viz.device.type
    # the comparison chart: the top-level stages
    assert explorer.compare[-4:] == ["layer1", "layer2", "layer3", "layer4"]
    assert set(explorer.compare_statistics) == set(explorer.compare)


def test_default_layer_and_comparison_prefer_stages():
    def info(name, c, size):
        return LayerInfo(name, "Module", (c, size, size), "NCHW")

    layers = [
        info("conv1", 64, 112),
        info("layer1", 64, 56),
        info("layer1.0", 64, 56),
        info("layer2", 128, 28),
        info("layer3", 256, 14),
        info("layer3.0", 256, 14),
        info("layer4", 512, 7),
        info("layer4.1", 512, 7),
        info("global_pool", 512, 1),
    ]
    assert default_layer(layers) == "layer3"
    assert default_layer([info("blocks.0", 8, 4), info("blocks.1", 8, 4)]) == "blocks.0"
    assert default_compare(layers) == ["conv1", "layer1", "layer2", "layer3", "layer4"]
    deep = [info(f"blocks.{i}", 8, 14) for i in range(20)]
    assert len(default_compare(deep)) == 12 and default_compare(deep)[-1] == "blocks.19"


def test_constructor_rejects_bad_arguments(model):
    with pytest.raises(TypeError, match="Unexpected keyword argument 'num_feature'"):
        FeatureExplorer(model, num_feature=4)
    with pytest.raises(ValueError, match="not found"):
        FeatureExplorer(model, layer="layer9")
    with pytest.raises(ValueError, match="`stride` must be a positive integer"):
        FeatureExplorer(model, stride=0)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        FeatureExplorer("resnet18")


def test_layers_argument_restricts_the_dropdown(make):
    explorer = make(layers=["layer1", "layer2.0.conv1"], layer="layer2.0.conv1")
    assert [e["name"] for e in explorer._layers] == ["layer1", "layer2.0.conv1"]
    assert explorer.features.shape[1:] == (128, 8, 8)


# ---------------------------------------------------------------------------- interactions
def test_sort_channel_and_num_features_never_run_the_model(make, model):
    explorer = make()
    twin = explorer.visualizer.model  # what the explorer's forwards run on
    counter = ForwardCounter(twin, twin.conv1)
    try:
        explorer.sort_by = "variance"
        order = explorer.visualizer.rank_channels(SAMPLE_IMAGE, "layer1", "variance")
        assert explorer._order == order and explorer._grid["channels"] == order[:16]
        assert explorer._grid["sort_by"] == "variance"
        explorer.sort_by = "random"
        assert sorted(explorer._order) == list(range(64)) and explorer._order != order
        explorer.num_features = 25
        assert explorer._grid["n"] == 25 and len(explorer._grid["data"]) == 25 * 16 * 16
        explorer.num_features = 500  # more than the layer has: all of them
        assert explorer._grid["n"] == 64
        explorer.channel = 5
        assert explorer._unit["channel"] == 5
        unit = decode_maps(explorer._unit["data"], explorer._unit)[0]
        assert np.allclose(unit, explorer.features[0, 5].numpy(), atol=0.05)
        explorer.color_scale = "shared"
        explorer.wait(10)
        assert counter.model_calls == 0
    finally:
        counter.remove()


def test_layer_change_runs_one_forward_stopped_at_the_layer(make, model):
    explorer = make()
    twin = explorer.visualizer.model  # what the explorer's forwards run on
    counter = ForwardCounter(twin, twin.layer3)
    try:
        explorer.layer = "layer2.0"  # not in the comparison chart, so not cached yet
        explorer.wait(30)
        assert counter.model_calls == 1 and counter.module_calls == 0
        explorer.layer = "layer1"
        explorer.layer = "layer2.0"  # cached now: no forward at all
        explorer.wait(30)
        assert counter.model_calls == 1
    finally:
        counter.remove()
    assert explorer.features.shape == (1, 128, 8, 8)
    assert explorer._grid["layer"] == "layer2.0"
    assert explorer.statistics["num_channels"] == 128
    assert explorer.channel == explorer._order[0] and explorer.position == []


def test_channel_set_right_after_a_layer_change_is_kept(make):
    explorer = make()
    explorer.layer = "layer3"
    explorer.channel = 200  # valid for layer3 (256 channels), not for layer1 (64)
    explorer.wait(30)
    assert explorer.channel == 200 and explorer._unit["channel"] == 200


class Fragile(nn.Module):
    """A 4-channel stem and an 8-channel body whose forward raises while `broken`. The body's
    channel k is the constant k, so its ranking by activation starts with channel 7."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Conv2d(4, 8, 1)
        with torch.no_grad():
            self.body.weight.zero_()
            self.body.bias.copy_(torch.arange(8.0))
        self.broken = False

    def forward(self, x):
        x = self.stem(x)
        if self.broken:
            raise RuntimeError("boom in body")
        return self.body(x)


def test_channel_for_a_pending_layer_is_checked_restored_and_dropped(make, tmp_path):
    fragile = Fragile()
    explorer = make(model=fragile, layer="stem", compare=["stem"])  # nothing cached for body
    shown = explorer.channel
    fragile.broken = True
    with held(explorer):
        explorer.layer = "body"
        # checked against the layer it will apply to, not the one shown
        with pytest.raises(traitlets.TraitError, match=r"`channel` 8 is out of range for 'body'"):
            explorer.channel = 8
        explorer.channel = 5  # out of range for the stem, fine for the body
    explorer.wait(30)
    assert "boom in body" in explorer.error
    assert explorer.layer == "stem" and explorer.channel == shown  # both back to what is shown
    assert explorer._unit["channel"] == shown
    assert explorer.save_png(tmp_path / "channel.png", view="channel").is_file()
    # the failed job's request is gone: the next view of the body starts at its top channel
    fragile.broken = False
    explorer.layer = "body"
    explorer.wait(30)
    assert explorer.error == "" and explorer.ranking[0] == 7 and explorer.channel == 7
    # a request for a layer that another layer change replaced is not applied to that one
    with held(explorer):
        explorer.layer = "stem"
        explorer.channel = 2
        explorer.layer = "body"
    explorer.wait(30)
    assert explorer.layer == "body" and explorer.channel == 7


def test_latest_layer_request_wins(make):
    explorer = make()
    seen: list[str] = []
    explorer.observe(lambda change: seen.append(change["new"].get("layer")), names="_grid")
    for name in ["layer2", "layer3", "layer4", "layer2.1", "layer3"]:
        explorer.layer = name
    explorer.wait(30)
    assert explorer.layer == "layer3" and explorer._grid["layer"] == "layer3"
    assert seen[-1] == "layer3" and len(seen) < 5  # superseded requests were skipped
    assert explorer.features.shape[1] == 256


def test_invalid_values_raise_trait_errors(make):
    explorer = make()
    with pytest.raises(traitlets.TraitError, match="Closest layers"):
        explorer.layer = "layer_1"
    with pytest.raises(traitlets.TraitError, match=r"out of range .* 64 channels"):
        explorer.channel = 64
    with pytest.raises(traitlets.TraitError, match="at least 1"):
        explorer.num_features = 0
    with pytest.raises(traitlets.TraitError, match="outside the 16x16 map"):
        explorer.position = [16, 0]
    with pytest.raises(traitlets.TraitError, match="`device` must be one of"):
        explorer.device = "tpu"
    with pytest.raises(traitlets.TraitError):
        explorer.sort_by = "magnitude"
    assert explorer.layer == "layer1" and explorer.error == ""


def test_all_layers_toggle_lists_every_module(make):
    explorer = make()
    short = len(explorer._layers)
    explorer.all_layers = True
    explorer.wait(30)
    names = [entry["name"] for entry in explorer._layers]
    assert len(names) > short and "layer1.0.conv1" in names and "layer1.0.bn2" in names
    explorer.layer = "layer1.0.conv2"
    explorer.wait(30)
    assert explorer.features.shape == (1, 64, 16, 16)


def test_compare_runs_in_the_background(make):
    explorer = make()
    explorer.compare = ["layer1", "layer3"]
    explorer.wait(30)
    assert list(explorer.compare_statistics) == ["layer1", "layer3"]
    assert explorer.compare_statistics["layer3"]["num_channels"] == 256


# ---------------------------------------------------------------------------- occlusion
def test_position_runs_occlusion_with_progress_and_channels_reuse_it(make, model):
    explorer = make(stride=8)
    progress: list[float] = []
    explorer.observe(lambda change: progress.append(change["new"]), names="progress")
    explorer.position = [3, 12]
    explorer.wait(60)
    meta = explorer._occlusion
    assert meta["complete"] and meta["done"] == meta["total"] == 49 and not meta["cancelled"]
    assert meta["position"] == [3, 12] and meta["map_size"] == [16, 16]
    assert explorer.position == [3, 12] and explorer.error == ""
    assert any(0 < p < 1 for p in progress) and max(progress) == 1.0
    reference = explorer.visualizer.occlusion(SAMPLE_IMAGE, "layer1", (3, 12), stride=8)
    shown = decode_maps(explorer._occlusion["data"], meta)[0]
    assert shown.shape == (64, 64)
    assert np.allclose(shown, reference.map(explorer.channel), atol=1 / 255)
    # another channel: the same sweep, no forward
    twin = explorer.visualizer.model
    counter = ForwardCounter(twin, twin.conv1)
    try:
        other = explorer._order[3]
        explorer.channel = other
        assert explorer._occlusion["channel"] == other
        assert np.allclose(
            decode_maps(explorer._occlusion["data"], explorer._occlusion)[0],
            reference.map(other),
            atol=1 / 255,
        )
        assert np.array_equal(explorer.occlusion_map(other), reference.map(other))
        assert counter.model_calls == 0
    finally:
        counter.remove()
    # a layer change drops the old map
    explorer.layer = "layer2"
    explorer.wait(30)
    assert explorer._occlusion == {}


def test_cancel_stops_a_running_occlusion_and_keeps_the_kernel_free(make):
    explorer = make(stride=1)  # 2401 placements: seconds of work
    started = threading.Event()
    explorer.observe(
        lambda change: started.set() if change["new"].get("done") else None,
        names="_occlusion",
    )
    explorer.run_occlusion()
    assert started.wait(30), "no partial occlusion map arrived"
    # the shell thread stays free: a sort change is answered while the sweep runs
    begin = time.perf_counter()
    explorer.sort_by = "variance"
    assert time.perf_counter() - begin < 0.5 and explorer._grid["sort_by"] == "variance"
    assert explorer.busy and explorer._job == "occlusion"  # the view's Cancel is enabled
    explorer._handle_message(explorer, {"type": "cancel"}, [])
    explorer.wait(30)
    meta = explorer._occlusion
    assert meta["cancelled"] and not meta["complete"] and 0 < meta["done"] < meta["total"]
    assert explorer.error == "" and not explorer.busy and explorer._job == "idle"
    assert explorer.position == []  # the unit was never completed


def test_job_names_what_the_worker_runs(make):
    explorer = make()
    assert explorer._job == "idle"
    jobs: list[str] = []
    explorer.observe(lambda change: jobs.append(change["new"]), names="_job")
    explorer.layer = "layer2"
    explorer.wait(30)
    assert jobs[0] == "view" and jobs[-1] == "idle" and "occlusion" not in jobs
    jobs.clear()
    explorer.run_occlusion()
    explorer.wait(30)
    assert jobs == ["occlusion", "idle"]


def test_occlude_message_uses_the_map_centre(make):
    explorer = make(layer="layer3", stride=16)
    explorer._handle_message(explorer, {"type": "occlude"}, [])
    explorer.wait(30)
    assert explorer._occlusion["position"] == [2, 2] and explorer.position == [2, 2]


def test_run_occlusion_at_the_current_position_runs_again(make):
    explorer = make(stride=16)
    with held(explorer):
        explorer.position = [3, 4]
        explorer.cancel()  # before the sweep started: nothing runs
    explorer.wait(30)
    assert explorer._occlusion == {} and explorer.position == [3, 4]
    explorer.run_occlusion([3, 4])  # the same value: traitlets sends no change
    explorer.wait(30)
    meta = explorer._occlusion
    assert meta.get("complete"), f"run_occlusion() at the current position did nothing: {meta}"
    assert meta["position"] == [3, 4] and meta["done"] == meta["total"] == 16
    assert not meta["cancelled"] and explorer.error == ""


def test_position_set_while_a_view_is_pending_runs_once_the_view_is_ready(make):
    explorer = make(stride=16)
    with held(explorer):
        explorer.layer = "layer2"  # 8x8 maps, layer1's are 16x16
        with pytest.raises(traitlets.TraitError, match=r"outside the 8x8 map of 'layer2'"):
            explorer.position = [12, 12]
        explorer.position = [2, 5]
        assert explorer._occlusion == {}  # nothing ran on layer1
    explorer.wait(30)
    meta = explorer._occlusion
    assert meta["layer"] == "layer2" and meta["position"] == [2, 5] and meta["complete"]
    assert explorer.position == [2, 5] and explorer.error == ""
    # a click in a front end arrives as set_state: a unit that does not fit the layer being
    # computed is reported in `error` and the view is reset; one that fits runs after the view
    with held(explorer):
        explorer.layer = "layer3"  # 4x4
        explorer.set_state({"position": [6, 1]})
        assert "`position` [6, 1] is outside the 4x4 map of 'layer3'" in explorer.error
        assert explorer.position == [2, 5]
        explorer.set_state({"position": [1, 3]})
    explorer.wait(30)
    meta = explorer._occlusion
    assert meta["layer"] == "layer3" and meta["position"] == [1, 3] and meta["complete"]
    assert explorer.error == ""
    # an occlusion asked for and cancelled while the view is pending does not run
    with held(explorer):
        explorer.layer = "layer2"
        explorer.run_occlusion([1, 1])
        explorer.cancel()
    explorer.wait(30)
    assert explorer._occlusion == {} and explorer.position == []


# ---------------------------------------------------------------------------- images
def test_image_assignment_and_bad_images(make):
    explorer = make()
    before = explorer.features.clone()
    explorer.image = np.asarray(scene(100, 80))
    explorer.wait(30)
    assert explorer._image["w"] == 64 and not torch.equal(explorer.features, before)
    assert isinstance(explorer.image, np.ndarray)
    good = explorer.features.clone()
    explorer.image = "/no/such/picture.png"
    explorer.wait(30)
    assert "not found" in explorer.error and "picture.png" in explorer.error
    assert torch.equal(explorer.features, good) and isinstance(explorer.image, np.ndarray)
    explorer.layer = "layer2"  # the next good request clears the message
    explorer.wait(30)
    assert explorer.error == ""
    explorer.image = None
    explorer.wait(30)
    assert explorer._image["name"] == "sample.png"


def test_upload_message(make):
    explorer = make()
    buffer = io.BytesIO()
    scene(90, 90, seed=3).save(buffer, format="JPEG")
    explorer._handle_message(explorer, {"type": "upload", "name": "cat.jpg"}, [buffer.getvalue()])
    explorer.wait(30)
    assert explorer._image["name"] == "cat.jpg" and explorer.error == ""
    explorer._handle_message(explorer, {"type": "upload", "name": "notes.txt"}, [b"hello"])
    assert "Could not read 'notes.txt' as an image" in explorer.error
    assert explorer._image["name"] == "cat.jpg"
    explorer._handle_message(explorer, {"type": "upload", "name": "empty.png"}, [])
    assert "without data" in explorer.error
    too_big = [b"\0" * (MAX_UPLOAD_BYTES + 1)]
    explorer._handle_message(explorer, {"type": "upload", "name": "huge.png"}, too_big)
    assert explorer.error == "huge.png is larger than 50 MB; please pick a smaller image."


def upload_chunks(name: str, data: bytes, count: int, ident: str = "u1") -> list[tuple]:
    """The messages the view sends for an upload of `data` in `count` chunks."""
    step = -(-len(data) // count)
    return [
        (
            {"type": "upload", "name": name, "id": ident, "index": i, "count": count},
            {"size": len(data)},
            [data[i * step : (i + 1) * step]],
        )
        for i in range(count)
    ]


def feed(explorer, messages) -> None:
    for content, extra, buffers in messages:
        explorer._handle_message(explorer, {**content, **extra}, buffers)


def test_chunked_upload_is_reassembled_and_a_missing_chunk_drops_it(make):
    explorer = make()
    buffer = io.BytesIO()
    scene(90, 90, seed=3).save(buffer, format="PNG")
    data = buffer.getvalue()
    chunks = upload_chunks("cat.png", data, 3)
    feed(explorer, chunks[:2])
    assert explorer._image["name"] == "sample.png"  # nothing decoded before the last chunk
    feed(explorer, chunks[2:])
    explorer.wait(30)
    assert explorer._image["name"] == "cat.png" and explorer.error == ""
    assert explorer._image["h"] > 0 and explorer.features is not None
    # chunk 2 of 3 went missing: a clear error, and the rest of that upload is dropped
    lost = upload_chunks("dog.png", data, 3, ident="u2")
    feed(explorer, [lost[0], lost[2]])
    assert (
        explorer.error
        == "Upload of 'dog.png' lost chunk 2 of 3 (chunk 3 came next); please try again."
    )
    feed(explorer, [lost[1]])
    assert "lost chunk 1 of 3" in explorer.error
    explorer.wait(30)
    assert explorer._image["name"] == "cat.png"
    # chunks whose sizes do not add up to the announced total
    short = upload_chunks("short.png", data, 2, ident="u3")
    short[1] = (short[1][0], short[1][1], [short[1][2][0][:-5]])
    feed(explorer, short)
    assert "arrived incomplete" in explorer.error and "short.png" in explorer.error
    # a total over the limit is refused at the first chunk
    huge = {"type": "upload", "name": "huge.png", "id": "u4", "index": 0, "count": 20}
    explorer._handle_message(explorer, {**huge, "size": MAX_UPLOAD_BYTES + 1}, [b"x"])
    assert explorer.error == "huge.png is larger than 50 MB; please pick a smaller image."
    assert explorer._uploads.pending is None
    explorer.wait(30)
    assert explorer._image["name"] == "cat.png"


def test_an_upload_whose_chunks_stop_coming_is_dropped_after_the_timeout(make):
    explorer = make()
    explorer.wait(30)
    explorer._uploads.timeout_s = 0.3
    data = b"\x89PNG" + bytes(range(256)) * 40
    chunks = upload_chunks("slow.png", data, 3, ident="u9")
    feed(explorer, chunks[:1])
    time.sleep(0.2)
    feed(explorer, chunks[1:2])  # each chunk restarts the clock
    time.sleep(0.2)
    assert explorer._uploads.pending is not None and explorer.error == ""
    deadline = time.monotonic() + 10
    while explorer._uploads.pending is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert explorer._uploads.pending is None  # its chunks are no longer held
    assert explorer.error == (
        "Upload of 'slow.png' stopped after chunk 2 of 3 (nothing came for 0.3 s); "
        "please try again."
    )
    feed(explorer, chunks[2:])  # the straggler finds nothing to join
    assert "lost chunk 1 of 3" in explorer.error
    assert explorer._image["name"] == "sample.png"


def test_upload_data_may_arrive_as_base64_text(make):
    explorer = make()
    buffer = io.BytesIO()
    scene(90, 90, seed=3).save(buffer, format="PNG")
    data = buffer.getvalue()
    text = {UPLOAD_DATA_KEY: base64.b64encode(data).decode("ascii")}
    explorer._handle_message(explorer, {"type": "upload", "name": "cat.png", **text}, [])
    explorer.wait(30)
    assert explorer._image["name"] == "cat.png" and explorer.error == ""
    # in chunks, each with its own text, as a front end without binary buffers sends them
    for content, extra, buffers in upload_chunks("dog.png", data, 3, ident="b2"):
        piece = {UPLOAD_DATA_KEY: base64.b64encode(buffers[0]).decode("ascii")}
        explorer._handle_message(explorer, {**content, **extra, **piece}, [])
    explorer.wait(30)
    assert explorer._image["name"] == "dog.png" and explorer.error == ""
    assert explorer._uploads.pending is None
    # a list of byte values is JSON-safe too
    listed = {UPLOAD_DATA_KEY: list(data)}
    explorer._handle_message(explorer, {"type": "upload", "name": "owl.png", **listed}, [])
    explorer.wait(30)
    assert explorer._image["name"] == "owl.png" and explorer.error == ""
    garbled = {UPLOAD_DATA_KEY: "not base64!"}
    explorer._handle_message(explorer, {"type": "upload", "name": "bad.png", **garbled}, [])
    assert explorer.error == "Upload of 'bad.png' arrived malformed; please try again."
    assert explorer._image["name"] == "owl.png"


@pytest.mark.slow
def test_no_message_python_sends_exceeds_the_bound_for_a_large_grid(monkeypatch):
    sent: list[tuple[dict, list]] = []
    monkeypatch.setattr(
        FeatureExplorer, "_send", lambda self, msg, buffers=None: sent.append((msg, buffers or []))
    )
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Conv2d(3, 256, 1))

    def transform(picture: Image.Image) -> torch.Tensor:
        array = np.asarray(picture.convert("RGB").resize((192, 192)), dtype=np.float32)
        return torch.from_numpy(array / 255).permute(2, 0, 1)

    explorer = FeatureExplorer(wide, layer="0", num_features=256, transform=transform)
    try:
        explorer.wait(60)
        assert explorer.error == ""
        sizes = [len(json.dumps(msg, default=str)) + sum(map(len, bufs)) for msg, bufs in sent]
        assert max(sizes) <= MAX_MESSAGE_BYTES
        grid = explorer._outbox.data("_grid")
        assert len(grid) == 256 * 192 * 192 > MAX_MESSAGE_BYTES  # one message would not do
        chunked = explorer._grid["chunked"]
        assert "data" not in explorer._grid and chunked["size"] == len(grid)

        def reassembled() -> bytes:
            pieces = [
                (msg["content"]["index"], bytes(bufs[0]))
                for msg, bufs in sent
                if msg["method"] == "custom"
                and msg["content"]["type"] == "chunk"
                and msg["content"]["name"] == "_grid"
                and msg["content"]["id"] == chunked["id"]
            ]
            assert [i for i, _ in pieces] == list(range(chunked["count"]))
            assert all(len(piece) <= CHUNK_BYTES for _, piece in pieces)
            return b"".join(piece for _, piece in pieces)

        assert reassembled() == grid
        maps = decode_maps(grid, explorer._grid)
        expected = explorer.features[0][explorer.ranking[:256]].numpy()
        span = (expected.max(axis=(1, 2)) - expected.min(axis=(1, 2)))[:, None, None]
        assert np.all(np.abs(maps - expected) <= span / 510 + 1e-5)
        # a view pulls it (one that rendered late, or lost a chunk): the same chunks, same id
        sent.clear()
        explorer._handle_message(explorer, {"type": "pull", "names": ["_grid"]}, [])
        assert reassembled() == grid
        assert sent[0][0]["state"]["_grid"]["chunked"] == chunked
        assert sent[-1][0]["content"] == {"type": "pulled", "names": ["_grid"]}
        assert explorer._pictures.png()[:4] == b"\x89PNG"  # the static stand-in reads chunked data
    finally:
        explorer.close()


def test_a_view_that_pulls_gets_each_payload_whole_then_an_answer(make, monkeypatch):
    explorer = make()
    sent: list[tuple[dict, list]] = []
    monkeypatch.setattr(
        FeatureExplorer, "_send", lambda self, msg, buffers=None: sent.append((msg, buffers or []))
    )
    assert "chunked" not in explorer._unit and len(explorer._unit["data"]) > 0
    explorer._handle_message(explorer, {"type": "pull", "names": ["_unit"]}, [])
    (update, _), (answer, _) = sent
    assert update["method"] == "update" and set(update["state"]) == {"_unit"}
    assert update["buffer_paths"] == [["_unit", "data"]]  # the bytes travel as a buffer
    meta = {key: value for key, value in explorer._unit.items() if key != "data"}
    assert update["state"]["_unit"] == json_safe(meta)
    assert [bytes(b) for b in sent[0][1]] == [explorer._unit["data"]]
    assert answer["content"] == {"type": "pulled", "names": ["_unit"]}
    # a view that just rendered: every synced trait of the explorer, each payload whole in a
    # message of its own
    sent.clear()
    explorer._handle_message(explorer, {"type": "pull"}, [])
    *updates, (answer, _) = sent
    assert all(message["method"] == "update" for message, _ in updates)
    states = [set(message["state"]) for message, _ in updates]
    synced = set(FeatureExplorer.class_traits(sync=True))
    assert {"layer", "channel", "_layers", "_order"} <= states[0] <= synced
    assert states[1:] == [{name} for name in PAYLOADS]
    assert all("_esm" not in state for state in states)  # the front end it runs already
    grid, buffers = updates[1 + list(PAYLOADS).index("_grid")]
    assert grid["buffer_paths"] == [["_grid", "data"]]
    assert bytes(buffers[0]) == bytes(explorer._grid["data"])
    assert answer["content"]["type"] == "pulled"
    sent.clear()
    explorer._handle_message(explorer, {"type": "pull", "names": ["channel"]}, [])  # no payload
    assert [message["content"] for message, _ in sent] == [{"type": "pulled", "names": []}]


def test_error_inside_the_model_shows_in_the_widget(make):
    fragile = Fragile()
    explorer = make(model=fragile, layer="stem", compare=["stem"])  # nothing cached for body
    fragile.broken = True
    explorer.layer = "body"
    explorer.wait(30)
    assert "boom in body" in explorer.error and not explorer.busy
    assert explorer._grid["layer"] == "stem" == explorer.layer  # the old view stays
    for module in fragile.modules():
        assert not module._forward_hooks
    fragile.broken = False
    explorer.layer = "body"
    explorer.wait(30)
    assert explorer.error == "" and explorer._grid["layer"] == "body"


# ---------------------------------------------------------------------------- leaks
def _rss_mb() -> float:
    """This process's resident memory in MB (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_hundred_layer_changes_leave_no_hooks_figures_or_growth(make, model):
    snapshot = ModelSnapshot(model)
    explorer = make(cache_size=4)
    names = ["layer1", "layer2", "layer3", "layer4", "layer1.0", "layer2.1"]
    for name in names * 2:  # warm up: the cache fills, allocator pools settle
        explorer.layer = name
        explorer.wait(30)
    threads = threading.active_count()
    rss = _rss_mb()
    for i in range(100):
        explorer.layer = names[i % len(names)]
        if i % 10 == 0:
            explorer.wait(30)
    explorer.wait(60)
    gc.collect()
    assert _rss_mb() - rss < 40, "memory grew beyond the bounded cache"
    snapshot.assert_unchanged()
    assert len(explorer.visualizer.features) <= 4
    assert plt.get_fignums() == []
    assert threading.active_count() <= threads
    assert explorer.layer == names[99 % len(names)] == explorer._grid["layer"]


def test_an_explorer_let_go_is_collected_and_its_worker_stops(model):
    """What a kernel's widget registries let go of (ipywidgets keeps every widget until
    `close()`; here the test lets go of it as they would) takes its thread with it: the
    worker holds its explorer only weakly."""
    explorer = FeatureExplorer(model, layer="layer1", stride=16).wait(60)
    explorer.run_occlusion()  # a job's closures were on the worker, too
    explorer.wait(120)
    thread, collected = explorer._worker._thread, weakref.ref(explorer)
    _instances.pop(explorer.model_id)
    explorer.comm.close()
    explorer.comm = None
    del explorer
    gc.collect()
    assert collected() is None, "something still holds the explorer"
    thread.join(10)
    assert not thread.is_alive()


# ---------------------------------------------------------------------------- export
def test_save_png_views_and_static_fallback(make, tmp_path):
    explorer = make(stride=16)
    with pytest.raises(ValueError, match="no occlusion map"):
        explorer.save_png(tmp_path / "o.png", view="occlusion")
    with pytest.raises(ValueError, match="`view` must be one of"):
        explorer.save_png(tmp_path / "x.png", view="everything")
    explorer.position = [8, 8]
    explorer.wait(30)
    for view in ("grid", "channel", "occlusion"):
        path = explorer.save_png(tmp_path / f"{view}.png", view=view)
        assert Image.open(path).size[0] > 100
    assert plt.get_fignums() == []
    data, _ = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    picture = Image.open(io.BytesIO(base64.b64decode(data["image/png"])))
    # the 64 px input, enlarged 4x with sharp pixels to the stand-in's least height of 256
    assert picture.size[1] == 256 and picture.size[0] > 256
    shown = np.asarray(picture.convert("RGB"))[:, :256]
    assert np.array_equal(shown[::4, ::4].repeat(4, 0).repeat(4, 1), shown)


def small_resnet() -> nn.Module:
    """A model of the test's own, for tests that put hooks on it."""
    return resnet18_64px(zero_init_last=True)


def static_png(bundle) -> Image.Image:
    data, _ = bundle
    assert "image/png" in data, "no static image in the display"
    return Image.open(io.BytesIO(base64.b64decode(data["image/png"])))


def test_first_display_waits_for_the_first_view_only(make):
    slow_s = 4.0
    network = small_resnet()
    shown: list[FeatureExplorer] = []
    release = threading.Event()

    def slow_after_the_first_view() -> None:
        if shown and shown[0].features is not None:
            release.wait(slow_s)

    before_each_forward(network.conv1, slow_after_the_first_view)
    try:
        explorer = make(model=network, layer="layer1", compare=["layer2", "layer4"], wait=False)
        shown.append(explorer)
        begin = time.perf_counter()
        first = explorer._repr_mimebundle_()  # meanwhile the comparison's forward is slow
        first_s = time.perf_counter() - begin
        assert first_s < slow_s / 2, f"the first display took {first_s:.2f} s"
        assert static_png(first).size[1] == 256 and explorer._grid["layer"] == "layer1"
        assert explorer.busy and explorer.compare_statistics == {}  # the comparison still runs
        begin = time.perf_counter()
        later = explorer._repr_mimebundle_()
        later_s = time.perf_counter() - begin
        assert later_s < 0.5, f"a later display took {later_s:.2f} s"
        assert static_png(later).tobytes() == static_png(first).tobytes()
        release.set()
        explorer.wait(30)
        release.clear()
        explorer.run_occlusion()  # slow too: its forwards wait
        begin = time.perf_counter()
        during = explorer._repr_mimebundle_()
        during_s = time.perf_counter() - begin
        assert during_s < 0.5 and explorer.busy, f"a display during occlusion took {during_s:.2f}"
        assert static_png(during).tobytes() == static_png(first).tobytes()
    finally:
        release.set()


def test_static_image_is_the_last_complete_view_while_a_layer_computes(make):
    network = small_resnet()
    gate = threading.Event()

    before_each_forward(network.conv1, lambda: gate.wait(30))  # every forward waits for it
    try:
        explorer = make(model=network, layer="layer1", compare=["layer1"], wait=False)
        explorer.layer = "layer3"  # replaces the first view before it could finish
        gate.set()
        first = static_png(explorer._repr_mimebundle_())
        assert explorer._grid["layer"] == "layer3" and first.size[1] == 256
        explorer.wait(30)
        assert explorer._image["name"] == "sample.png" and explorer._image
        shown = explorer._pictures.png()
        with held(explorer):
            explorer.layer = "layer2"
            during = explorer._repr_mimebundle_()
            assert static_png(during).tobytes() == Image.open(io.BytesIO(shown)).tobytes()
        # an image change that a layer change replaces is not lost either
        with held(explorer):
            explorer.image = scene(80, 80, seed=5)
            explorer.layer = "layer2"
        explorer.wait(30)
        assert explorer._image["name"] == "" and isinstance(explorer.image, Image.Image)
        expected = explorer.visualizer.get_features(explorer.image, "layer2")
        assert torch.equal(explorer.features, expected) and explorer.layer == "layer2"
    finally:
        gate.set()


def test_state_keeps_only_the_current_view(make):
    explorer = make(num_features=4)
    explorer.layer = "layer2"
    explorer.wait(30)
    state = explorer.get_state()
    payload = sum(
        len(state[k].get("data", b"")) for k in ("_grid", "_unit", "_occlusion", "_image")
    )
    assert len(state["_grid"]["data"]) == 4 * 8 * 8 and len(state["_unit"]["data"]) == 8 * 8
    assert payload < 64 * 64 * 3 + 4 * 8 * 8 + 8 * 8 + 1  # no history, no float maps


def test_wait_and_close(make):
    explorer = make()
    errors: list[BaseException] = []

    def from_worker(job):
        try:
            explorer.wait(1)
        except RuntimeError as exc:
            errors.append(exc)

    explorer._worker.submit("test", from_worker, lambda job, exc: errors.append(exc))
    explorer.wait(10)
    assert errors and "own worker" in str(errors[0])
    explorer.close()
    with pytest.raises(RuntimeError, match="closed"):
        explorer.layer = "layer2"


def test_wait_without_timeout_waits_until_the_work_is_done(make):
    assert inspect.signature(FeatureExplorer.wait).parameters["timeout"].default is None
    explorer = make()
    release = threading.Event()
    finished: list[float] = []

    def slow(job):
        release.wait(30)
        finished.append(time.monotonic())

    explorer._worker.submit("test", slow, lambda job, exc: None)
    with pytest.raises(TimeoutError, match=r"still busy after 0.05 s"):
        explorer.wait(0.05)
    timer = threading.Timer(1.0, release.set)
    start = time.monotonic()
    timer.start()
    try:
        assert explorer.wait() is explorer
    finally:
        timer.cancel()
        release.set()
    assert finished, "wait() returned before the job was done"
    assert finished[0] - start >= 0.9 and not explorer.busy


def test_file_objects_are_read_when_assigned(make):
    from matplotlib import cbook

    explorer = make()
    with cbook.get_sample_data("grace_hopper.jpg") as photo:
        explorer.image = photo
    explorer.wait(30)  # the file is closed by now: the image was read at assignment
    assert explorer.error == "" and explorer._image["name"] == "grace_hopper.jpg"
    assert isinstance(explorer.image, Image.Image) and explorer.image.size == (512, 600)
    explorer.layer = "layer2"  # a later job re-reads the source
    explorer.wait(30)
    assert explorer.error == "" and explorer.features.shape[1] == 128
    closed = open(photo.name, "rb")  # noqa: SIM115
    closed.close()
    explorer.image = closed
    explorer.wait(30)
    assert "is closed" in explorer.error and explorer._image["name"] == "grace_hopper.jpg"


def test_grid_shows_at_most_256_maps(make):
    explorer = make(layer="layer4", num_features=5000)  # 512 channels
    assert explorer._grid["n"] == 256 and len(explorer._grid["channels"]) == 256
    assert len(explorer._grid["data"]) == 256 * 2 * 2
    assert explorer._grid["channels"] == explorer.ranking[:256]


def test_progress_throttle_lets_through_the_first_the_last_and_one_per_interval():
    from featviz_widgets.widget.worker import Throttle

    slow = Throttle(interval=60.0)
    assert [slow.due(done, 10) for done in (1, 2, 9, 10)] == [True, False, False, True]
    fast = Throttle(interval=0.0)
    assert all(fast.due(done, 10) for done in range(1, 11))


def test_a_batch_is_browsed_one_image_at_a_time(make):
    """`image_index` picks the image of a batch that every view shows and analyses: its
    picture, maps, ranking, statistics and occlusion are those of that image alone."""
    images = [scene(80, 64, seed=s) for s in (1, 2, 3)]
    explorer = make(image=images, layer="layer2", stride=16)
    viz = explorer.visualizer
    batch = viz.prepare(images)
    assert explorer._image["batch"] == 3 and explorer._image["index"] == 0
    pictures = {}
    for index in (2, 1):
        explorer.image_index = index
        explorer.wait(60)
        alone = batch[index : index + 1]
        assert explorer.error == "" and explorer._image["index"] == index
        shown = np.asarray(Image.open(io.BytesIO(explorer._image["data"])))
        assert np.array_equal(shown, viz.display_image(images, index))
        pictures[index] = shown
        assert torch.allclose(explorer.features, viz.get_features(alone, "layer2"), atol=1e-6)
        assert explorer._order == viz.rank_channels(alone, "layer2", explorer.sort_by)
        assert explorer.statistics["mean"] == pytest.approx(
            viz.get_feature_statistics(alone, "layer2")["mean"], rel=1e-6
        )
        explorer.run_occlusion([1, 1])
        explorer.wait(60)
        reference = viz.occlusion(alone, "layer2", (1, 1), stride=16)
        assert np.allclose(explorer.occlusion_map(), reference.map(explorer.channel), atol=1e-5)
    assert not np.array_equal(pictures[1], pictures[2])
    # The image shown stays through a layer change; out of range is refused with the count.
    explorer.layer = "layer3"
    explorer.wait(60)
    assert explorer.image_index == 1 and explorer._image["index"] == 1
    with pytest.raises(traitlets.TraitError, match=r"holds 3 images \(0 to 2\)"):
        explorer.image_index = 3
    # A new input starts at its first image.
    explorer.image = images[0]
    explorer.wait(60)
    assert explorer.image_index == 0 and explorer._image["batch"] == 1


def test_an_observer_that_raises_does_not_stop_the_worker(make):
    explorer = make()

    def broken(change) -> None:
        raise RuntimeError(f"observer of busy={change['new']} failed")

    explorer.observe(broken, names="busy")
    explorer.layer = "layer2"  # busy=True raises on this thread, busy=False on the worker
    explorer.wait(30)
    assert explorer.layer == "layer2" and explorer.features.shape[1] == 128
    assert explorer.error == (
        "internal error in the explorer's worker: RuntimeError: observer of busy=False failed"
    )
    explorer.unobserve(broken, names="busy")
    explorer.layer = "layer3"
    explorer.wait(30)  # the thread is alive: the next job runs
    assert explorer.layer == "layer3" and explorer.features.shape[1] == 256
    assert explorer.error == "" and explorer._worker._thread.is_alive()


def test_constructor_channel_survives_a_first_view_that_finishes_before_it_returns(
    model, monkeypatch
):
    """The request carries `channel=` before it is queued: a first view that is done before
    the constructor returns still shows that channel (historically it was set after the job
    was submitted, and a fast job dropped it)."""
    from featviz_widgets.widget import explorer as explorer_module

    finished: list[bool] = []

    class FinishingWorker(explorer_module.Worker):
        """Runs each view job to the end before `submit` returns (the waiting releases the
        explorer's lock, so the worker can publish): the worst case of the race, every time."""

        def submit(self, kind, run, on_error) -> None:
            super().submit(kind, run, on_error)
            if kind == "view":
                finished.append(self.wait(60))

    monkeypatch.setattr(explorer_module, "Worker", FinishingWorker)
    explorer = FeatureExplorer(model, scene(), layer="layer1", channel=5)
    try:
        # done inside the constructor: published before anyone called wait()
        assert finished == [True] and explorer.features is not None
        assert explorer.ranking[0] != 5  # without the request's channel, the top one shows
        explorer.wait(60)
        assert explorer.error == "" and explorer.layer == "layer1"
        assert explorer.channel == 5 and explorer._unit["channel"] == 5
        unit = decode_maps(explorer._unit["data"], explorer._unit)[0]
        expected = explorer.features[0, 5].numpy()
        assert unit.shape == expected.shape == (16, 16)
        span = explorer._unit["hi"][0] - explorer._unit["lo"][0]
        assert np.abs(unit - expected).max() <= span / 255 + 1e-6
    finally:
        explorer.close()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_a_half_precision_model_shows_its_view(make, dtype):
    try:
        nn.functional.conv2d(
            torch.ones(1, 1, 3, 3, dtype=dtype), torch.ones(1, 1, 1, 1, dtype=dtype)
        )
    except RuntimeError:
        pytest.skip(f"this CPU build has no {dtype} convolution")
    explorer = make(model=resnet18_64px().to(dtype), image=scene(), layer="layer2")
    assert explorer.error == "" and explorer.layer == "layer2"
    assert explorer.features.shape == (1, 128, 8, 8) and explorer.features.dtype == torch.float32
    meta = explorer._grid
    assert meta["layer"] == "layer2" and len(meta["channels"]) == 16
    unit = decode_maps(explorer._unit["data"], explorer._unit)[0]
    assert unit.shape == (8, 8) and np.isfinite(unit).all()
    assert explorer.statistics["num_channels"] == 128


def test_under_panel_the_explorer_shows_itself_or_says_what_to_install(make, monkeypatch):
    pn = pytest.importorskip("panel")
    pytest.importorskip("ipywidgets_bokeh")
    explorer = make()
    shown = pn.panel(explorer)
    assert isinstance(shown, pn.pane.IPyWidget) and shown.object is explorer
    monkeypatch.setitem(sys.modules, "ipywidgets_bokeh", None)  # as if not installed
    note = pn.panel(explorer)
    assert isinstance(note, pn.pane.Alert) and note.alert_type == "warning"
    assert "`pip install ipywidgets_bokeh`" in note.object


def test_embedding_keeps_what_finds_and_runs_the_front_end(make):
    """ipywidgets' embedding (`embed_minimal_html`, `embed_data`) drops state equal to its
    default, which for anywidget is the model module and the front end's code itself."""
    from ipywidgets.embed import embed_data

    explorer = make()
    data = embed_data(views=[explorer])
    embedded = data["manager_state"]["state"][explorer.model_id]
    assert embedded["model_module"] == "anywidget" and embedded["model_name"] == "AnyModel"
    assert embedded["state"]["_esm"] == explorer._esm and embedded["state"]["layer"] == "layer1"
    paths = [buffer["path"] for buffer in embedded["buffers"]]
    assert ["_grid", "data"] in paths and ["_image", "data"] in paths
