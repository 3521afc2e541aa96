"""Every example of the spec runs (layer names adapted) with the documented keys and types."""

import functools
import importlib
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import resnet18_64px, scene, small_vit, timm_model
from matplotlib import cbook
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from featviz_widgets import FeatureVisualizer, LayerNotFoundError
from featviz_widgets.core.capture import resolve_layers
from featviz_widgets.core.stats import SORT_MODES

STAT_KEYS = {
    "mean",
    "std",
    "sparsity",
    "max",
    "min",
    "active_channels",
    "num_channels",
    "spatial_size",
}


class ImageClassifier(nn.Module):
    """Like the spec's wrapper: a timm backbone under `backbone`, a head on top."""

    def __init__(self, backbone: str, num_classes: int) -> None:
        super().__init__()
        self.backbone = timm_model(backbone, num_classes=0, zero_init_last=False)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x))


@pytest.fixture(scope="module")
def viz(device):
    return FeatureVisualizer(ImageClassifier("resnet18", num_classes=10), device=device)


def test_plot_feature_maps_example(viz, image, tmp_path):
    path = tmp_path / "features.png"
    fig = viz.plot_feature_maps(
        image,
        layer_name="backbone.layer3",
        num_features=16,
        sort_by="activation",
        save_path=str(path),
    )
    assert isinstance(fig, Figure)
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == 16
    top = viz.get_top_activating_features(image, "backbone.layer3", top_k=16)
    assert maps[0].get_title() == f"ch {top[0][0]}\nmean {top[0][1]:.3f}"
    assert "backbone.layer3" in fig._suptitle.get_text()
    assert Image.open(path).size[0] > 400
    assert plt.get_fignums() == []  # nothing left open in pyplot


def test_plot_feature_maps_options(viz, image):
    fig = viz.plot_feature_maps(
        image, "backbone.layer2", 5, "variance", figsize=(8, 6), shared_scale=True
    )
    assert tuple(fig.get_size_inches()) == (8, 6)
    assert len([ax for ax in fig.axes if ax.images]) == 5
    assert len(fig.axes) == 6 + 1  # a 2x3 grid and the shared colorbar
    limits = {ax.images[0].get_clim() for ax in fig.axes if ax.images}
    assert len(limits) == 1
    random_a = viz.plot_feature_maps(image, "backbone.layer2", 4, "random", seed=3)
    random_b = viz.plot_feature_maps(image, "backbone.layer2", 4, "random", seed=3)
    titles = [[ax.get_title() for ax in f.axes if ax.images] for f in (random_a, random_b)]
    assert titles[0] == titles[1]
    with pytest.raises(ValueError, match="`sort_by` must be one of"):
        viz.plot_feature_maps(image, "backbone.layer2", sort_by="norm")
    with pytest.raises(ValueError, match="`num_features` must be a positive integer"):
        viz.plot_feature_maps(image, "backbone.layer2", num_features=0)


def test_get_features_and_statistics_examples(viz, image):
    features = viz.get_features(image, layer_name="backbone.layer4")
    assert isinstance(features, torch.Tensor) and features.shape == (1, 512, 7, 7)
    stats = viz.get_feature_statistics(image, layer_name="backbone.layer4")
    assert set(stats) >= STAT_KEYS
    assert isinstance(stats["active_channels"], int) and stats["spatial_size"] == (7, 7)
    assert stats["mean"] == pytest.approx(features.double().mean().item())
    assert stats["std"] == pytest.approx(features.double().std().item())
    assert stats["sparsity"] == pytest.approx((features == 0).double().mean().item())


def test_compare_layers_example(viz, image, tmp_path):
    layers = ["backbone.layer1", "backbone.layer2", "backbone.layer3", "backbone.layer4"]
    path = tmp_path / "layer_comparison.png"
    all_stats = viz.compare_layers(image, layers, save_path=path)
    assert list(all_stats) == layers
    assert all(set(s) >= STAT_KEYS for s in all_stats.values())
    assert [s["num_channels"] for s in all_stats.values()] == [64, 128, 256, 512]
    fig = viz.last_figure
    assert [ax.get_title() for ax in fig.axes[:4]] == [
        "Mean activation",
        "Standard deviation",
        "Sparsity (fraction of zeros)",
        "Active channels (mean > 0.01)",
    ]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == layers
    assert path.exists() and plt.get_fignums() == []
    with pytest.raises(ValueError, match="`layer_names` is empty"):
        viz.compare_layers(image, [])


def test_top_activating_and_receptive_field_examples(viz, image, tmp_path):
    top = viz.get_top_activating_features(image, "backbone.layer3", top_k=1)
    channel = top[0][0]
    path = tmp_path / "receptive_field.png"
    sensitivity = viz.visualize_receptive_field(
        image, layer_name="backbone.layer3", channel=channel, save_path=str(path)
    )
    assert isinstance(sensitivity, np.ndarray) and sensitivity.shape == (224, 224)
    assert sensitivity.min() >= 0 and sensitivity.max() == pytest.approx(1.0)
    # Every pixel is occluded at least once: no dead border as in the reference.
    assert (sensitivity[-8:] > 0).mean() > 0.5 and (sensitivity[:, -8:] > 0).mean() > 0.5
    fig = viz.last_figure
    assert len(fig.axes) == 3 and fig.axes[2].get_ylabel().startswith("sensitivity")
    marker = fig.axes[1].lines[0].get_xydata()[0]
    assert marker == pytest.approx((7.5 * 16, 7.5 * 16))  # centre of cell (7, 7) of 14x14
    assert path.exists() and plt.get_fignums() == []
    signed = viz.visualize_receptive_field(image, "backbone.layer3", channel, signed=True)
    assert signed.min() < 0 < signed.max()


def test_batches_statistics_over_batch_and_figures_per_image(viz):
    batch = [scene(seed=1), scene(seed=2)]
    features = viz.get_features(batch, "backbone.layer2")
    assert features.shape[0] == 2
    stats = viz.get_feature_statistics(batch, "backbone.layer2")
    assert stats["active_channels"] <= stats["num_channels"] == 128
    fig = viz.plot_feature_maps(batch, "backbone.layer2", 4, index=1)
    assert "image 1 of 2" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="`index` 2 is out of range for a batch of 2"):
        viz.plot_feature_maps(batch, "backbone.layer2", index=2)
    second = viz.visualize_receptive_field(
        batch, "backbone.layer4", 0, index=1, patch_size=56, stride=56
    )
    assert second.shape == (224, 224)
    sweeps = [
        viz.occlusion(batch, "backbone.layer4", index=i, patch_size=56, stride=56) for i in (0, 1)
    ]
    assert np.abs(sweeps[0].deltas).max() > 0
    assert not np.allclose(sweeps[0].deltas, sweeps[1].deltas)


@pytest.fixture(scope="module")
def resnet50(device):
    return FeatureVisualizer(timm_model("resnet50"), device=device)


def test_compare_layers_labels_counts_as_whole_numbers(resnet50, image):
    viz = resnet50
    stats = viz.compare_layers(image, ["layer3", "layer4"], plot=True)
    assert [s["num_channels"] for s in stats.values()] == [1024, 2048]
    counts = [t.get_text() for t in viz.last_figure.axes[3].texts]
    assert counts == [f"{s['active_channels']}/{s['num_channels']}" for s in stats.values()]
    assert counts[0].endswith("/1024") and counts[1].endswith("/2048")
    labels = [t.get_text() for ax in viz.last_figure.axes[:4] for t in ax.texts]
    assert len(labels) == 8 and not any("e+" in label for label in labels)


@pytest.mark.slow
def test_plot_feature_maps_caps_the_tiles_and_the_figure_size(viz, resnet50, image):
    import warnings

    with pytest.warns(
        UserWarning,
        match=r"`num_features`=5000 is more than can be shown: 'layer3' has 1024 channels and "
        r"a figure shows at most 256 maps; showing the top 256",
    ):
        fig = resnet50.plot_feature_maps(image, "layer3", num_features=5000)
    assert len([ax for ax in fig.axes if ax.images]) == 256
    width, height = fig.get_size_inches()
    assert width <= 16.0 and height <= 19.0
    assert "top 256 of 1024 channels" in fig._suptitle.get_text()
    with pytest.warns(UserWarning, match=r"'backbone.layer2' has 128 channels .* top 128"):
        fig = viz.plot_feature_maps(image, "backbone.layer2", num_features=200, shared_scale=True)
    assert len([ax for ax in fig.axes if ax.images]) == 128
    assert fig.axes[-1].get_ylabel() == "activation"  # the shared colorbar still fits
    assert fig.get_size_inches()[0] <= 16.0
    # The default (16) on a layer with fewer channels shows them all, without a warning.
    tiny = FeatureVisualizer(nn.Sequential(nn.Conv2d(3, 5, 3)), device=viz.device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = tiny.plot_feature_maps(torch.rand(1, 3, 16, 16), "0")
    assert len([ax for ax in fig.axes if ax.images]) == 5
    with pytest.raises(ValueError, match="`num_features` must be a positive integer, got 2.5"):
        viz.plot_feature_maps(image, "backbone.layer2", num_features=2.5)


# The documented API (shared spec): positional names and defaults, in order.
DOCUMENTED = {
    "__init__": [("model", None), ("use_cuda", True)],
    "plot_feature_maps": [
        ("image", None),
        ("layer_name", None),
        ("num_features", 16),
        ("sort_by", "activation"),
        ("save_path", None),
        ("figsize", None),
    ],
    "get_features": [("image", None), ("layer_name", None)],
    "get_feature_statistics": [("image", None), ("layer_name", None)],
    "compare_layers": [("image", None), ("layer_names", None), ("save_path", None)],
    "get_top_activating_features": [("image", None), ("layer_name", None), ("top_k", 10)],
    "visualize_receptive_field": [
        ("image", None),
        ("layer_name", None),
        ("channel", None),
        ("position", None),
        ("save_path", None),
    ],
}


@pytest.mark.parametrize("method", list(DOCUMENTED))
def test_public_methods_match_the_documented_names_and_defaults(method):
    import inspect

    params = [
        p
        for p in inspect.signature(getattr(FeatureVisualizer, method)).parameters.values()
        if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    found = [(p.name, None if p.default is p.empty else p.default) for p in params]
    assert found == DOCUMENTED[method]


def _cpu_runs(dtype: torch.dtype) -> bool:
    """Whether this CPU build runs a convolution in `dtype`."""
    try:
        nn.functional.conv2d(
            torch.ones(1, 1, 3, 3, dtype=dtype), torch.ones(1, 1, 1, 1, dtype=dtype)
        )
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_a_half_precision_timm_model_runs_through_the_facade(dtype):
    if not _cpu_runs(dtype):
        pytest.skip(f"this CPU build has no {dtype} convolution")
    image = scene()
    reference = FeatureVisualizer(resnet18_64px(), use_cuda=False)
    viz = FeatureVisualizer(resnet18_64px().to(dtype), use_cuda=False)
    assert viz.dtype == dtype and viz.prepare(image).dtype == dtype  # inputs in its dtype
    features = viz.get_features(image, "layer2")
    assert features.shape == (1, 128, 8, 8) and features.dtype == dtype
    assert viz.get_features(image, "layer2") is features  # cached under a bf16 key
    exact = reference.get_features(image, "layer2")
    scale = exact.abs().max().item()
    assert (features.float() - exact).abs().max().item() < 0.1 * scale
    stats = viz.get_feature_statistics(image, "layer2")
    assert set(stats) >= STAT_KEYS and stats["spatial_size"] == (8, 8)
    assert stats["num_channels"] == 128 and stats["non_finite"] == 0
    assert stats["mean"] == pytest.approx(
        reference.get_feature_statistics(image, "layer2")["mean"], rel=0.05
    )
    fig = viz.plot_feature_maps(image, "layer2", num_features=4)
    try:
        shown = [ax for ax in fig.axes if ax.images]
        assert len(shown) == 4
        assert shown[0].images[0].get_array().shape == (8, 8)
        assert shown[0].get_title().startswith(f"ch {viz.rank_channels(image, 'layer2')[0]}")
    finally:
        plt.close(fig)


# `layer_view`, extra to the documented API: what the explorer's view shows, from one forward.
VIEWED = [  # (model, layer, its maps' shape for one image): a CNN, and ViT tokens
    (resnet18_64px, "layer2", (1, 128, 8, 8)),
    (functools.partial(small_vit, 64), "blocks.1", (1, 192, 4, 4)),
]


@pytest.fixture(scope="module")
def hopper() -> Image.Image:
    with cbook.get_sample_data("grace_hopper.jpg") as photo:
        return Image.open(photo).convert("RGB")


@pytest.mark.parametrize(("make", "layer", "shape"), VIEWED, ids=["resnet18", "vit"])
def test_layer_view_equals_the_separate_calls(make, layer, shape, hopper, device):
    viz = FeatureVisualizer(make(), device=device)
    for image, index in [(hopper, 0), ([scene(), hopper], 1)]:
        view = viz.layer_view(image, layer, index=index)
        viz.clear_cache()  # the separate calls compute the maps again
        features = viz.get_features(image, layer)
        assert view.features.shape == (len(features), *shape[1:])
        assert torch.equal(view.features, features)
        assert view.statistics == viz.get_feature_statistics(image, layer)
        assert view.rankings == {
            mode: viz.rank_channels(image, layer, mode, index=index) for mode in SORT_MODES
        }
        assert list(view.rankings) == ["activation", "variance", "random"]
    # The rankings score image `index`: the batch's other image ranks its channels otherwise.
    assert view.rankings["activation"] != viz.rank_channels(image, layer, index=0)
    assert viz.layer_view(image, layer).rankings["activation"] == viz.rank_channels(
        image, layer, index=0
    )


@pytest.mark.parametrize(("make", "layer", "shape"), VIEWED, ids=["resnet18", "vit"])
def test_layer_view_runs_one_forward_and_resolves_the_layer_once(
    make, layer, shape, hopper, device, monkeypatch
):
    resolved = []

    def counting(model, names):
        resolved.append(list(names))
        return resolve_layers(model, names)

    # Both modules that resolve layers, each under its own name for the function.
    for module in ("featviz_widgets.core.capture", "featviz_widgets.core.features"):
        monkeypatch.setattr(importlib.import_module(module), "resolve_layers", counting)
    model = make()
    viz = FeatureVisualizer(model, device=device)  # fresh: empty cache, no layout decided
    forwards = []
    # A pre-hook: the forward stops early at the layer, so the model's forward never returns.
    handle = model.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        view = viz.layer_view(hopper, layer)
        assert (len(forwards), resolved) == (1, [[layer]])
        assert view.features.shape == shape
        assert viz.layer_view(hopper, layer).features is view.features  # then cached
        assert len(forwards) == 1
    finally:
        handle.remove()


def test_layer_view_of_a_bad_layer_raises_as_get_features_does(hopper, device):
    viz = FeatureVisualizer(resnet18_64px(), device=device)
    for bad in ["layer9", "layer2.0.conv1.weight", "", 3]:
        with pytest.raises((LayerNotFoundError, TypeError)) as expected:
            viz.get_features(hopper, bad)
        with pytest.raises(expected.type, match=re.escape(str(expected.value))):
            viz.layer_view(hopper, bad)
    with pytest.raises(LayerNotFoundError, match=r"'layer9' not found .* Closest layers: 'layer"):
        viz.layer_view(hopper, "layer9")
