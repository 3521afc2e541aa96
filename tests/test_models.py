"""The model matrix: every architecture gives maps, statistics, a figure and an occlusion map."""

import numpy as np
import pytest
import torch
from conftest import marked_slow, timm_model
from matplotlib.figure import Figure

from featviz_widgets import FeatureVisualizer
from featviz_widgets.core.layers import LayerInfo, default_layer
from featviz_widgets.core.precision import exact_float32

pytestmark = pytest.mark.models

# (name, create kwargs, input size, early layer, late layer, expected layout)
MATRIX = [
    ("resnet18", {}, 96, "layer1", "layer4", "NCHW"),
    ("resnet50", {}, 96, "layer1.0", "layer4", "NCHW"),
    ("efficientnet_b0", {}, 96, "blocks.1", "blocks.6", "NCHW"),
    ("convnext_atto", {}, 96, "stages.0", "stages.3", "NCHW"),
    ("mobilenetv3_small_050", {}, 96, "blocks.0", "blocks.5", "NCHW"),
    ("regnetx_002", {}, 96, "s1", "s4", "NCHW"),
    ("vit_tiny_patch16_224", {"img_size": 64}, 64, "blocks.0", "blocks.11", "tokens"),
    ("deit_tiny_distilled_patch16_224", {"img_size": 64}, 64, "blocks.1", "norm", "tokens"),
    (
        "vit_tiny_patch16_224",
        {"img_size": 64, "reg_tokens": 4},
        64,
        "blocks.2",
        "blocks.8",
        "tokens",
    ),
    ("swin_tiny_patch4_window7_224", {}, 224, "layers.0", "layers.3", "NHWC"),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "size", "early", "late", "layout"),
    marked_slow(MATRIX, {"swin_tiny_patch4_window7_224"}),
    ids=[f"{m[0]}{'-reg' if 'reg_tokens' in m[1] else ''}" for m in MATRIX],
)
def test_architecture(name, kwargs, size, early, late, layout, snapshot, device):
    model = timm_model(name, **kwargs)
    state = snapshot(model)
    viz = FeatureVisualizer(model, device=device)
    batch = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    listed = {layer.name: layer for layer in viz.list_layers(batch)}
    for layer in (early, late):
        features = viz.get_features(batch, layer)
        assert features.ndim == 4 and features.shape[0] == 2
        assert listed[layer].shape == tuple(features.shape[1:])
        assert listed[layer].layout == layout
        stats = viz.get_feature_statistics(batch, layer)
        assert stats["num_channels"] == features.shape[1]
        assert stats["spatial_size"] == tuple(features.shape[2:])
        assert np.isfinite([stats[k] for k in ("mean", "std", "max", "min")]).all()
        fig = viz.plot_feature_maps(batch, layer, num_features=4, index=1)
        assert isinstance(fig, Figure) and len(fig.axes[0].images) == 1
    # Late layer channels agree with timm's own feature contract where it has one.
    late_maps = viz.get_features(batch, late)
    if hasattr(model, "forward_intermediates") and layout != "NCHW":
        index = int(late.split(".")[-1]) if late.split(".")[-1].isdigit() else None
        if index is not None:
            with torch.no_grad(), exact_float32():  # as exact as the engine on CUDA too
                model.eval()
                intermediates = model.forward_intermediates(
                    batch.to(device), indices=[index], intermediates_only=True
                )
                model.train(state.modes[0])
            torch.testing.assert_close(late_maps, intermediates[0], atol=1e-5, rtol=1e-4)
    sensitivity = viz.visualize_receptive_field(
        batch, late, channel=0, patch_size=size // 2, stride=size // 2, show=False
    )
    assert sensitivity.shape == (size, size)
    assert sensitivity.max() == pytest.approx(1.0) or sensitivity.max() == 0.0
    assert len(viz.last_figure.axes) == 3  # image, overlay, colorbar
    for layer in (early, late):
        check_occlusion_against_full_forwards(viz, batch[1:], layer, layout, size)
    state.assert_unchanged()


def check_occlusion_against_full_forwards(viz, image, layer, layout, size):
    """The engine's change of the centre unit, every channel, at each placement of a patch
    of half the image, against one plain `get_features` forward per occluded image. CNNs
    (channels-first maps) must take the incremental path, token and NHWC layouts full ones."""
    patch = size // 2
    result = viz.occlusion(image, layer, patch_size=patch, stride=patch)
    assert result.incremental is (layout == "NCHW")
    h, w = result.position
    base = viz.get_features(image, layer)[0, :, h, w].double()
    for i, top in enumerate((0, patch)):
        for j, left in enumerate((0, patch)):
            occluded = image.clone()
            occluded[..., top : top + patch, left : left + patch] = 0
            unit = viz.get_features(occluded, layer)[0, :, h, w].double()
            np.testing.assert_allclose(result.deltas[i, j], (base - unit).cpu().numpy(), atol=1e-4)
    assert np.abs(result.deltas).max() > 1e-4  # not a comparison of zeros


def test_vit_prefix_tokens_are_dropped_exactly(device):
    model = timm_model("deit_tiny_distilled_patch16_224", img_size=64)
    assert model.num_prefix_tokens == 2
    batch = torch.randn(1, 3, 64, 64, device=device)
    tokens = {}
    handle = model.blocks[3].register_forward_hook(lambda m, i, o: tokens.setdefault("t", o))
    try:
        maps = FeatureVisualizer(model, device=device).get_features(batch, "blocks.3")
        with torch.no_grad():
            model.eval()
            model(batch)
            model.train()
    finally:
        handle.remove()
    # Patch (row 1, col 2) of a 4x4 grid is token 2 + 1 * 4 + 2.
    torch.testing.assert_close(maps[0, :, 1, 2], tokens["t"][0, 2 + 1 * 4 + 2])


def test_swin_nhwc_stage_is_permuted_not_misread(device):
    model = timm_model("swin_tiny_patch4_window7_224")
    batch = torch.randn(1, 3, 224, 224, device=device)
    maps = FeatureVisualizer(model, device=device).get_features(batch, "layers.1")
    assert maps.shape == (1, 192, 28, 28)
    with torch.no_grad(), exact_float32():  # as exact as the engine on CUDA too
        model.eval()
        nhwc = model.layers[1](model.layers[0](model.patch_embed(batch)))
        model.train()
    torch.testing.assert_close(maps, nhwc.permute(0, 3, 1, 2))


def test_tuple_outputs_use_the_first_tensor_and_bad_layouts_are_named(device):
    model = timm_model("vit_tiny_patch16_224", img_size=64)
    viz = FeatureVisualizer(model, device=device)
    batch = torch.randn(1, 3, 64, 64)
    assert viz.get_features(batch, "blocks.0.attn.qkv").shape == (1, 576, 4, 4)
    swin = FeatureVisualizer(timm_model("swin_tiny_patch4_window7_224"), device=device)
    with pytest.raises(ValueError, match=r"outputs shape \(64, 49, 96\).*not the batch"):
        swin.get_features(torch.randn(1, 3, 224, 224), "layers.0.blocks.0.attn")


# (name, create kwargs, input size, the default layer): one model of each family above, at a
# size where some stages are still >= 12 px.
DEFAULT_LAYERS = [
    ("resnet18", {}, 224, "layer3"),
    ("resnet50", {}, 224, "layer3"),
    ("resnet18", {}, 96, "layer2"),
    ("efficientnet_b0", {}, 224, "blocks.4"),
    ("convnext_atto", {}, 224, "stages.2"),
    ("convnext_atto", {}, 96, "stages.1"),
    ("mobilenetv3_small_050", {}, 224, "blocks.3"),
    ("regnetx_002", {}, 224, "s3"),
    ("vit_tiny_patch16_224", {}, 224, "norm"),
    ("deit_tiny_distilled_patch16_224", {}, 224, "norm"),
    ("swin_tiny_patch4_window7_224", {}, 224, "layers.2"),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "size", "expected"),
    DEFAULT_LAYERS,
    ids=[f"{m[0]}-{m[2]}" for m in DEFAULT_LAYERS],
)
def test_default_layer_is_the_deepest_with_maps_of_at_least_12_px(name, kwargs, size, expected):
    """The documented rule: the layer shown first is the deepest one (in the default list's
    forward order) whose maps are >= 12 px; only its own blocks may follow it at that size."""
    viz = FeatureVisualizer(timm_model(name, **kwargs), device="cpu")
    layers = viz.list_layers(torch.zeros(1, 3, size, size))
    chosen = default_layer(layers)
    assert chosen == expected
    names = [info.name for info in layers]
    shapes = {info.name: info.shape for info in layers}
    assert min(shapes[chosen][1:]) >= 12
    later = names[names.index(chosen) + 1 :]
    too_big = [n for n in later if min(shapes[n][1:]) >= 12 and not n.startswith(chosen + ".")]
    assert not too_big, f"{chosen} is the default but {too_big} come later with maps >= 12 px"
    # and it is a stage, not the stem or one block of a stage
    assert chosen.count(".") == 0 or chosen.rsplit(".", 1)[1].isdigit()


def test_default_layer_reads_stages_inside_containers_and_wrappers():
    def info(name, size):
        return LayerInfo(name, "Module", (8, size, size), "NCHW")

    # a container of stages (children of several sizes) stands for its stages
    convnext = [info("stem", 56), info("stem.0", 56), info("stages", 7)]
    convnext += [info(f"stages.{i}", 56 >> i) for i in range(4)] + [info("head", 1)]
    assert default_layer(convnext) == "stages.2"
    # a wrapper's backbone too, whose stages keep their blocks to themselves
    wrapped = [info("backbone", 7), info("backbone.conv1", 112)]
    for i, size in enumerate((56, 28, 14, 7), start=1):
        wrapped += [info(f"backbone.layer{i}", size), info(f"backbone.layer{i}.0", size)]
    wrapped += [info("head", 1)]
    assert default_layer(wrapped) == "backbone.layer3"
    # nothing >= 12 px: the first layer
    assert default_layer([info("blocks.0", 4), info("blocks.1", 4)]) == "blocks.0"
