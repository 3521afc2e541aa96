"""Layouts decided by what each module does: every 4-D output of mixed-layout families against
the truth of its semantics, ties between channels and width, and honest "unknown"."""

from __future__ import annotations

import pytest
import timm.layers
import torch
import torch.nn.functional as F
from conftest import marked_slow, timm_model
from torch import nn

from featviz_widgets import FeatureVisualizer, LayoutWarning

# (name, create kwargs, (H, W) input): non-square wherever the model accepts it, so that the
# spatial axes of every map are told apart from the channel axis by their sizes alone.
FAMILIES = [
    ("convnext_atto", {}, (160, 224)),
    ("convnextv2_atto", {}, (160, 224)),
    # 160x320, not 256x512: the same 856 module calls, of which 568 get a layout checked here
    # (every one of the 550 checked at 256x512 and 18 more), at a third of the time.
    ("maxvit_rmlp_pico_rw_256", {"img_size": (160, 320)}, (160, 320)),
    ("coatnet_pico_rw_224", {"img_size": (224, 288)}, (224, 288)),
    ("efficientformerv2_s0", {}, (224, 224)),
    ("swin_tiny_patch4_window7_224", {}, (224, 224)),
    ("resnet18", {}, (160, 224)),
]


def record_calls(model: nn.Module, batch: torch.Tensor) -> dict[str, tuple]:
    """(module, first input, output) of every module's first call, from a plain forward on the
    model's device."""
    calls: dict[str, tuple] = {}

    def keep(name: str, module: nn.Module, inputs: tuple, output) -> None:
        calls.setdefault(name, (module, inputs[0] if inputs else None, output))

    handles = [
        module.register_forward_hook(lambda m, i, o, _name=name: keep(_name, m, i, o))
        for name, module in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            model.eval()
            model(batch.to(next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
        model.train()
    return calls


def semantic_truth(module: nn.Module, x, out: torch.Tensor) -> str | None:
    """The layout a module's operation implies, recomputed here; None where it implies none."""
    if isinstance(module, nn.Conv2d | nn.BatchNorm2d):
        return "NCHW"
    if isinstance(module, nn.Linear):
        return "NHWC"
    if isinstance(module, nn.LayerNorm) and isinstance(x, torch.Tensor) and x.shape == out.shape:
        args = (module.normalized_shape, module.weight, module.bias, module.eps)
        last_fits = x.shape[-1] == module.normalized_shape[0]
        if last_fits and torch.allclose(F.layer_norm(x, *args), out, atol=1e-5):
            return "NHWC"
        over_dim1 = F.layer_norm(x.permute(0, 2, 3, 1), *args).permute(0, 3, 1, 2)
        assert torch.allclose(over_dim1, out, atol=1e-5), "a LayerNorm over neither axis"
        return "NCHW"
    return None


def spatial_truth(shape: torch.Size, input_hw: tuple[int, int]) -> str | None:
    """The layout whose spatial axes, alone, have the input's aspect ratio."""

    def follows_input(h: int, w: int) -> bool:
        return abs(h * input_hw[1] - w * input_hw[0]) <= max(input_hw) // 8

    first, last = follows_input(shape[2], shape[3]), follows_input(shape[1], shape[2])
    return None if first == last else ("NCHW" if first else "NHWC")


@pytest.mark.models
@pytest.mark.parametrize(
    ("name", "kwargs", "size"),
    marked_slow(FAMILIES, {"maxvit_rmlp_pico_rw_256"}),
    ids=[f[0] for f in FAMILIES],
)
def test_every_4d_module_gets_the_layout_of_its_semantics(name, kwargs, size, snapshot, device):
    model = timm_model(name, **kwargs)
    state = snapshot(model)
    viz = FeatureVisualizer(model, device=device)  # moves the model: the truth runs there too
    batch = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    calls = record_calls(model, batch)
    listed = {layer.name: layer for layer in viz.list_layers(batch, include="all")}
    checked = by_semantics = 0
    for layer_name, (module, x, output) in calls.items():
        out = output if isinstance(output, torch.Tensor) else None
        if out is None or out.ndim != 4 or out.shape[0] != 2:
            continue
        truth = semantic_truth(module, x, out)
        by_semantics += truth is not None
        truth = truth or spatial_truth(out.shape, size)
        if truth is None:
            continue
        layer = listed[layer_name]
        assert layer.layout == truth, f"{layer_name} ({type(module).__name__}, {tuple(out.shape)})"
        expected = out.shape[1:] if truth == "NCHW" else (out.shape[3], *out.shape[1:3])
        assert layer.shape == tuple(expected)
        checked += 1
    assert checked > 50 and by_semantics > 20
    state.assert_unchanged()


def test_convnext_layernorm2d_is_read_channels_first(device):
    """timm's LayerNorm2d subclasses nn.LayerNorm but normalises dim 1 of NCHW maps."""
    model = timm_model("convnext_atto")
    assert isinstance(model.stem[1], timm.layers.LayerNorm2d)
    viz = FeatureVisualizer(model, device=device)
    image = torch.randn(1, 3, 224, 224)
    assert viz.get_features(image, "stem.1").shape == (1, 40, 56, 56)
    assert viz.get_features(image, "head.norm").shape == (1, 320, 1, 1)  # after the pooling
    listed = {layer.name: layer for layer in viz.list_layers(image)}
    assert (listed["stem.1"].shape, listed["stem.1"].layout) == ((40, 56, 56), "NCHW")
    fig = viz.plot_feature_maps(image, "stem.1", num_features=4)
    assert "of 40 channels" in fig._suptitle.get_text() and "(56x56)" in fig._suptitle.get_text()


@pytest.mark.parametrize("conv_mlp", [True, False], ids=["layernorm2d", "layernorm-last"])
def test_channels_equal_to_width_are_told_by_what_modules_do(conv_mlp, device):
    """At 64 px a 16-channel stage has 16 x 16 maps, so sizes cannot tell the channel axis.
    Norms are recomputed both ways, blocks inherit their input's layout, and what nothing
    tells is "unknown", never a wrong guess."""
    torch.manual_seed(0)
    kwargs = {"dims": (16, 32, 64, 128), "depths": (1, 1, 1, 1), "conv_mlp": conv_mlp}
    model = timm.create_model("convnext_atto", pretrained=False, **kwargs)
    wide = FeatureVisualizer(model, device=device)
    truth = {
        layer.name: layer.layout
        for layer in wide.list_layers(torch.randn(1, 3, 64, 96), include="all")
    }
    viz = FeatureVisualizer(model, device=device)
    square = torch.randn(1, 3, 64, 64)
    listed = {layer.name: layer for layer in viz.list_layers(square, include="all")}
    assert listed["stages.0.blocks.0"].shape[0] == 16 and listed["stem.0"].shape == (16, 16, 16)
    for name, layer in listed.items():
        assert layer.layout in (truth[name], "unknown"), name
    norm = "stages.0.blocks.0.norm"
    assert listed[norm].layout == ("NCHW" if conv_mlp else "NHWC")
    for decided in ("stem.1", "stages.0.blocks.0", "stages.0", "stages.1.downsample.0"):
        assert listed[decided].layout == "NCHW", decided
    # ConvNeXt's drop path gets a tensor built by plain code and hands it to plain code.
    assert listed["stages.0.blocks.0.drop_path"].layout == "unknown"
    assert listed["stages.0.blocks.0.drop_path"].shape == (16, 16, 16)
    with pytest.warns(LayoutWarning, match=r"\(1, 16, 16, 16\).*come first or last.*PyTorch"):
        unknown = viz.get_features(square, "stages.0.blocks.0.drop_path")
    assert unknown.shape == (1, 16, 16, 16)
    features = viz.get_features(square, "stages.0.blocks.0")
    assert features.shape == (1, 16, 16, 16)


class PermutedBlock(nn.Module):
    """Plain code hands its modules a channels-last tensor whose sizes are all equal."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.bn = timm.layers.BatchNormAct2d(8, act_layer=nn.GELU)
        self.gelu = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        last = self.gelu(x.permute(0, 2, 3, 1))  # nothing tells this one
        return self.bn(last.permute(0, 3, 1, 2).contiguous())


def test_a_norm_tells_its_own_activation_and_the_unknowable_is_named(device):
    viz = FeatureVisualizer(PermutedBlock(), device=device)
    listed = {
        layer.name: layer for layer in viz.list_layers(torch.randn(1, 3, 32, 32), include="all")
    }
    # BatchNormAct2d runs its drop and act children on a tensor made inside its own forward;
    # they learn the layout back from the norm once it returns their output.
    assert {listed[n].layout for n in ("bn", "bn.drop", "bn.act", "conv")} == {"NCHW"}
    assert (listed["gelu"].layout, listed["gelu"].shape) == ("unknown", (8, 8, 8))
