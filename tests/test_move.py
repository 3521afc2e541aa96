"""`move_model`: a model moves to a device all the way, or stays where it was, every
parameter, gradient and buffer the same object with the same values."""

from __future__ import annotations

import pytest
import timm
import torch
from conftest import ModelSnapshot, scene
from torch import nn

from featviz_widgets import FeatureExplorer, FeatureVisualizer
from featviz_widgets.visualizer.move import move_model


class FailsToMove(nn.Module):
    """A module whose move fails as CUDA's does when memory runs out, after the modules
    before it in the model have moved."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))
        self.failing = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _apply(self, fn, recurse=True):
        if self.failing:
            raise RuntimeError("out of memory")
        return super()._apply(fn, recurse)


def half_movable_resnet() -> tuple[nn.Module, FailsToMove]:
    """A timm resnet18 whose move fails in layer2.0, after the stem and layer1 moved; some
    parameters have gradients."""
    torch.manual_seed(0)
    model = timm.create_model(
        "resnet18", pretrained=False, pretrained_cfg_overlay=dict(input_size=(3, 64, 64))
    )
    blocker = FailsToMove()
    model.layer2[0].add_module("blocker", blocker)
    model.conv1.weight.grad = torch.randn_like(model.conv1.weight)
    model.layer3[0].conv1.weight.grad = torch.randn_like(model.layer3[0].conv1.weight)
    return model, blocker


def tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    found = dict(model.named_parameters())
    found.update(model.named_buffers())
    found.update({f"{n}.grad": p.grad for n, p in model.named_parameters() if p.grad is not None})
    return found


def assert_back_where_it_was(model: nn.Module, before: dict, objects: dict) -> None:
    after = tensors(model)
    assert after.keys() == before.keys()
    for name, value in after.items():
        assert value.device.type == "cpu", f"{name} left on {value.device}"
        assert torch.equal(value, before[name]), f"{name} changed"
    for name, param in model.named_parameters():
        assert param is objects[name], f"{name} is a new Parameter"
    assert model.conv1.weight.grad is objects["conv1.weight.grad"]


@pytest.mark.parametrize("swap", [False, True], ids=["data", "swap_tensors"])
def test_a_move_that_fails_part_way_is_rolled_back(swap):
    model, _ = half_movable_resnet()
    before = {name: t.clone() for name, t in tensors(model).items()}
    objects = dict(model.named_parameters())
    objects["conv1.weight.grad"] = model.conv1.weight.grad
    snapshot = ModelSnapshot(model)
    previous = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(swap)
    try:
        with pytest.raises(RuntimeError) as info:
            move_model(model, "meta")  # every tensor before the blocker moves, then it fails
    finally:
        torch.__future__.set_swap_module_params_on_conversion(previous)
    assert str(info.value) == (
        "could not move the model to meta: out of memory; it was left on cpu."
    )
    assert str(info.value.__cause__) == "out of memory"
    assert_back_where_it_was(model, before, objects)
    snapshot.assert_unchanged()
    with torch.no_grad():  # whole again: it runs, on the CPU
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


def test_a_move_that_succeeds_moves_everything():
    model, blocker = half_movable_resnet()
    blocker.failing = False
    assert move_model(model, "meta") is model
    assert {t.device.type for t in tensors(model).values()} == {"meta"}


def test_visualizer_reports_the_failed_move_and_leaves_the_model_whole():
    model, blocker = half_movable_resnet()
    before = {name: t.clone() for name, t in tensors(model).items()}
    objects = dict(model.named_parameters())
    objects["conv1.weight.grad"] = model.conv1.weight.grad
    with pytest.raises(RuntimeError, match=r"^could not move the model to meta: out of memory; "):
        FeatureVisualizer(model, device="meta")
    assert_back_where_it_was(model, before, objects)
    viz = FeatureVisualizer(model, device="cpu")  # still usable where it was
    assert viz.get_features(scene(), "layer2").shape == (1, 128, 8, 8)


def test_explorer_device_switch_that_fails_reports_it_and_keeps_the_model():
    model, blocker = half_movable_resnet()
    explorer = FeatureExplorer(model, scene(), layer="layer1", device="cpu")
    try:
        explorer.wait(60)
        shown = explorer.features.clone()
        before = {name: t.clone() for name, t in tensors(model).items()}
        objects = dict(model.named_parameters())
        objects["conv1.weight.grad"] = model.conv1.weight.grad
        explorer._devices = ["cpu", "meta"]  # a second device whose move fails part-way
        explorer.device = "meta"
        explorer.wait(60)
        assert explorer.error == (
            "RuntimeError: could not move the model to meta: out of memory; it was left on cpu."
        )
        assert explorer.device == "cpu" and explorer.visualizer.device.type == "cpu"
        assert_back_where_it_was(model, before, objects)
        explorer.layer = "layer2"  # the explorer still works on the CPU
        explorer.wait(60)
        assert explorer.error == "" and explorer.features.shape == (1, 128, 8, 8)
        explorer.layer = "layer1"
        explorer.wait(60)
        assert torch.equal(explorer.features, shown)
    finally:
        explorer.close()
