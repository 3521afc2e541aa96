"""FeatureMonitor: statistics equal to get_feature_statistics, step counting, ring buffer,
untouched training, cleanup, plots, export and the live view."""

from __future__ import annotations

import io
import time
import warnings

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from featviz_widgets import FeatureMonitor, FeatureVisualizer, LayerNotFoundError
from featviz_widgets.core.layout import Format
from featviz_widgets.monitor.monitor import STATISTICS

PNG = b"\x89PNG\r\n\x1a\n"


class SmallCNN(nn.Module):
    """Conv, BN, ReLU, dropout: a network whose training consumes RNG and batch statistics."""

    def __init__(self, norm: bool = True, dropout: float = 0.3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8) if norm else nn.Identity()
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.bn(self.conv1(x))))
        return self.head(self.conv2(x).mean(dim=(2, 3)))


class Passthrough(nn.Module):
    """Its layer `feat` outputs the input itself: statistics known from the input."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feat(x)


def batch(n: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def assert_matches(recorded: dict, expected: dict) -> None:
    """One record of `history` against `get_feature_statistics` of the same batch."""
    assert recorded["mean"][-1] == pytest.approx(expected["mean"], rel=1e-5, abs=1e-7)
    assert recorded["std"][-1] == pytest.approx(expected["std"], rel=1e-5)
    assert recorded["sparsity"][-1] == pytest.approx(expected["sparsity"], abs=1e-12)
    assert recorded["max"][-1] == expected["max"]
    assert recorded["min"][-1] == expected["min"]
    assert recorded["active_channels"][-1] == expected["active_channels"]


def hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ------------------------------------------------------------------ statistics
def test_statistics_match_get_feature_statistics_on_a_hand_cnn():
    model = SmallCNN(norm=False, dropout=0.0).train()  # train and eval forwards agree
    x = batch()
    with FeatureMonitor(model, ["act", "conv2"], every=1) as monitor:
        model(x)
    viz = FeatureVisualizer(model, device="cpu")
    for layer in ("act", "conv2"):
        expected = viz.get_feature_statistics(x, layer)
        assert_matches(monitor.history[layer], expected)
    assert monitor.history["act"]["sparsity"][0] > 0.2  # ReLU zeros are counted
    assert monitor.history["conv2"]["min"][0] < 0
    assert monitor.layouts == {"act": Format.NCHW, "conv2": Format.NCHW}


def test_statistics_match_on_resnet18_layers():
    model = timm.create_model("resnet18", pretrained=False, num_classes=10).train()
    for module in model.modules():  # BN on running statistics: training forward == eval one
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    x = batch(2, 64)
    layers = ["layer1", "layer2", "layer3", "layer4"]
    with FeatureMonitor(model, layers, every=1) as monitor:
        model(x)
    viz = FeatureVisualizer(model, device="cpu")
    for layer in layers:
        assert_matches(monitor.history[layer], viz.get_feature_statistics(x, layer))


@pytest.mark.parametrize(
    ("name", "layer", "layout"),
    [
        ("vit_tiny_patch16_224", "blocks.1", Format.TOKENS),
        ("test_convnext", "stages.1.blocks.0.norm", Format.NHWC),
    ],
)
def test_token_and_channels_last_layouts_are_read_over_their_channels(name, layer, layout):
    kwargs = {"img_size": 64} if name.startswith("vit") else {}
    model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).train()
    x = batch(2, 64)
    with FeatureMonitor(model, [layer], every=1) as monitor:
        model(x)
        model(x)  # the second record comes from the layout decided on the first
    viz = FeatureVisualizer(model, device="cpu")
    expected = viz.get_feature_statistics(x, layer)
    assert monitor.layouts[layer] is layout
    assert_matches(monitor.history[layer], expected)
    first = {key: values[:1] for key, values in monitor.history[layer].items()}
    assert_matches(first, expected)
    # Channels read from the wrong axis would give another count of active channels.
    assert 0 < expected["active_channels"] < expected["num_channels"]


# ------------------------------------------------------------------ steps and ring
def test_every_counts_training_forwards_only():
    model = Passthrough().train()
    monitor = FeatureMonitor(model, ["feat"], every=3).attach()
    for step in range(8):
        model(torch.full((1, 3, 2, 2), float(step)))
        if step == 4:
            model.eval()
            model(torch.full((1, 3, 2, 2), 100.0))  # neither recorded nor counted
            model.train()
    monitor.detach()
    history = monitor.history["feat"]
    assert monitor.steps_seen == 8
    assert history["step"].tolist() == [0, 3, 6]
    assert history["mean"].tolist() == [0.0, 3.0, 6.0]
    assert history["sparsity"].tolist() == [1.0, 0.0, 0.0]


def test_layers_run_outside_the_model_call_are_named_in_one_warning():
    model = timm.create_model("resnet18", pretrained=False).train()
    x = torch.randn(2, 3, 64, 64)
    with FeatureMonitor(model, ["layer1"]) as monitor:
        with pytest.warns(UserWarning, match=r"'layer1' ran outside a call of the monitored model"):
            model.forward_features(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once only
            model.forward_features(x)
            assert monitor.steps_seen == 0 and monitor.history["layer1"]["step"].size == 0
            model(x)
            model.forward_features(x)  # after a counted call: no warning either
    assert monitor.steps_seen == 1 and monitor.history["layer1"]["step"].tolist() == [0]


def test_ring_buffer_keeps_the_last_records_oldest_first():
    model = Passthrough().train()
    with FeatureMonitor(model, ["feat"], every=1, history=4) as monitor:
        for step in range(10):
            model(torch.full((2, 3, 2, 2), float(step)))
    history = monitor.history["feat"]
    assert history["step"].tolist() == [6, 7, 8, 9]
    assert history["mean"].tolist() == [6.0, 7.0, 8.0, 9.0]
    assert history["active_channels"].dtype == np.int64
    assert monitor._rings["feat"].stats.shape == (4, len(STATISTICS))  # bounded whatever the steps


def test_monitor_consumes_no_rng_and_leaves_training_bit_identical():
    def train(monitored: bool) -> tuple[list[float], list[torch.Tensor]]:
        torch.manual_seed(0)
        model = SmallCNN()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        monitor = FeatureMonitor(model, ["bn", "drop", "conv2"], every=1, histogram=True)
        losses = []
        if monitored:
            monitor.attach()
        for step in range(6):
            x, y = batch(8, 12, seed=step), torch.arange(8) % 4
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        monitor.detach()
        if monitored:
            assert monitor.history["drop"]["step"].tolist() == list(range(6))
        return losses, [p.detach().clone() for p in model.parameters()]

    plain_losses, plain_params = train(False)
    losses, params = train(True)
    assert losses == plain_losses
    assert all(torch.equal(a, b) for a, b in zip(params, plain_params))


def test_the_hook_never_syncs_with_the_host(monkeypatch, device):
    model = SmallCNN().train().to(device)
    monitor = FeatureMonitor(model, ["act", "conv2"], every=1, histogram=True).attach()
    model(batch().to(device))  # the first forward decides layouts, which may read values
    inputs = [batch(seed=seed).to(device) for seed in range(3)]

    def refuse(*_, **__):
        raise AssertionError("host sync in the hook")

    with monkeypatch.context() as patch:
        for method in ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__"):
            patch.setattr(torch.Tensor, method, refuse)
        if device == "cuda":  # and CUDA itself refuses any synchronising operation
            torch.cuda.set_sync_debug_mode("error")
        try:
            for x in inputs:
                model(x)
        finally:
            if device == "cuda":
                torch.cuda.set_sync_debug_mode("default")
    monitor.detach()
    assert monitor.history["act"]["step"].tolist() == [0, 1, 2, 3]
    assert monitor._rings["act"].stats.device.type == device  # kept on the model's device


# ------------------------------------------------------------------ hooks and errors
def test_hooks_are_removed_after_detach_and_after_an_exception():
    model = SmallCNN().train()
    before = hooks(model)
    monitor = FeatureMonitor(model, ["act"], every=1)
    monitor.attach()
    attached = hooks(model)
    monitor.attach()  # idempotent
    assert hooks(model) == attached == before + 3
    monitor.detach()
    monitor.detach()
    assert hooks(model) == before
    with pytest.raises(RuntimeError, match="boom"), FeatureMonitor(model, ["act", "conv2"]):
        model(batch())
        raise RuntimeError("boom")
    assert hooks(model) == before


def test_a_first_forward_that_raises_leaves_no_layout_hooks_and_no_stale_record():
    model = SmallCNN().train()

    def fail(*_):
        raise RuntimeError("boom in forward")

    handle = model.conv2.register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="boom in forward"), FeatureMonitor(model, ["act"]):
        model(batch())  # layout hooks sit on every module while this forward runs
    assert hooks(model) == 1  # only the test's own
    monitor = FeatureMonitor(model, ["act"], every=10).attach()
    with pytest.raises(RuntimeError, match="boom in forward"):
        model(batch())  # step 0: its output of `act` waited for layouts that never came
    handle.remove()
    for seed in range(1, 12):
        model(batch(seed=seed))
    monitor.detach()
    assert hooks(model) == 0
    assert monitor.history["act"]["step"].tolist() == [10]
    assert monitor.layouts == {"act": Format.NCHW}


def test_unknown_layer_names_the_closest_modules():
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    with pytest.raises(LayerNotFoundError, match=r"layer5.*Closest layers: 'layer4'"):
        FeatureMonitor(model, ["layer1", "layer5"])
    with pytest.raises(ValueError, match="`every` must be a positive integer"):
        FeatureMonitor(model, ["layer1"], every=0)
    assert hooks(model) == 0


# ------------------------------------------------------------------ reading and plots
def test_histograms_count_the_activations_in_fixed_bins():
    model = SmallCNN(norm=False, dropout=0.0).train()
    x = batch()
    with FeatureMonitor(model, ["act"], every=1, histogram=True, bins=8, range=(0, 2)) as monitor:
        model(x)
    expected, _ = np.histogram(model.act(model.conv1(x)).detach().numpy(), bins=8, range=(0, 2))
    history = monitor.history["act"]
    assert history["histogram"].shape == (1, 8)
    np.testing.assert_array_equal(history["histogram"][0], expected)
    np.testing.assert_allclose(history["bin_edges"], np.linspace(0, 2, 9))
    fig = monitor.plot_histograms("act")
    assert fig.axes[0].images[0].get_array().shape == (8, 1)


def test_plot_draws_a_line_per_layer_and_statistic():
    model = SmallCNN().train()
    with FeatureMonitor(model, ["act", "conv2"], every=2) as monitor:
        for seed in range(5):
            model(batch(seed=seed))
    fig = monitor.plot()
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(STATISTICS)
    sparsity = next(ax for ax in visible if ax.get_title().startswith("sparsity"))
    lines = {line.get_label(): line for line in sparsity.get_lines()}
    assert set(lines) == {"act", "conv2"}
    np.testing.assert_array_equal(lines["act"].get_xdata(), [0, 2, 4])
    np.testing.assert_array_equal(lines["act"].get_ydata(), monitor.history["act"]["sparsity"])
    with pytest.raises(ValueError, match="histogram=True"):
        monitor.plot_histograms("act")


def test_history_saves_and_loads(tmp_path):
    model = SmallCNN().train()
    with FeatureMonitor(model, ["act", "conv2"], every=1, histogram=True) as monitor:
        for seed in range(3):
            model(batch(seed=seed))
    path = tmp_path / "history.npz"
    monitor.save(path)
    loaded = FeatureMonitor.load(path)
    original = monitor.history
    assert set(loaded) == {"act", "conv2"}
    for layer, entry in original.items():
        assert set(loaded[layer]) == set(entry) >= {"step", *STATISTICS, "histogram"}
        for key, values in entry.items():
            np.testing.assert_array_equal(loaded[layer][key], values)


def test_widget_shows_a_png_that_follows_training():
    model = SmallCNN().train()
    monitor = FeatureMonitor(model, ["act"], every=1)
    image = monitor.widget(interval=0.05)
    first = bytes(image.value)
    assert first.startswith(PNG)
    with monitor:
        for seed in range(3):
            model(batch(seed=seed))
        deadline = time.monotonic() + 20
        while bytes(image.value) == first and time.monotonic() < deadline:
            time.sleep(0.05)
        live = bytes(image.value)
    assert live != first
    assert live.startswith(PNG)
    assert Image.open(io.BytesIO(live)).size[0] > 100
    assert monitor._live.redraws >= 2  # live, then the final redraw on detach
    assert not monitor._live._thread.is_alive()
