"""Hooks, early stop, errors, and leaving the user's model exactly as it was."""

import pytest
import torch
from conftest import timm_model
from torch import nn

from featviz_widgets import FeatureVisualizer, LayerNotFoundError

X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_unknown_layer_lists_closest_names_and_how_to_list_all(snapshot, device):
    model = timm_model("resnet18")
    state = snapshot(model)
    with pytest.raises(LayerNotFoundError) as info:
        FeatureVisualizer(model, device=device).get_features(X, "layer5")
    message = str(info.value)
    assert "'layer5' not found" in message
    assert "'layer1'" in message and "list_layers(include='all')" in message
    state.assert_unchanged()


def test_empty_layer_name_is_the_whole_model_not_a_layer(snapshot, device):
    model = timm_model("resnet18")
    state = snapshot(model)
    viz = FeatureVisualizer(model, device=device)
    forwards = []
    handle = model.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        for call in (
            lambda: viz.get_features(X, ""),
            lambda: viz.compare_layers(X, ["layer1", ""], plot=False),
            lambda: viz.occlusion(X, ""),
        ):
            with pytest.raises(
                LayerNotFoundError,
                match=r"layer name '' is the whole ResNet, not a layer; .*"
                r"list_layers\(\)",
            ):
                call()
    finally:
        handle.remove()
    assert forwards == []
    state.assert_unchanged()


def test_parameter_name_and_unused_layer_errors(tiny, snapshot, device):
    state = snapshot(tiny)
    viz = FeatureVisualizer(tiny, device=device)
    with pytest.raises(ValueError, match=r"'conv.weight' is a parameter .* module 'conv'"):
        viz.get_features(X, "conv.weight")
    with pytest.raises(ValueError, match=r"'unused' exist but never ran"):
        viz.get_features(X, "unused")
    state.assert_unchanged()


def test_failing_forward_leaves_no_hook_and_restores_modes(snapshot, device):
    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.drop = nn.Dropout()

        def forward(self, x):
            self.conv(x)
            raise RuntimeError("boom")

    model = Exploding().train()
    model.conv.eval()  # mixed modes must come back exactly
    model.conv.weight.requires_grad_(False)
    state = snapshot(model)
    with pytest.raises(RuntimeError, match=r"forward failed .*\(RuntimeError: boom\)"):
        # 'drop' never runs: the forward raises first and the error says so.
        FeatureVisualizer(model, device=device).get_features(X, "drop")
    state.assert_unchanged()
    assert model.training and not model.conv.training


def test_forward_stops_right_after_the_last_requested_layer(snapshot, device):
    model = timm_model("resnet18")
    state = snapshot(model)
    calls = []
    handle = model.layer4.register_forward_pre_hook(lambda *_: calls.append("layer4"))
    try:
        FeatureVisualizer(model, device=device).get_features(X, "layer2")
        assert calls == []
        viz = FeatureVisualizer(model, device=device)
        viz.compare_layers(X, ["layer1", "layer4"], plot=False)
        assert calls == ["layer4"]
    finally:
        handle.remove()
    state.assert_unchanged()


def test_compare_layers_is_one_forward_and_cache_reuses_it(device):
    model = timm_model("resnet18")
    forwards = []
    handle = model.conv1.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        viz = FeatureVisualizer(model, device=device)
        viz.compare_layers(X, ["layer1", "layer2", "layer3"], plot=False)
        assert len(forwards) == 1
        viz.get_features(X, "layer2")
        viz.get_feature_statistics(X, "layer3")
        assert len(forwards) == 1  # both from the cache
        viz.get_features(X[:1], "layer2")
        assert len(forwards) == 2  # another image
    finally:
        handle.remove()


def test_cache_is_bounded_and_invalidated_by_weight_updates(tiny, device):
    viz = FeatureVisualizer(tiny, device=device, cache_size=2)
    before = viz.get_features(X, "act").clone()
    for size in (8, 9, 10, 11):
        viz.get_features(torch.rand(1, 3, size, size), "act")
    assert len(viz.features) == 2
    with torch.no_grad():
        tiny.conv.bias.add_(1.0)  # an in-place update, like an optimizer step
    after = viz.get_features(X, "act")
    assert torch.equal(before[:, 0], torch.ones_like(before[:, 0]))
    assert torch.equal(after[:, 0], torch.full_like(after[:, 0], 2.0))  # ReLU(1 + 1)


def test_features_carry_no_autograd_graph_and_model_dtype(device):
    model = timm_model("resnet18")
    features = FeatureVisualizer(model, device=device).get_features(X, "layer1")
    assert not features.requires_grad and features.grad_fn is None
    assert features.device.type == device
    double = nn.Sequential(nn.Conv2d(3, 4, 3)).to(torch.float64)
    out = FeatureVisualizer(double, device=device).get_features(X, "0")
    assert out.dtype == torch.float64


def test_torch_compiled_model_is_hooked_through_its_original(device):
    model = timm_model("resnet18")
    compiled = torch.compile(model)
    viz = FeatureVisualizer(compiled, device=device)
    assert viz.model is model
    assert viz.get_features(X, "layer3").shape == (2, 256, 4, 4)


def test_device_choice_falls_back_to_cpu_and_accepts_explicit_device(tiny, device):
    assert FeatureVisualizer(tiny, use_cuda=True).device.type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    assert FeatureVisualizer(tiny, use_cuda=False).device == torch.device("cpu")
    viz = FeatureVisualizer(tiny, device=device)
    assert viz.device.type == device
    assert {p.device.type for p in tiny.parameters()} == {device}  # moved once, here
    assert viz.get_features(X, "act").device.type == device
    with pytest.raises(TypeError, match="torch.nn.Module"):
        FeatureVisualizer("resnet18")


def test_list_layers_default_and_all(snapshot, device):
    model = timm_model("resnet18")
    state = snapshot(model)
    viz = FeatureVisualizer(model, device=device)
    default = {layer.name: layer for layer in viz.list_layers()}
    assert default["layer3"].shape == (256, 14, 14)
    assert default["layer3"].layout == "NCHW" and default["layer3"].module_type == "Sequential"
    assert "layer1.0" in default and "layer1.0.conv1" not in default
    assert default["fc"].shape == (1000, 1, 1) and default["fc"].layout == "pooled"
    everything = {layer.name for layer in viz.list_layers(include="all")}
    assert "layer1.0.conv1" in everything and set(default) <= everything
    state.assert_unchanged()


def test_wrapper_with_backbone_attribute_uses_dotted_names_and_timm_config(image, device):
    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = timm_model("resnet18", num_classes=0)
            self.head = nn.Linear(512, 10)

        def forward(self, x):
            return self.head(self.backbone(x))

    viz = FeatureVisualizer(Classifier(), device=device)
    assert viz.get_features(image, "backbone.layer3").shape == (1, 256, 14, 14)
    names = [layer.name for layer in viz.list_layers()]
    assert "backbone.layer3" in names and "backbone.layer3.1" in names


def test_an_output_changed_in_place_later_keeps_the_layers_values(snapshot, device):
    """resnet's inplace `act1` overwrites `bn1`'s output: a forward that runs on past `bn1`
    (several layers, or the whole model) still gives `bn1`'s own values."""
    model = timm_model("resnet18")
    state = snapshot(model)
    viz = FeatureVisualizer(model, device=device)
    batch = X.to(device)
    alone = viz.features.capture(batch, ["bn1"])["bn1"].maps
    together = viz.features.capture(batch, ["bn1", "act1", "layer1"])
    probed = viz.features.probe(batch, ["bn1", "fc"])
    assert (alone < 0).any()  # a BatchNorm's output, before the ReLU
    assert torch.equal(together["bn1"].maps, alone) and torch.equal(probed["bn1"].maps, alone)
    assert torch.equal(together["act1"].maps, alone.clamp(min=0))
    state.assert_unchanged()


def test_capture_with_layer_grad_stops_the_gradient_at_the_layer(snapshot):
    from featviz_widgets.core.capture import capture_with_layer_grad

    model = timm_model("resnet18")
    state = snapshot(model)
    layer, logits = capture_with_layer_grad(model, X, "bn1")
    assert layer.is_leaf and layer.requires_grad and logits.requires_grad
    assert (layer < 0).any()  # the inplace act1 changed the copy, not the kept output
    (grad,) = torch.autograd.grad(logits[:, 0].sum(), layer)
    assert grad.shape == layer.shape and all(p.grad is None for p in model.parameters())
    assert torch.is_grad_enabled()  # the grad mode of the caller came back
    state.assert_unchanged()

    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair, self.unused = Pair(), nn.Linear(1, 1)

        def forward(self, x):
            return self.pair(x)[0].mean(dim=(2, 3))

    with pytest.raises(ValueError, match="not one floating-point tensor"):
        capture_with_layer_grad(Net(), X, "pair")
    with pytest.raises(ValueError, match="never ran"):
        capture_with_layer_grad(Net(), X, "unused")
