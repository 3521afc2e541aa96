"""`FeatureVisualizer.class_evidence` (featviz_widgets.evidence): Grad-CAM equal to Captum's
`LayerGradCam(relu_attributions=True)`, contributions equal to an autograd reference, NHWC and
token layers read as maps, batches equal to single images, the model left untouched, clear
errors, ImageNet names; and its figure. Real photos, timm models with random weights."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from conftest import timm_model
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from skimage import data
from timm.data import ImageNetInfo

from featviz_widgets import ClassEvidence, FeatureVisualizer, LayerNotFoundError, sample_image

pytestmark = pytest.mark.timeout(600)

SWIN = dict(embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))  # small, still NHWC


def photo(name: str) -> Image.Image:
    if name == "grace_hopper":
        return sample_image()
    return Image.fromarray(getattr(data, name)())


def visualizer(name: str, **kwargs) -> FeatureVisualizer:
    return FeatureVisualizer(timm_model(name, **kwargs), device="cpu")


def close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    """Equal within `tol`, relative to the reference's largest magnitude."""
    scale = float(expected.abs().max()) or 1.0
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)


def reference(model, batch, layer, targets, to_maps):
    """Grad-CAM and contributions by plain autograd: a hook keeps the layer's output from a
    forward with autograd on; `to_maps` turns it (and its gradient) into (B, C, H, W)."""
    kept = {}
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: kept.setdefault("out", o))
    try:
        model.eval()
        logits = model(batch)
        score = logits[torch.arange(len(targets)), torch.tensor(targets)].sum()
        (grad,) = torch.autograd.grad(score, kept["out"])
    finally:
        handle.remove()
    acts, grads = to_maps(kept["out"].detach()), to_maps(grad)
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1))
    return cam, (grads * acts).sum(dim=(2, 3))


@pytest.mark.parametrize(
    ("name", "kwargs", "layer"),
    [
        ("resnet18", {"zero_init_last": False}, "layer3"),
        ("resnet18", {"zero_init_last": False}, "layer4"),
        ("resnet18", {"zero_init_last": False}, "bn1"),  # an inplace ReLU follows it
        ("convnext_tiny", {}, "stages.2"),
    ],
)
def test_cam_equals_captum_layer_grad_cam(name, kwargs, layer):
    viz = visualizer(name, **kwargs)
    picture = photo("grace_hopper")
    evidence = viz.class_evidence(picture, layer)
    batch = viz.prepare(picture)
    module = dict(viz.model.named_modules())[layer]
    viz.model.eval()
    expected = LayerGradCam(viz.model, module).attribute(
        batch, evidence.targets, relu_attributions=True
    )
    assert evidence.cam.shape == expected.shape[:1] + expected.shape[2:]
    assert evidence.cam.max() > 0
    close(evidence.cam, expected[:, 0].detach())
    assert all(p.grad is None for p in viz.model.parameters())


def test_contributions_equal_gradient_times_activation_summed_over_positions():
    viz = visualizer("resnet18", zero_init_last=False)
    picture = photo("chelsea")
    evidence = viz.class_evidence(picture, "layer3", target=281)
    cam, contributions = reference(viz.model, viz.prepare(picture), "layer3", [281], lambda t: t)
    assert evidence.targets == [281] and evidence.contributions.shape == (1, 256)
    close(evidence.contributions, contributions)
    close(evidence.cam, cam)
    ranked = evidence.ranked_channels()
    assert sorted(ranked) == list(range(256))
    values = evidence.contributions[0, ranked]
    assert torch.all(values[:-1] >= values[1:])


@pytest.mark.parametrize(
    ("name", "kwargs", "layer", "layout", "grid"),
    [
        ("vit_tiny_patch16_224", {}, "blocks.6", "tokens", (14, 14)),
        ("swin_tiny_patch4_window7_224", SWIN, "layers.2", "NHWC", (14, 14)),
    ],
)
def test_token_and_nhwc_layers_match_a_hand_reference(name, kwargs, layer, layout, grid):
    viz = visualizer(name, **kwargs)
    picture = photo("astronaut")
    evidence = viz.class_evidence(picture, layer)
    if layout == "tokens":  # the class token left out, the patches back on their grid
        prefix = viz.model.num_prefix_tokens

        def to_maps(t):
            return t[:, prefix:].reshape(t.shape[0], *grid, -1).permute(0, 3, 1, 2)
    else:

        def to_maps(t):
            return t.permute(0, 3, 1, 2)

    cam, contributions = reference(
        viz.model, viz.prepare(picture), layer, evidence.targets, to_maps
    )
    assert evidence.layout == layout and tuple(evidence.cam.shape) == (1, *grid)
    close(evidence.cam, cam)
    close(evidence.contributions, contributions)


def test_a_batch_gives_what_each_image_gives_alone():
    viz = visualizer("resnet18", zero_init_last=False)
    pictures = [photo("astronaut"), photo("coffee")]
    alone = [viz.class_evidence(p, "layer4", target=t) for p, t in zip(pictures, [7, 504])]
    both = viz.class_evidence(pictures, "layer4", target=[7, 504])
    assert both.targets == [7, 504] and both.cam.shape[0] == 2
    for i, single in enumerate(alone):
        close(both.cam[i], single.cam[0])
        close(both.contributions[i], single.contributions[0])
        assert [c for c, _, _ in both.top_classes[i]] == [c for c, _, _ in single.top_classes[0]]
    default = viz.class_evidence(pictures, "layer4")
    assert default.targets == [default.top_classes[i][0][0] for i in range(2)]
    assert viz.class_evidence(pictures, "layer4", target=3).targets == [3, 3]


def test_the_model_is_left_untouched_also_after_an_error(snapshot):
    viz = visualizer("resnet18", zero_init_last=False)
    viz.model.train()
    viz.model.layer2.eval()  # a mixed state comes back as it was
    before = snapshot(viz.model)
    picture = photo("coffee")
    viz.class_evidence(picture, "bn1")
    viz.class_evidence(picture, "layer3", target=[5])
    with pytest.raises(ValueError, match="out of range"):
        viz.class_evidence(picture, "layer3", target=1200)
    before.assert_unchanged()
    assert all(p.grad is None for p in viz.model.parameters())
    assert viz.model.training and not viz.model.layer2.training
    viz.model.eval()


def test_errors_name_the_value_and_the_fix():
    viz = visualizer("resnet18", zero_init_last=False)
    picture = photo("grace_hopper")
    message = "target 1200 is out of range: the model has 1000 classes (0-999)"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        viz.class_evidence(picture, "layer4", target=1200)
    with pytest.raises(ValueError, match="-1 is out of range"):
        viz.class_evidence(picture, "layer4", target=-1)
    with pytest.raises(ValueError, match="2 classes for a batch of 1"):
        viz.class_evidence(picture, "layer4", target=[1, 2])
    with pytest.raises(TypeError, match="`target` must be"):
        viz.class_evidence(picture, "layer4", target="cat")
    with pytest.raises(LayerNotFoundError, match="'layer4'"):
        viz.class_evidence(picture, "layer_4")
    headless = visualizer("resnet18", num_classes=0)
    with pytest.raises(ValueError, match="class_evidence needs a classifier.*num_classes=0"):
        headless.class_evidence(picture, "layer4")
    features = visualizer("resnet18", features_only=True)
    with pytest.raises(ValueError, match="class_evidence needs a classifier.*returns list"):
        features.class_evidence(picture, "layer4")
    assert all(not m._forward_hooks for m in features.model.modules())


def test_class_names_imagenet_for_1000_classes_else_given_or_numbered():
    viz = visualizer("resnet18", zero_init_last=False)
    evidence = viz.class_evidence(photo("chelsea"), "layer4")
    info = ImageNetInfo()
    top = evidence.top_classes[0]
    assert len(top) == 5
    assert [n for _, n, _ in top] == [info.index_to_description(i) for i, _, _ in top]
    probabilities = [p for _, _, p in top]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1
    assert evidence.target_names == [top[0][1]]

    small = visualizer("resnet18", num_classes=3)
    assert [n for _, n, _ in small.class_evidence(photo("coffee"), "layer4").top_classes[0]] == [
        f"class {i}" for i, _, _ in small.class_evidence(photo("coffee"), "layer4").top_classes[0]
    ]
    named = small.class_evidence(photo("coffee"), "layer4", class_names=["cat", "cup", "dog"])
    assert {n for _, n, _ in named.top_classes[0]} == {"cat", "cup", "dog"}
    with pytest.raises(ValueError, match="3 classes"):
        small.class_evidence(photo("coffee"), "layer4", class_names=["cat"])


def test_upsampled_cam_and_to_dict():
    viz = visualizer("resnet18", zero_init_last=False)
    evidence = viz.class_evidence(photo("astronaut"), "layer4")
    assert isinstance(evidence, ClassEvidence)
    up = evidence.upsampled_cam((224, 224))
    assert up.shape == (1, 224, 224)
    expected = torch.nn.functional.interpolate(evidence.cam[:, None], (224, 224), mode="bilinear")
    assert torch.equal(up, expected[:, 0])
    assert evidence.upsampled_cam(32).shape == (1, 32, 32)
    with pytest.raises(ValueError, match="`size`"):
        evidence.upsampled_cam((0, 3))
    as_dict = json.loads(json.dumps(evidence.to_dict()))
    assert as_dict["layer"] == "layer4" and as_dict["targets"] == evidence.targets
    assert np.allclose(as_dict["cam"], evidence.cam.numpy())
    assert as_dict["top_classes"][0][0][:2] == list(evidence.top_classes[0][0][:2])
    with pytest.raises(dataclasses.FrozenInstanceError):
        evidence.layer = "layer3"


def test_plot_class_evidence_draws_the_overlay_the_channels_and_the_classes(tmp_path):
    viz = visualizer("resnet18", zero_init_last=False)
    picture = photo("chelsea")
    path = tmp_path / "evidence.png"
    fig = viz.plot_class_evidence(picture, "layer4", save_path=path, show=False)
    assert isinstance(fig, Figure) and viz.last_figure is fig and path.stat().st_size > 10_000
    overlay, channels, classes = fig.axes[:3]
    assert len(overlay.images) == 2 and overlay.images[1].get_array().shape == (224, 224)
    assert len(channels.patches) == 10
    evidence = viz.class_evidence(picture, "layer4")
    ticks = [t.get_text() for t in channels.get_yticklabels()]
    assert ticks == [f"ch {c}" for c in evidence.ranked_channels()[:10]]
    assert len(classes.patches) == 5
    widths = [bar.get_width() for bar in classes.patches]
    assert widths == pytest.approx([p for _, _, p in evidence.top_classes[0]])
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    assert pixels.std() > 20  # a picture, not a blank canvas
    left = pixels[:, : pixels.shape[1] // 3]
    assert (left[..., 0].astype(int) - left[..., 2] > 100).any()  # jet's red: evidence shown
