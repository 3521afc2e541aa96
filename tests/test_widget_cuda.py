"""FeatureExplorer on a GPU: `device` switched to "cuda" and back, an occlusion sweep and its
Cancel there, a dataset scan that follows a device change, and views that reach the browser
from host memory. A real timm resnet18 (random weights, 64 px inputs); these run wherever the
suite runs on CUDA and are skipped elsewhere (CI has no GPU)."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import timm
import torch
from conftest import DEVICES, SlowScenes, resnet18_64px
from PIL import Image

from featviz_widgets import FeatureVisualizer
from featviz_widgets.widget.explorer import SAMPLE_IMAGE, FeatureExplorer

GPU = "cuda"
pytestmark = pytest.mark.skipif(
    GPU not in DEVICES, reason="needs a CUDA GPU (and FEATVIZ_TEST_DEVICE unset or 'cuda')"
)


@pytest.fixture
def explorer():
    explorer = FeatureExplorer(resnet18_64px(), layer="layer2", device="cpu", stride=8)
    yield explorer.wait(120)
    explorer.close()


def on_device(explorer: FeatureExplorer) -> str:
    return next(explorer.visualizer.model.parameters()).device.type


def close_maps(got: np.ndarray | torch.Tensor, want: np.ndarray | torch.Tensor) -> bool:
    """Equal up to float32 rounding across devices (TF32 is off in exact sweeps)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return np.allclose(got, want, rtol=0, atol=1e-4 * max(1.0, np.abs(want).max()))


def test_device_switch_to_cuda_and_back_keeps_the_view(explorer, tmp_path):
    assert GPU in explorer.devices
    on_cpu, grid_on_cpu = explorer.features.clone(), explorer._grid
    explorer.device = GPU
    explorer.wait(120)
    assert explorer.error == "" and explorer.visualizer.device.type == GPU == on_device(explorer)
    assert next(explorer.model.parameters()).device.type == "cpu"  # the twin moved, not it
    # the views are drawn from host copies, made once per view
    assert explorer.features.device.type == "cpu"
    assert close_maps(explorer.features, on_cpu)
    shown = np.frombuffer(explorer._grid["data"], np.uint8).astype(int)
    assert np.abs(shown - np.frombuffer(grid_on_cpu, np.uint8)).max() <= 1
    with Image.open(explorer.save_png(tmp_path / "grid.png")) as picture:
        assert picture.size[0] >= 256
    explorer.device = "cpu"
    explorer.wait(120)
    assert explorer.error == "" and on_device(explorer) == "cpu"
    assert close_maps(explorer.features, on_cpu)


def test_occlusion_sweep_on_cuda_matches_the_cpu(explorer):
    cpu_viz = FeatureVisualizer(copy.deepcopy(explorer.visualizer.model), device="cpu")
    reference = cpu_viz.occlusion(SAMPLE_IMAGE, "layer2", (3, 4), stride=8)
    explorer.device = GPU
    explorer.wait(120)
    explorer.position = [3, 4]
    explorer.wait(120)
    meta = explorer._occlusion
    assert explorer.error == "" and meta["complete"] and meta["done"] == meta["total"]
    for channel in (explorer.channel, int(explorer._order[5])):
        # signed: a channel whose unit barely moves would magnify rounding once normalised
        shown = explorer.occlusion_map(channel, signed=True)
        assert close_maps(shown, reference.map(channel, signed=True))


def test_cancel_stops_a_sweep_on_cuda():
    model = timm.create_model("resnet50", pretrained=False)  # 224 px: 209 x 209 placements
    explorer = FeatureExplorer(model, layer="layer4", device=GPU, stride=1)
    try:
        explorer.wait(120)
        started = threading.Event()
        explorer.observe(
            lambda change: started.set() if change["new"].get("done") else None,
            names="_occlusion",
        )
        explorer.run_occlusion()
        assert started.wait(120), "no partial occlusion map arrived"
        assert explorer.busy and explorer._job == "occlusion"
        explorer._handle_message(explorer, {"type": "cancel"}, [])
        explorer.wait(120)
        meta = explorer._occlusion
        assert meta["cancelled"] and not meta["complete"] and 0 < meta["done"] < meta["total"]
        assert explorer.error == "" and not explorer.busy
    finally:
        explorer.close()


def test_a_scan_follows_a_device_change(explorer):
    progressed = threading.Event()
    explorer.observe(lambda change: progressed.set() if change["new"] > 0 else None, "progress")
    explorer.scan_dataset(SlowScenes(), ["layer2"], k=4, batch_size=4)
    assert progressed.wait(60), "the scan reported no progress"
    explorer.device = GPU
    explorer.wait(240)
    assert explorer.error == "" and on_device(explorer) == GPU
    result = explorer.dataset_examples
    assert result is not None
    cpu_viz = FeatureVisualizer(copy.deepcopy(explorer.visualizer.model), device="cpu")
    alone = cpu_viz.dataset_examples(SlowScenes(), ["layer2"], k=4, batch_size=4, progress=False)
    got, want = result.states["layer2"].tensors(), alone.states["layer2"].tensors()
    assert close_maps(got["scores"], want["scores"])
    assert (got["index"] == want["index"]).float().mean() > 0.99  # near-ties may swap
