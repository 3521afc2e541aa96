"""The layer as colour (`FeatureVisualizer.layer_pca`): the first three principal components of
one image's maps against an SVD computed here, on a CNN, ViT tokens and a Swin (NHWC); the sign
rule, a batch, one forward, the errors and the picture."""

from __future__ import annotations

import io
import re

import pytest
import torch
from conftest import resnet18_64px, scene, small_vit, timm_model
from matplotlib import cbook
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from featviz_widgets import FeatureVisualizer, LayerNotFoundError, LayerPCA
from featviz_widgets.core.layout import Format
from featviz_widgets.plotting import plot_layer_pca

SWIN = dict(embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))  # small, still NHWC


@pytest.fixture(scope="module")
def hopper() -> Image.Image:
    with cbook.get_sample_data("grace_hopper.jpg") as photo:
        return Image.open(photo).convert("RGB")


def small_swin() -> nn.Module:
    return timm_model("swin_tiny_patch4_window7_224", **SWIN)


# (model, layer, the layout the layer has, its maps' (C, H, W))
MODELS = [
    (resnet18_64px, "layer2", Format.NCHW, (128, 8, 8)),
    (small_vit, "blocks.1", Format.TOKENS, (192, 6, 6)),
    (small_swin, "layers.2", Format.NHWC, (96, 14, 14)),
]
IDS = ["resnet18", "vit", "swin"]


def reference(maps: torch.Tensor) -> dict[str, torch.Tensor]:
    """The PCA of one image's (C, H, W) maps, computed here in float64 on the CPU: SVD of the
    centred (positions x channels) matrix, each component's sign making its loading vector's
    entry of largest |value| (the first such) positive, scores min-max scaled per component."""
    c, h, w = maps.shape
    x = maps.detach().cpu().double().reshape(c, h * w).T
    x = x - x.mean(dim=0)
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    loadings, scores = vh[:3].clone(), (u[:, :3] * s[:3]).T.clone()
    for k in range(3):
        biggest = int(torch.argmax(loadings[k].abs()))
        if loadings[k, biggest] < 0:
            loadings[k], scores[k] = -loadings[k], -scores[k]
    low = scores.min(dim=1, keepdim=True).values
    high = scores.max(dim=1, keepdim=True).values
    rgb = ((scores - low) / (high - low)).T.reshape(h, w, 3)
    return {
        "scores": scores.reshape(3, h, w),
        "loadings": loadings,
        "explained": s[:3] ** 2 / (s**2).sum(),
        "rgb": rgb.float(),
    }


def assert_equal_to(pca: LayerPCA, expected: dict[str, torch.Tensor]) -> None:
    for name, value in expected.items():
        actual = getattr(pca, name)
        assert actual.device.type == "cpu" and actual.shape == value.shape, name
        scale = float(value.abs().max())
        tol = 1e-5 if name == "rgb" else 1e-9
        torch.testing.assert_close(
            actual.to(value.dtype), value, rtol=tol, atol=tol * scale, msg=name
        )


@pytest.mark.parametrize(("make", "layer", "layout", "shape"), MODELS, ids=IDS)
def test_values_equal_an_svd_of_the_centred_maps(make, layer, layout, shape, hopper, device):
    viz = FeatureVisualizer(make(), device=device)
    assert viz.features.maps(viz.prepare(hopper), [layer])[layer].layout is layout
    pca = viz.layer_pca(hopper, layer)
    maps = viz.get_features(hopper, layer)
    assert tuple(maps.shape) == (1, *shape)
    c, h, w = shape
    assert isinstance(pca, LayerPCA) and pca.layer == layer
    assert pca.map_size == (h, w)  # for the ViT: its 6 x 6 patch grid, the class token left out
    assert pca.rgb.shape == (h, w, 3) and pca.rgb.dtype == torch.float32
    assert pca.scores.shape == (3, h, w) and pca.loadings.shape == (3, c)
    assert_equal_to(pca, reference(maps[0]))


@pytest.mark.parametrize(("make", "layer", "layout", "shape"), MODELS, ids=IDS)
def test_sign_rule_ratios_and_colours(make, layer, layout, shape, hopper):
    pca = FeatureVisualizer(make(), device="cpu").layer_pca(hopper, layer)
    for k in range(3):
        row = pca.loadings[k]
        biggest = int(torch.argmax(row.abs()))
        assert row[biggest] > 0, f"component {k}: its largest |loading| is negative"
    torch.testing.assert_close(pca.loadings @ pca.loadings.T, torch.eye(3, dtype=torch.float64))
    explained = pca.explained.tolist()
    assert explained == sorted(explained, reverse=True), explained
    assert all(0 < e <= 1 for e in explained) and sum(explained) <= 1 + 1e-12
    assert float(pca.rgb.min()) >= 0 and float(pca.rgb.max()) <= 1
    for k in range(3):  # each colour spans [0, 1] on its own
        assert (float(pca.rgb[..., k].min()), float(pca.rgb[..., k].max())) == (0.0, 1.0)
    # Repeatable: another visualizer of the same model gives the same colours and signs.
    again = FeatureVisualizer(make(), device="cpu").layer_pca(hopper, layer)
    assert torch.equal(again.rgb, pca.rgb) and torch.equal(again.loadings, pca.loadings)


def test_index_picks_the_image_of_the_batch(hopper, device):
    viz = FeatureVisualizer(resnet18_64px(), device=device)
    both = viz.layer_pca([scene(), hopper], "layer2", index=1)
    alone = viz.layer_pca(hopper, "layer2")
    first = viz.layer_pca([scene(), hopper], "layer2", index=0)
    assert_equal_to(both, reference(viz.get_features([scene(), hopper], "layer2")[1]))
    for name in ("rgb", "scores", "loadings", "explained"):
        torch.testing.assert_close(getattr(both, name), getattr(alone, name), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(first.rgb, alone.rgb, atol=0.1)  # image 0 is another image
    with pytest.raises(ValueError, match=r"`index` 2 is out of range for a batch of 2 image"):
        viz.layer_pca([scene(), hopper], "layer2", index=2)


@pytest.mark.parametrize("make", [resnet18_64px, small_vit], ids=["resnet18", "vit"])
def test_one_forward_then_the_cache(make, hopper, device):
    model = make()
    viz = FeatureVisualizer(model, device=device)  # fresh: empty cache
    forwards = []
    # A pre-hook: the capture stops the forward at the layer, so a post-hook would never fire.
    handle = model.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        layer = "layer3" if make is resnet18_64px else "blocks.2"
        pca = viz.layer_pca(hopper, layer)
        assert len(forwards) == 1
        again = viz.layer_pca(hopper, layer)
        viz.get_features(hopper, layer)
        assert len(forwards) == 1  # both served from the cache
        assert torch.equal(again.rgb, pca.rgb)
    finally:
        handle.remove()


@pytest.mark.parametrize(
    ("layer", "shape"), [("fc", "1000 x 1 x 1"), ("global_pool", "512 x 1 x 1")]
)
def test_a_layer_of_one_position_says_so(layer, shape, hopper):
    viz = FeatureVisualizer(resnet18_64px(), device="cpu")
    with pytest.raises(ValueError) as error:
        viz.layer_pca(hopper, layer)
    message = str(error.value)
    assert f"'{layer}' gives 1 position per image" in message
    assert f"its maps are {shape}, channels x height x width" in message
    assert "at least 3 positions: choose an earlier layer" in message


def test_fewer_than_three_channels_and_non_finite_values_say_so(tiny):
    viz = FeatureVisualizer(tiny, device="cpu")
    with pytest.raises(ValueError, match=r"'conv' has 2 channels .* at least 3 channels"):
        viz.layer_pca(torch.rand(1, 3, 8, 8), "conv")

    class Holes(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.clone()
            y[:, 0, :2, :] = float("nan")
            y[:, 1, 0, 0] = float("inf")
            return y

    model = nn.Sequential(nn.Conv2d(3, 4, 1), Holes())
    viz = FeatureVisualizer(model, device="cpu")
    with pytest.raises(
        ValueError, match=r"'1' has 17 non-finite activations \(NaN or inf\) of 256"
    ):
        viz.layer_pca(torch.rand(1, 3, 8, 8), "1")
    assert viz.layer_pca(torch.rand(1, 3, 8, 8), "0").rgb.shape == (8, 8, 3)


def test_no_variance_says_so_and_a_component_without_variance_is_grey():
    torch.manual_seed(0)
    viz = FeatureVisualizer(nn.Sequential(nn.Conv2d(3, 4, 1)), device="cpu")
    with pytest.raises(ValueError, match=r"'0' gives image 0 the same activations at every pos"):
        viz.layer_pca(torch.ones(1, 3, 8, 8), "0")
    # 3 positions: centred, they span at most 2 directions; the third component is grey.
    pca = viz.layer_pca(torch.rand(1, 3, 1, 3), "0")
    assert pca.map_size == (1, 3) and float(pca.explained[2]) < 1e-20
    assert torch.all(pca.rgb[..., 2] == 0.5)
    assert {float(v) for v in pca.rgb[..., 0].flatten()} >= {0.0, 1.0}


def test_a_bad_layer_raises_as_get_features_does(hopper):
    viz = FeatureVisualizer(resnet18_64px(), device="cpu")
    for bad in ["layer9", "layer2.0.conv1.weight", "", 3]:
        with pytest.raises((LayerNotFoundError, TypeError)) as expected:
            viz.get_features(hopper, bad)
        with pytest.raises(expected.type, match=re.escape(str(expected.value))):
            viz.layer_pca(hopper, bad)


def test_the_picture_alone_and_over_the_image(hopper):
    viz = FeatureVisualizer(resnet18_64px(), device="cpu")
    pca = viz.layer_pca(hopper, "layer2")
    title = f"layer2: PCA 1-3 (explains {float(pca.explained.sum()):.0%} of variance)"
    fig = Figure()
    alone, over = fig.subplots(1, 2)
    artist = plot_layer_pca(pca, alone)
    assert list(alone.images) == [artist] and artist.get_array().shape == (8, 8, 3)
    assert alone.get_title() == title and re.fullmatch(r"layer2: PCA 1-3 \(explains \d+% .*", title)
    picture = viz.display_image(hopper)  # 64 x 64: the image the model saw
    artist = plot_layer_pca(pca, over, picture, alpha=0.5)
    assert len(over.images) == 2 and over.images[1] is artist
    assert over.images[0].get_array().shape == (64, 64, 3)
    colours = artist.get_array()
    assert colours.shape == (64, 64, 3) and artist.get_alpha() == 0.5
    # nearest: each position is an 8 x 8 block of its colour
    assert (colours[::8, ::8] == pca.rgb.numpy()).all()
    smooth = plot_layer_pca(pca, over, picture, upsample="bilinear").get_array()
    assert smooth.shape == (64, 64, 3) and not (smooth == colours).all()
    assert over.get_title() == title
    fig.savefig(io.BytesIO(), format="png")  # it renders
    with pytest.raises(ValueError, match="`upsample` must be one of"):
        plot_layer_pca(pca, alone, picture, upsample="bicubic")
