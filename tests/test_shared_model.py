"""The explorer's background work and the user's own use of the same model at the same time.

While a "looks for" run or a dataset scan runs on the worker, the user trains the model in the
notebook's thread, with a `FeatureMonitor` on it. Every step must be the step the user would
get without the explorer: the model in training mode, every parameter requiring grad, no
hook or patched forward of the explorer's on it, the same gradients, weights, BatchNorm
statistics and monitor records; and the explorer must see the weights as they are now.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import SlowScenes, resnet18_64px, scene
from torch import nn

from featviz_widgets import FeatureExplorer, FeatureMonitor, FeatureVisualizer

STEPS = 6
MONITORED = ("layer2", "layer4")


def batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(4, 3, 64, 64, generator=generator) for _ in range(STEPS)]


def untouched(model: nn.Module, monitored: tuple[str, ...]) -> list[str]:
    """What of the explorer's is on `model` now: eval mode, frozen parameters, hooks other
    than those of a monitor of the layers `monitored`, patched forwards."""
    found = []
    for name, module in model.named_modules():
        if not module.training:
            found.append(f"{name or 'model'} in eval mode")
        hooks = len(module._forward_hooks) + len(module._forward_pre_hooks)
        if monitored and module is model:
            hooks -= 2
        if name in monitored:
            hooks -= 1
        if hooks:
            found.append(f"{name or 'model'} has {hooks} hooks not the monitor's")
        if "forward" in module.__dict__:
            found.append(f"{name}'s forward is patched")
    found += [f"{n} is frozen" for n, p in model.named_parameters() if not p.requires_grad]
    return found


def train(
    model: nn.Module, explorer: FeatureExplorer | None = None, monitored: tuple[str, ...] = ()
) -> tuple[int, list[str]]:
    """SGD steps on `batches()`; with an `explorer`, how many ran while it was busy and what
    of its work each step saw on the model (monitored by a monitor of `monitored`)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    during, seen = 0, []
    for batch in batches():
        busy = explorer is not None and explorer.busy
        seen += untouched(model, monitored)
        loss = model(batch).logsumexp(dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        seen += untouched(model, monitored)
        optimizer.step()
        during += busy
    return during, seen


def assert_same_training(model: nn.Module, reference: nn.Module) -> None:
    for (name, value), (_, expected) in zip(
        [*model.named_parameters(), *model.named_buffers()],
        [*reference.named_parameters(), *reference.named_buffers()],
    ):
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=name)
    for (name, param), (_, expected) in zip(model.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(param.grad, expected.grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.fixture
def models() -> tuple[nn.Module, nn.Module]:
    model = resnet18_64px().train()
    return model, copy.deepcopy(model)


@pytest.mark.slow
def test_training_while_looks_for_runs_is_training_without_it(models):
    model, reference = models
    explorer = FeatureExplorer(model, scene(), layer="layer2", device="cpu", looks_for_steps=400)
    try:
        explorer.wait(60)
        explorer.run_looks_for(3)
        during, seen = train(model, explorer)
        assert during >= 2, f"only {during} steps ran while the run did: too fast to tell"
        explorer.wait(300)
        assert explorer.error == "" and explorer.looks_for_result is not None
    finally:
        explorer.close()
    assert seen == []
    train(reference)
    assert_same_training(model, reference)


def test_a_monitored_training_loop_while_a_scan_runs_records_every_step(models):
    model, reference = models
    explorer = FeatureExplorer(model, scene(), layer="layer2", device="cpu")
    try:
        explorer.wait(60)
        explorer.scan_dataset(SlowScenes(400), ["layer2"], k=4, batch_size=4)
        with FeatureMonitor(model, list(MONITORED), every=1) as monitor:
            during, seen = train(model, explorer, MONITORED)
        assert during >= 2, f"only {during} steps ran while the scan did: too fast to tell"
        explorer.cancel()
        explorer.wait(120)
    finally:
        explorer.close()
    assert seen == []
    with FeatureMonitor(reference, list(MONITORED), every=1) as expected:
        train(reference)
    assert monitor.steps_seen == expected.steps_seen == STEPS
    for layer, statistics in expected.history.items():
        for key, values in statistics.items():
            torch.testing.assert_close(
                torch.as_tensor(monitor.history[layer][key]),
                torch.as_tensor(values),
                rtol=1e-5,
                atol=1e-6,
                msg=f"{layer} {key}",
            )
    assert_same_training(model, reference)


def test_the_explorer_sees_the_weights_as_they_are_after_training(models):
    model, _ = models
    explorer = FeatureExplorer(model, scene(), layer="layer2", device="cpu")
    try:
        explorer.wait(60)
        before = explorer.features.clone()
        train(model)
        explorer.layer = "layer1"
        explorer.layer = "layer2"  # a layer shown before: its maps were cached
        explorer.wait(60)
        model.eval()
        with torch.no_grad():
            expected = explorer.visualizer.get_features(scene(), "layer2")
            mine = {}
            handle = model.layer2.register_forward_hook(lambda m, i, o: mine.setdefault("o", o))
            model(explorer.visualizer.prepare(scene()))
            handle.remove()
        assert not torch.equal(explorer.features, before)
        torch.testing.assert_close(explorer.features, mine["o"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(expected, mine["o"], rtol=1e-5, atol=1e-5)
        assert explorer.model is model and explorer.visualizer.model is not model
    finally:
        explorer.close()


def test_the_visualizer_sees_a_training_step_with_no_view_between(models):
    """`explorer.visualizer` right after the user's optimizer step, and again after another:
    fresh maps each time, though no control changed (its cache keys on the user's weights, not
    on the twin's own version counters, which training does not move)."""
    model, _ = models
    explorer = FeatureExplorer(model, scene(), layer="layer2", device="cpu")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    batch = batches()[0]
    try:
        explorer.wait(60)
        explorer.visualizer.get_features(scene(), "layer2")  # cached for the weights now
        for _ in range(2):
            optimizer.zero_grad()
            model.train()
            model(batch).logsumexp(dim=1).mean().backward()
            optimizer.step()
            model.eval()
            with torch.no_grad():
                fresh = FeatureVisualizer(copy.deepcopy(model), device="cpu")
                expected = fresh.get_features(scene(), "layer2")
                seen = explorer.visualizer.get_features(scene(), "layer2")
            torch.testing.assert_close(seen, expected, rtol=1e-5, atol=1e-5)
    finally:
        explorer.close()
