"""FeatureExplorer's dataset examples: a background scan (progress, Cancel, errors in `error`),
the selected channel's top images as thumbnails of `DatasetExamples.crops`, re-cut from the
cached scan when the layer or channel changes, a click that makes an example the image, and
its PNG export. A real timm resnet18 (random weights, 64 px inputs) and real images."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SlowScenes, resnet18_64px, scene
from matplotlib import cbook
from PIL import Image
from torch import nn

from featviz_widgets.widget.explorer import FeatureExplorer
from featviz_widgets.widget.panels import CONTRACT
from featviz_widgets.widget.panels.examples import EXAMPLE_THUMB_PX, examples_view, thumbnail

K = 4


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return resnet18_64px()


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> list[str]:
    """Grace Hopper crops and generated scenes, as files."""
    folder = tmp_path_factory.mktemp("photos")
    with cbook.get_sample_data("grace_hopper.jpg") as photo:
        hopper = Image.open(photo).convert("RGB")
    files = []
    for i, (x, y, size) in enumerate([(0, 0, 300), (100, 80, 200), (200, 250, 260)]):
        files.append(folder / f"hopper_{i}.jpg")
        hopper.crop((x, y, x + size, y + size)).save(files[-1])
    for seed in range(7):
        files.append(folder / f"scene_{seed}.png")
        scene(96, 80, seed=seed).save(files[-1])
    return [str(f) for f in files]


@pytest.fixture
def make(model):
    made: list[FeatureExplorer] = []

    def build(**kwargs) -> FeatureExplorer:
        kwargs.setdefault("layer", "layer1")
        explorer = FeatureExplorer(model, **kwargs)
        made.append(explorer)
        return explorer

    yield build
    for explorer in made:
        explorer.close()


@pytest.fixture
def scanned(make, paths) -> FeatureExplorer:
    explorer = make(layer="layer4")
    explorer.scan_dataset(paths, k=K, batch_size=4)
    return explorer.wait(120)


def thumbnails(explorer: FeatureExplorer) -> np.ndarray:
    meta = explorer._examples
    size = meta["size"]
    return np.frombuffer(explorer._examples["data"], np.uint8).reshape(meta["n"], size, size, 3)


def test_the_scan_shows_the_selected_channels_top_crops(scanned, paths):
    explorer = scanned
    result = explorer.dataset_examples
    assert result is not None and explorer.error == "" and not explorer.busy
    assert explorer.dataset is paths
    assert {"layer1", "layer2", "layer3", "layer4"} <= set(result.layers)  # the layer list
    meta = explorer._examples
    top = result.top("layer4", explorer.channel)
    assert meta["layer"] == "layer4" and meta["channel"] == explorer.channel
    assert meta["n"] == K == len(top) and meta["note"] == "" and meta["images"] == len(paths)
    assert meta["indices"] == [index for index, _, _ in top]
    assert meta["scores"] == pytest.approx([score for _, score, _ in top])
    assert meta["positions"] == [list(position) for _, _, position in top]
    assert meta["names"] == [Path(paths[index]).name for index, _, _ in top]
    # layer4 units see the whole 64 px input: the thumbnails are the crops, byte for byte
    crops = result.crops("layer4", explorer.channel)
    assert all(crop.shape == (64, 64, 3) for crop in crops)
    np.testing.assert_array_equal(thumbnails(explorer), np.stack(crops))


def test_layer_and_channel_changes_reuse_the_scan(scanned, monkeypatch):
    explorer = scanned
    result = explorer.dataset_examples
    scans = []
    monkeypatch.setattr(explorer._viz, "dataset_examples", lambda *a, **kw: scans.append(a))
    explorer.channel = 7
    explorer.wait(60)
    assert explorer._examples["channel"] == 7
    np.testing.assert_array_equal(thumbnails(explorer)[0], thumbnail(result.crops("layer4", 7)[0]))
    explorer.layer = "layer1"
    explorer.wait(60)
    meta = explorer._examples
    assert (meta["layer"], meta["channel"]) == ("layer1", explorer.channel)
    expected = [thumbnail(crop) for crop in result.crops("layer1", explorer.channel)]
    assert result.crops("layer1", explorer.channel)[0].shape[0] < 64  # small receptive fields
    np.testing.assert_array_equal(thumbnails(explorer), np.stack(expected))
    assert scans == [] and explorer.dataset_examples is result


def test_a_layer_outside_the_scan_says_so(make, paths, tmp_path):
    explorer = make(layer="layer4")
    explorer.scan_dataset(paths, ["layer4"], k=2, batch_size=8)
    explorer.wait(120)
    assert explorer._examples["n"] == 2
    explorer.layer = "layer2"
    explorer.wait(60)
    meta = explorer._examples
    assert meta["n"] == 0 and explorer._examples["data"] == b""
    assert meta["note"] == "layer2 was not in the dataset scan (scanned: layer4)."
    with pytest.raises(ValueError, match="not in the dataset scan"):
        explorer.save_png(tmp_path / "never.png", view="examples")


def test_a_click_makes_the_example_the_image(scanned, paths):
    explorer = scanned
    index = explorer._examples["indices"][1]
    explorer._handle_message(
        explorer, {"type": CONTRACT["messages"]["example"], "index": index}, []
    )
    explorer.wait(60)
    assert explorer.image == paths[index]
    assert explorer._image["name"] == Path(paths[index]).name
    assert explorer.layer == "layer4" and explorer.error == ""
    explorer._handle_message(explorer, {"type": "example", "index": 999}, [])
    assert explorer.error == "image index 999 is out of range for this scan of 10 images."
    assert explorer.image == paths[index]


def test_cancel_stops_the_scan_and_keeps_the_kernel_free(make):
    assert "examples" in CONTRACT["cancellable_jobs"]  # the panel's job
    explorer = make(layer="layer2")
    explorer.wait(60)
    progressed = threading.Event()
    explorer.observe(lambda change: progressed.set() if change["new"] > 0 else None, "progress")
    explorer.dataset = SlowScenes()
    assert progressed.wait(60), "the scan reported no progress"
    assert explorer.busy and explorer._job == "examples"  # the view's Cancel is enabled
    assert explorer.status.startswith("dataset examples: ")
    begin = time.perf_counter()
    explorer.sort_by = "variance"  # answered while the scan runs
    assert time.perf_counter() - begin < 0.5 and explorer._grid["sort_by"] == "variance"
    explorer._handle_message(explorer, {"type": "cancel"}, [])
    explorer.wait(60)
    assert explorer.dataset_examples is None and explorer.error == ""
    assert not explorer.busy and explorer._job == "idle"
    assert explorer._examples["note"].startswith("the dataset scan was cancelled")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("/no/such/folder", "ValueError: `data` '/no/such/folder' is not a folder"),
        (42, "TypeError: `data` of type int is not a folder"),
    ],
)
def test_a_bad_dataset_shows_an_error_not_a_traceback(make, data, expected):
    explorer = make(dataset=data)
    explorer.wait(60)
    assert explorer.error.startswith(expected)
    assert "Traceback" not in explorer.error and "\n" not in explorer.error
    assert explorer._examples["note"] == "the scan failed."
    assert explorer.features is not None  # the rest of the explorer works


def test_dataset_none_hides_the_examples(scanned):
    scanned.dataset = None
    assert scanned._examples == {}
    assert scanned.dataset is None and scanned.dataset_examples is None


def test_save_png_exports_the_examples(scanned, tmp_path):
    path = scanned.save_png(tmp_path / "examples.png", view="examples")
    with Image.open(path) as picture:
        assert picture.width > 4 * 64 and picture.height > 64


def test_examples_view_letterboxes_each_crop():
    tall = np.full((20, 10, 3), 200, np.uint8)
    wide = np.full((3, 96, 3), 100, np.uint8)
    top = [(5, 2.5, (1, 2)), (0, float("nan"), (0, 0))]
    data, meta = examples_view("layer", 3, top, [tall, wide], ["a/b.png", 1, 2, 3, 4, 5])
    size = EXAMPLE_THUMB_PX
    thumbs = np.frombuffer(data, np.uint8).reshape(2, size, size, 3)
    assert (thumbs[0, :, 16:48] == 200).all() and (thumbs[0, :, :16] == 0).all()
    assert (thumbs[1, 31:33] == 100).all() and (thumbs[1, :30] == 0).all()
    assert meta == {
        "layer": "layer",
        "channel": 3,
        "n": 2,
        "size": size,
        "cols": 2,
        "indices": [5, 0],
        "scores": [2.5, None],
        "positions": [[1, 2], [0, 0]],
        "names": ["image 5", "b.png"],
        "images": 6,
        "note": "",
    }
    assert examples_view("l", 0, note="why")[0] == b""


@pytest.mark.slow
def test_a_layer_change_is_shown_while_the_scan_goes_on(make, model):
    """Between two batches the scan lets the view jobs asked meanwhile run; its result is the
    same as an uninterrupted scan's."""
    explorer = make(layer="layer2")
    explorer.wait(60)
    data = SlowScenes()
    progressed, shown = threading.Event(), []
    explorer.observe(lambda change: progressed.set() if change["new"] > 0 else None, "progress")

    def on_grid(change) -> None:
        if change["new"].get("layer") == "layer3":  # the view job's: is the scan still going?
            shown.append(explorer._worker.pending("examples"))

    explorer.observe(on_grid, "_grid")
    explorer.scan_dataset(data, ["layer2", "layer3"], k=K, batch_size=4)
    assert progressed.wait(60), "the scan reported no progress"
    explorer.layer = "layer3"
    explorer.wait(120)
    assert shown == [True], "the layer change waited for the whole scan"
    assert explorer.error == "" and explorer._grid["layer"] == "layer3"
    assert explorer._job == "idle" and not explorer.busy
    result = explorer.dataset_examples
    alone = explorer._viz.dataset_examples(
        data, ["layer2", "layer3"], k=K, batch_size=4, progress=False
    )
    for layer in ("layer2", "layer3"):
        got, want = result.states[layer].tensors(), alone.states[layer].tensors()
        assert got.keys() == want.keys()
        for key in got:
            np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)
    assert explorer._examples["layer"] == "layer3"


def test_the_scan_keeps_its_status_and_cancel_after_a_view_ran_inside_it(make):
    explorer = make(layer="layer2")
    explorer.wait(60)
    progressed = threading.Event()
    explorer.observe(lambda change: progressed.set() if change["new"] > 0 else None, "progress")
    explorer.dataset = SlowScenes()
    assert progressed.wait(60)
    explorer.layer = "layer1"
    deadline = time.monotonic() + 60

    def shown() -> str:
        return "" if explorer._state is None else explorer._state.layer

    while shown() != "layer1" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert explorer._state.layer == "layer1" and explorer._worker.pending("examples")
    time.sleep(0.3)  # a batch or more: the scan has its status back
    assert explorer._job == "examples" and explorer.status.startswith("dataset examples: ")
    explorer._handle_message(explorer, {"type": "cancel"}, [])
    explorer.wait(60)
    assert explorer.dataset_examples is None and not explorer.busy


@pytest.mark.slow
def test_a_visualizer_rebuilt_during_the_scan_rescans_with_it(make):
    """What a device change does (here cpu -> a new cpu visualizer, as on a machine without a
    GPU): the scan, which cannot go on with the old one, starts again with the new one."""
    explorer = make(layer="layer2")
    explorer.wait(60)
    progressed, progress = threading.Event(), []

    def on_progress(change) -> None:
        progress.append(change["new"])
        if change["new"] > 0:
            progressed.set()

    explorer.observe(on_progress, "progress")
    data = SlowScenes()
    explorer.scan_dataset(data, ["layer2"], k=K, batch_size=4)
    assert progressed.wait(60)
    old = explorer._viz
    explorer._view_job.submit(layer="layer2", rebuild_device="cpu")
    explorer.wait(120)
    assert explorer._viz is not old and explorer.error == ""
    # the view job's progress (-1: indeterminate), then a scan that starts again from 0
    after_view = progress[progress.index(-1.0) + 1]
    assert after_view == 0.0, f"the scan went on with the old visualizer ({progress})"
    result = explorer.dataset_examples
    assert result is not None and result._viz is explorer._viz
    alone = old.dataset_examples(data, ["layer2"], k=K, batch_size=4, progress=False)
    got, want = result.states["layer2"].tensors(), alone.states["layer2"].tensors()
    for key in got:
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)
