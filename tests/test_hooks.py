"""`core/hooks.py`, the one owner of the package's forward hooks: handles that come off,
blocks that leave nothing behind, a forward that stops, and every call site going through it."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from conftest import ModelSnapshot
from torch import nn

from featviz_widgets.core.capture import capture, capture_with_layer_grad
from featviz_widgets.core.hooks import Hooks, StopForward, run_until_stopped
from featviz_widgets.core.layout import LayoutTracker
from featviz_widgets.monitor import FeatureMonitor
from featviz_widgets.occlusion.incremental import build_plan
from featviz_widgets.occlusion.runner import OcclusionRunner
from featviz_widgets.visualizer import FeatureVisualizer

PACKAGE = Path(__file__).resolve().parents[1] / "featviz_widgets"
X = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False).eval()


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def assert_no_hooks(model: nn.Module) -> None:
    for name, module in model.named_modules():
        assert not module._forward_hooks, f"forward hook left on {name or 'the model'}"
        assert not module._forward_pre_hooks, f"forward pre-hook left on {name or 'the model'}"


def fail_on_call(monkeypatch, method: str, n: int, model: nn.Module) -> list[int]:
    """Make `nn.Module.<method>` raise on its `n`-th call; returns, once it did, how many hooks
    `model` held at that moment (so a test sees the failure came half way)."""
    original = getattr(nn.Module, method)
    calls, held = [0], []

    def register(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            held.append(hook_count(model))
            raise RuntimeError(f"{method} failed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nn.Module, method, register)
    return held


# ------------------------------------------------------------------ the mechanism
def test_a_handle_removes_its_hook_and_removing_twice_is_fine(model):
    seen = []
    hooks = Hooks()
    handle = hooks.forward_hook(model.layer1, lambda *_: seen.append("after"))
    pre = hooks.forward_pre_hook(model.layer1, lambda *_: seen.append("before"))
    with torch.no_grad():
        model(X)
    assert seen == ["before", "after"]
    handle.remove()
    assert not model.layer1._forward_hooks and len(model.layer1._forward_pre_hooks) == 1
    handle.remove()
    pre.remove()
    pre.remove()
    hooks.remove()  # its handles are gone already: nothing to do, no error
    assert_no_hooks(model)
    with torch.no_grad():
        model(X)
    assert seen == ["before", "after"]


def test_remove_takes_every_hook_off_every_module_and_the_set_is_reusable(model):
    calls = []
    hooks = Hooks()
    for module in model.modules():
        hooks.forward_pre_hook(module, lambda *_: calls.append(1))
        hooks.forward_hook(module, lambda *_: calls.append(1))
    assert len(hooks) == 2 * len(list(model.modules())) and hooks
    with torch.no_grad():
        model(X)
    assert len(calls) == len(hooks)
    hooks.remove()
    assert_no_hooks(model)
    assert not hooks
    hooks.remove()
    hooks.forward_hook(model.fc, lambda *_: None)  # used again after a removal
    assert len(model.fc._forward_hooks) == 1
    hooks.remove()
    assert_no_hooks(model)


def test_the_block_removes_its_hooks_after_an_exception_inside(model):
    with pytest.raises(ValueError, match="inside"), Hooks() as hooks:
        for module in model.modules():
            hooks.forward_pre_hook(module, lambda *_: None)
            hooks.forward_hook(module, lambda *_: None)
        assert hook_count(model) == 2 * len(list(model.modules()))
        raise ValueError("inside")
    assert_no_hooks(model)


@pytest.mark.parametrize("method", ["register_forward_hook", "register_forward_pre_hook"])
def test_the_block_removes_its_hooks_when_registering_fails_half_way(model, monkeypatch, method):
    held = fail_on_call(monkeypatch, method, 20, model)
    with pytest.raises(RuntimeError, match=f"{method} failed"), Hooks() as hooks:
        for module in model.modules():
            hooks.forward_pre_hook(module, lambda *_: None)
            hooks.forward_hook(module, lambda *_: None)
    assert held and held[0] >= 38  # 19 of one kind and as many of the other were on
    assert_no_hooks(model)


def test_stop_forward_skips_the_rest_and_other_errors_propagate(model):
    later = []

    def stop(*_):
        raise StopForward

    with Hooks() as hooks:
        hooks.forward_hook(model.layer2, stop)
        hooks.forward_pre_hook(model.layer3, lambda *_: later.append(1))
        with torch.no_grad():
            assert run_until_stopped(model, X) is None
        assert later == []
    assert_no_hooks(model)
    with torch.no_grad():
        assert run_until_stopped(model, X).shape == (1, 1000)  # not stopped: the output
    with pytest.raises(ZeroDivisionError), Hooks() as hooks:
        hooks.forward_hook(model.layer2, lambda *_: 1 / 0)
        with torch.no_grad():
            run_until_stopped(model, X)
    assert_no_hooks(model)


# ------------------------------------------------------------------ the call sites
def forward_peak(model: nn.Module) -> int:
    viz = FeatureVisualizer(model, device="cpu")
    runner = OcclusionRunner(viz.features, torch.device("cpu"), viz.preprocessor)
    return runner.forward_peak(viz.features.layer_fn("layer2"), X)


CALL_SITES = {
    "capture": lambda m: capture(m, X, ["layer2"], tracker=LayoutTracker(X)),
    "capture_with_layer_grad": lambda m: capture_with_layer_grad(m, X, "layer2"),
    "build_plan": lambda m: build_plan(m, X, "layer1", (2, 2)),
    "forward_peak": forward_peak,
}


@pytest.fixture
def no_cuda_memory(monkeypatch):
    """`forward_peak` reads CUDA memory; on the CPU it reads 0."""
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *_: 0)


@pytest.mark.parametrize(
    ("site", "method", "n"),
    [
        ("capture", "register_forward_hook", 20),  # the tracker's, on every module
        ("capture_with_layer_grad", "register_forward_hook", 1),  # its only one
        ("build_plan", "register_forward_hook", 20),
        ("build_plan", "register_forward_pre_hook", 20),
        ("forward_peak", "register_forward_hook", 20),
        ("forward_peak", "register_forward_pre_hook", 20),
    ],
)
def test_call_sites_leave_the_model_as_it_was_when_registering_fails_half_way(
    model, monkeypatch, no_cuda_memory, site, method, n
):
    model.train()
    model.fc.eval()  # mixed modes come back exactly
    state = ModelSnapshot(model)
    CALL_SITES[site](model)  # works, and leaves nothing behind
    state.assert_unchanged()
    held = fail_on_call(monkeypatch, method, n, model)
    with pytest.raises(RuntimeError, match=f"{method} failed"):
        CALL_SITES[site](model)
    assert held and held[0] >= n - 1
    state.assert_unchanged()


@pytest.mark.parametrize("site", sorted(CALL_SITES))
def test_call_sites_leave_the_model_as_it_was_when_the_forward_fails(model, no_cuda_memory, site):
    model.train()
    state = ModelSnapshot(model)
    with Hooks() as hooks:  # the test's own
        hooks.forward_pre_hook(model.layer1[1], lambda *_: 1 / 0)
        if site == "build_plan":
            assert CALL_SITES[site](model) is None  # no plan where the forward fails
        else:
            with pytest.raises((RuntimeError, ZeroDivisionError)):
                CALL_SITES[site](model)
        assert hook_count(model) == 1  # only the test's own
    state.assert_unchanged()


def test_the_monitor_detaches_every_hook_after_a_half_way_failure(model, monkeypatch):
    monitor = FeatureMonitor(model, ["layer1", "layer2", "layer3"])
    held = fail_on_call(monkeypatch, "register_forward_hook", 3, model)
    with pytest.raises(RuntimeError, match="register_forward_hook failed"):
        monitor.attach()
    assert held == [3]  # the model's pre-hook and hook, and layer1's, were on
    assert_no_hooks(model)
    monkeypatch.undo()
    model.train()
    with FeatureMonitor(model, ["layer1"], every=1):
        held = fail_on_call(monkeypatch, "register_forward_hook", 10, model)
        with pytest.raises(RuntimeError, match="register_forward_hook failed"):
            model(X)  # the layout hooks of the first recorded forward fail half way
        assert held == [3 + 9]
    assert_no_hooks(model)


# ------------------------------------------------------------------ the source
def test_only_the_hooks_module_registers_forward_hooks():
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "core" / "hooks.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for name in ("register_forward_hook", "register_forward_pre_hook")
        if name in line
    ]
    assert (PACKAGE / "core" / "hooks.py").read_text().count("register_forward") == 2
    assert not found, "register hooks through core/hooks.py `Hooks`:\n" + "\n".join(found)
