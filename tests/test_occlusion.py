"""Occlusion maps against the straightforward computation, and their contract. Tests taking
`device` run on the CPU, and on CUDA where there is a GPU (see conftest.DEVICES)."""

import numpy as np
import pytest
import torch
from conftest import timm_model
from torch import nn

from featviz_widgets import FeatureVisualizer, OcclusionCancelled
from featviz_widgets.core import progress as _progress
from featviz_widgets.core.precision import exact_float32, precision_context, precision_dtype
from featviz_widgets.occlusion.engine import occlusion_sweep, patch_starts, placements_per_batch
from featviz_widgets.occlusion.incremental import build_plan

CUDA = torch.cuda.is_available()


def nchw_unit(output, channel, h, w):
    return output[:, channel, h, w]


def vit_unit(output, channel, h, w, grid_width=4, prefix=1):
    return output[:, prefix + h * grid_width + w, channel]


def straightforward_maps(model, image, layer, channels, position, patch, stride, unit=nchw_unit):
    """One full forward per placement (several placements stacked in a batch, each image on its
    own in eval mode), on the model's device in exact float32 (TF32 off, like the engine);
    overlaps averaged; the last patch flush with the border. One map per channel, all read off
    the same forwards."""
    image = image.to(next(model.parameters()).device)
    captured = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda m, i, o: captured.__setitem__("out", o)
    )
    h, w = position
    placements = [
        (top, left)
        for top in patch_starts(image.shape[-2], patch, stride)
        for left in patch_starts(image.shape[-1], patch, stride)
    ]
    training = model.training
    try:
        with torch.no_grad(), exact_float32():
            model.eval()
            model(image)
            base = {c: unit(captured["out"], c, h, w)[0].item() for c in channels}
            total = {c: torch.zeros(image.shape[-2:], dtype=torch.float64) for c in channels}
            count = torch.zeros(image.shape[-2:], dtype=torch.float64)
            for first in range(0, len(placements), 32):
                chunk = placements[first : first + 32]
                occluded = image.repeat(len(chunk), 1, 1, 1)
                for i, (top, left) in enumerate(chunk):
                    occluded[i, :, top : top + patch, left : left + patch] = 0
                model(occluded)
                for c in channels:
                    units = unit(captured["out"], c, h, w).double().cpu()
                    for (top, left), value in zip(chunk, units):
                        total[c][top : top + patch, left : left + patch] += base[c] - value
                for top, left in chunk:
                    count[top : top + patch, left : left + patch] += 1
    finally:
        handle.remove()
        model.train(training)
    assert count.min() >= 1
    return {c: (total[c] / count).numpy() for c in channels}


def straightforward_map(model, image, layer, channel, position, patch, stride, unit=nchw_unit):
    """`straightforward_maps` for one channel."""
    maps = straightforward_maps(model, image, layer, [channel], position, patch, stride, unit)
    return maps[channel]


def test_patch_starts_cover_the_border():
    assert patch_starts(224, 16, 8)[-1] == 208
    assert patch_starts(30, 16, 8) == [0, 8, 14]
    assert patch_starts(10, 16, 8) == [0]


# Up to 625 placements for the reference, in batches of 32.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize(
    ("name", "kwargs", "layer", "size", "skips", "incremental", "unit"),
    [
        ("resnet18", {"zero_init_last": False}, "layer2", 64, False, True, nchw_unit),
        # A small receptive field: most placements are provably irrelevant and skipped.
        ("resnet18", {"zero_init_last": False}, "layer1", 80, True, True, nchw_unit),
        # Bottlenecks with in-place residual adds and ReLUs; the unit's cone covers the image.
        ("resnet50", {"zero_init_last": False}, "layer3", 64, False, True, nchw_unit),
        # Squeeze-excitation is global: nothing may be skipped; its stages run whole.
        ("seresnext26d_32x4d", {"zero_init_last": False}, "layer1", 80, False, True, nchw_unit),
        ("efficientnet_b0", {}, "blocks.3", 64, False, True, nchw_unit),
        # LayerNorm over channels, 7x7 depthwise convolutions, a stride-4 stem.
        ("convnext_atto", {}, "stages.1", 64, False, True, nchw_unit),
        # TensorFlow "same" padding that depends on the input size, on odd-sized maps wider
        # than the probe window (198 px -> 99 -> 50 ...).
        pytest.param(
            *("tf_mobilenetv3_small_minimal_100", {}, "blocks.1", 198, True, True, nchw_unit),
            marks=pytest.mark.slow,
        ),
        # Attention is global and tokens are not a map: full forwards.
        ("vit_tiny_patch16_224", {"img_size": 64}, "blocks.1", 64, False, False, vit_unit),
    ],
    ids=[
        "resnet18-layer2",
        "resnet18-layer1-skips",
        "resnet50-layer3",
        "se-layer1",
        "efficientnet-se",
        "convnext",
        "tf-same-padding",
        "vit-block1",
    ],
)
def test_maps_equal_the_straightforward_computation(
    name, kwargs, layer, size, skips, incremental, unit, snapshot, device
):
    model = timm_model(name, **kwargs)
    state = snapshot(model)
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    viz = FeatureVisualizer(model, device=device)
    totals = []
    result = viz.occlusion(
        image,
        layer,
        (1, 2),
        patch_size=12,
        stride=8,
        on_progress=lambda done, total, partial: totals.append(total),
    )
    state.assert_unchanged()
    # On CUDA too: exact float32 (TF32 off) lets the plan pass its check against full forwards.
    assert result.incremental is incremental
    placements = len(patch_starts(size, 12, 8)) ** 2
    assert (totals[-1] < placements / 2) if skips else (totals[-1] == placements)
    peaks = []
    references = straightforward_maps(model, image, layer, (0, 5), (1, 2), 12, 8, unit)
    for channel, expected in references.items():
        np.testing.assert_allclose(result.map(channel, signed=True), expected, atol=1e-4)
        peak = np.abs(expected).max()
        normalised = np.abs(expected) / peak if peak > 0 else np.zeros_like(expected)
        np.testing.assert_allclose(result.map(channel), normalised, atol=1e-4)
        peaks.append(peak)
    assert max(peaks) > 1e-3  # the comparison is not between two blank maps


def test_every_pixel_is_covered_and_overlaps_average(device):
    # A global-average-pooled unit feels every pixel: no border row or column may stay 0.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1))
    # Positive weights and pixels: every pixel pushes the unit the same way, so the map is
    # a smooth hill (random-signed weights can cancel and make the shape a coin toss).
    model[0].weight.data.uniform_(0.5, 1.0)
    image = torch.rand(1, 3, 30, 30) + 1.0
    viz = FeatureVisualizer(model, device=device)
    result = viz.occlusion(image, "1", (0, 0), patch_size=16, stride=8)
    signed = result.map(0, signed=True)
    assert signed.shape == (30, 30)
    assert np.all(signed[:, -1] != 0) and np.all(signed[-1] != 0)
    # Linear model: each placement's change is additive, so averaging overlaps gives a
    # smooth map with no half-stride shift; its centre is symmetric in both axes.
    assert np.allclose(signed, signed[::-1, ::-1], atol=np.abs(signed).max() * 0.35)


def test_one_sweep_serves_every_channel_without_another_forward(device):
    model = timm_model("resnet18")
    image = torch.rand(1, 3, 48, 48)
    viz = FeatureVisualizer(model, device=device)
    forwards = []
    handle = model.conv1.register_forward_pre_hook(lambda *_: forwards.append(1))
    try:
        viz.visualize_receptive_field(image, "layer1", channel=0, show=False)
        after_first = len(forwards)
        other = viz.visualize_receptive_field(image, "layer1", channel=7, show=False)
        assert len(forwards) == after_first  # the cached sweep, features from the cache
        assert other.shape == (48, 48) and other.max() == pytest.approx(1.0)
    finally:
        handle.remove()


def test_progress_partial_maps_and_cancel(device):
    model = timm_model("resnet18")
    image = torch.rand(1, 3, 64, 64)
    viz = FeatureVisualizer(model, device=device)
    seen = []
    viz.occlusion(
        image,
        "layer2",
        patch_size=16,
        stride=8,
        batch_size=10,
        on_progress=lambda done, total, partial: seen.append((done, total, partial.complete)),
    )
    assert seen[-1] == (49, 49, True) and seen[0] == (10, 49, False)  # batch_size: any device
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    # Already true before the first batch: cancelled whatever batch size the device picks.
    with pytest.raises(OcclusionCancelled):
        viz.occlusion(
            image,
            "layer3",
            should_stop=lambda: len(seen) > 3,
            on_progress=lambda *a: seen.append(a),
        )
    snapshot_ok = all(not m._forward_hooks for m in model.modules())
    assert snapshot_ok


def test_progress_bar_counts_placements_and_can_be_turned_off(capsys, monkeypatch, device):
    viz = FeatureVisualizer(timm_model("resnet18"), device=device)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    # A sweep shorter than the delay prints nothing (an hour here: a loaded machine can take
    # longer than the real 2 s over these 4 placements).
    monkeypatch.setattr(_progress, "PROGRESS_DELAY_S", 3600.0)
    viz.occlusion(image, "layer1", (0, 0), patch_size=32, stride=32)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_progress, "PROGRESS_DELAY_S", 0.0)
    viz.occlusion(image, "layer2", patch_size=16, stride=8, progress=False)
    viz.visualize_receptive_field(image, "layer3", 0, show=False, progress=False)
    assert capsys.readouterr().err == ""
    # 7 x 7 placements: layer2's unit feels every one of them, so none is skipped.
    viz.occlusion(image, "layer2", (1, 1), patch_size=16, stride=8)
    err = capsys.readouterr().err
    assert "occlusion layer2 (1, 1)" in err and "49/49" in err and "placement" in err
    # layer1's unit at (0, 0) cannot see most placements: they count as done, not missing.
    viz.visualize_receptive_field(image, "layer1", 0, (0, 0), show=False)
    assert "49/49" in capsys.readouterr().err
    # A cancelled sweep closes its bar at the placements it reached.
    stops = iter([False, True])  # one batch of 10, then stop
    with pytest.raises(OcclusionCancelled):
        viz.occlusion(image, "layer4", batch_size=10, should_stop=lambda: next(stops))
    err = capsys.readouterr().err
    assert "10/49" in err and "49/49" not in err
    assert not _progress_bars_open()


def _progress_bars_open() -> int:
    from tqdm.auto import tqdm

    return len(getattr(tqdm, "_instances", ()))


def test_position_channel_and_patch_validation(device):
    viz = FeatureVisualizer(timm_model("resnet18"), device=device)
    image = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"outside the 8x8 map of 'layer2'"):
        viz.occlusion(image, "layer2", (8, 0))
    with pytest.raises(ValueError, match=r"outside"):
        viz.occlusion(image, "layer2", (-1, 0))
    with pytest.raises(TypeError, match="tuple \\(h, w\\)"):
        viz.occlusion(image, "layer2", 3)
    with pytest.raises(ValueError, match=r"`channel` 128 is out of range .* 128 channels"):
        viz.visualize_receptive_field(image, "layer2", 128, show=False)
    with pytest.raises(ValueError, match="`stride` must be a positive integer"):
        viz.occlusion(image, "layer2", stride=0)


def test_gradient_method_is_exact_for_a_linear_model_and_leaves_no_grads(device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.Conv2d(4, 3, 3, stride=2))
    image = torch.randn(1, 3, 40, 40)
    viz = FeatureVisualizer(model, device=device)
    kwargs = dict(position=(6, 9), patch_size=8, stride=4, show=False)
    exact = viz.visualize_receptive_field(image, "1", 2, signed=True, **kwargs)
    fast = viz.visualize_receptive_field(image, "1", 2, signed=True, method="gradient", **kwargs)
    assert np.abs(exact).max() > 1e-3
    np.testing.assert_allclose(fast, exact, atol=1e-4)
    assert "gradient approximation" in viz.last_figure._suptitle.get_text()
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="`method` must be one of"):
        viz.visualize_receptive_field(image, "1", 0, method="fast")


def test_gradient_method_checks_and_honours_precision(device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3))
    viz = FeatureVisualizer(model, device=device)
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    kwargs = dict(method="gradient", patch_size=8, stride=4, show=False)
    with pytest.raises(ValueError, match=r"`precision` must be one of .*, got 'half'"):
        viz.visualize_receptive_field(image, "2", 0, precision="half", **kwargs)
    full = viz.visualize_receptive_field(image, "2", 0, signed=True, **kwargs)
    assert viz.last_figure._suptitle.get_text().endswith("(gradient approximation)")
    dtypes = []
    handle = model[2].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    try:
        for precision in ("float16", "bfloat16"):
            try:
                dtype = precision_dtype(precision, viz.device)
            except ValueError:  # e.g. this CPU: no native kernels; the gradient path says so
                with pytest.raises(
                    ValueError,
                    match=rf"precision='{precision}' has no native support on {device}.*"
                    r"precision='float32' \(method='gradient' is fast already\)",
                ):
                    viz.visualize_receptive_field(image, "2", 0, precision=precision, **kwargs)
                continue
            dtypes.clear()
            reduced = viz.visualize_receptive_field(
                image, "2", 0, signed=True, precision=precision, **kwargs
            )
            assert dtypes == [dtype]  # the layer really ran in `precision`
            title = viz.last_figure._suptitle.get_text()
            assert title.endswith(f"(gradient, {precision} approximation)")
            assert not np.array_equal(reduced, full)
            assert np.corrcoef(reduced.ravel(), full.ravel())[0, 1] > 0.98
    finally:
        handle.remove()
    assert all(p.grad is None for p in model.parameters())


def test_gradient_method_approximates_a_real_network(snapshot, device):
    model = timm_model("resnet18", zero_init_last=False)
    state = snapshot(model)
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    viz = FeatureVisualizer(model, device=device)
    exact = viz.visualize_receptive_field(image, "layer2", 3, show=False)
    fast = viz.visualize_receptive_field(image, "layer2", 3, method="gradient", show=False)
    assert fast.shape == exact.shape and fast.max() == pytest.approx(1.0)
    assert np.corrcoef(fast.ravel(), exact.ravel())[0, 1] > 0.5
    state.assert_unchanged()
    assert all(p.grad is None for p in model.parameters())


class GlueCode(nn.Module):
    """Arithmetic between modules in `forward`: not a chain of modules."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, 4, 3, padding=1)
        self.second = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x) * 2.0)


class AddRowIndex(nn.Module):
    """Local and shift-invariant to a NaN probe, but the value depends on absolute position:
    on a crop it would be wrong, so only the numeric check can reject it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.arange(x.shape[-2], dtype=x.dtype, device=x.device)[:, None]


@pytest.mark.parametrize(
    "model",
    [
        GlueCode(),
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), AddRowIndex(), nn.Conv2d(4, 4, 3)),
    ],
    ids=["glue-code", "absolute-position"],
)
def test_models_the_plan_cannot_serve_fall_back_to_exact_full_forwards(model, snapshot, device):
    torch.manual_seed(0)
    state = snapshot(model)
    image = torch.randn(1, 3, 40, 40)
    layer = "second" if isinstance(model, GlueCode) else "2"
    viz = FeatureVisualizer(model, device=device)
    result = viz.occlusion(image, layer, (5, 6), patch_size=8, stride=4)
    assert result.incremental is False
    state.assert_unchanged()
    for channel in (0, 3):
        expected = straightforward_map(model, image, layer, channel, (5, 6), 8, 4)
        assert np.abs(expected).max() > 1e-3
        np.testing.assert_allclose(result.map(channel, signed=True), expected, atol=1e-4)


def test_training_mode_model_is_swept_in_eval_and_left_training(snapshot, device):
    model = timm_model("resnet18", zero_init_last=False).train()
    state = snapshot(model)
    image = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    viz = FeatureVisualizer(model, device=device)
    result = viz.occlusion(image, "layer2", (2, 3), patch_size=8, stride=8)
    assert result.incremental
    state.assert_unchanged()  # running statistics untouched, every module still training
    expected = straightforward_map(model, image, "layer2", 4, (2, 3), 8, 8)
    np.testing.assert_allclose(result.map(4, signed=True), expected, atol=1e-4)


def test_reduced_precision_is_gated_by_device_support_and_labelled(snapshot, device):
    model = timm_model("resnet18", zero_init_last=False)
    state = snapshot(model)
    viz = FeatureVisualizer(model, device=device)
    image = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    with pytest.raises(ValueError, match="`precision` must be one of"):
        viz.occlusion(image, "layer2", precision="int8")
    try:
        precision_dtype("bfloat16", viz.device)
    except ValueError as error:  # this CPU: no bfloat16 kernels, so it would only be slower
        assert f"no native support on {device}" in str(error)
        assert "method='gradient'" in str(error)
    else:
        viz.visualize_receptive_field(image, "layer2", 0, precision="bfloat16", show=False)
        assert "(bfloat16 approximation)" in viz.last_figure._suptitle.get_text()

    # The reduced sweep itself, under autocast (emulated on CPUs without support: same code).
    exact = viz.occlusion(image, "layer2", (2, 3), patch_size=8, stride=8)
    image = image.to(viz.device)
    with precision_context("bfloat16", viz.device):
        reduced = occlusion_sweep(
            viz.features.layer_fn("layer2"),
            image,
            layer_name="layer2",
            position=(2, 3),
            patch_size=8,
            stride=8,
            plan=build_plan(model, image, "layer2", (2, 3)),
            precision="bfloat16",
        )
    assert exact.precision == "float32" and reduced.precision == "bfloat16"
    assert reduced.incremental and reduced.complete
    strongest = np.abs(exact.deltas).max(axis=(0, 1)).argsort()[-2:]
    for channel in strongest:
        fine, coarse = exact.map(channel, signed=True), reduced.map(channel, signed=True)
        assert np.abs(fine).max() > 1e-2
        assert not np.allclose(fine, coarse, atol=1e-6)  # it really ran in bfloat16
        assert np.corrcoef(fine.ravel(), coarse.ravel())[0, 1] > 0.98
    state.assert_unchanged()


def test_gpu_batches_take_half_the_memory_a_batch_may_take():
    mib, gib = 2**20, 2**30
    # One occluded 1024 px image through resnet50 up to layer3 peaks at the order of 400 MiB
    # in float32 (each of its layer1 maps, 256 x 256 x 256 floats, is 64 MiB).
    per_image = 400 * mib
    # An 80 GB card with 78 GiB free: half of it, 39 GiB, holds 99.8 images.
    assert placements_per_batch(per_image, 78 * gib) == 99
    # A 16 GiB per-process limit (`set_per_process_memory_fraction`) with 1 GiB allocated
    # already (weights, the plan's clean maps) leaves 15 GiB: half of it holds 19.2 images.
    assert placements_per_batch(per_image, 78 * gib, limit=15 * gib) == 19
    assert 19 * per_image <= 15 * gib // 2
    # Whichever is smaller binds: here the device's free memory (3 GiB / 400 MiB = 7.7).
    assert placements_per_batch(per_image, 6 * gib, limit=15 * gib) == 7
    # Small crops: capped, where larger batches no longer pay.
    assert placements_per_batch(2 * mib, 78 * gib) == 256
    assert placements_per_batch(2 * mib, 78 * gib, cap=64) == 64
    # Less than two images' worth, or a limit already used up: one at a time, never none.
    assert placements_per_batch(per_image, 500 * mib) == 1
    assert placements_per_batch(per_image, 78 * gib, limit=-gib) == 1


class InputGlue(nn.Module):
    """resnet50 behind arithmetic on the input: no incremental plan, every placement a full
    forward of the whole image (the sweep that needs the most memory)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 1.0)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_gpu_sweep_stays_within_the_per_process_memory_fraction():
    """Unlimited, half the free memory of a large GPU would take ~100 full 1024 px images per
    batch (tens of GiB); under a 4 GiB allowance the batches must shrink to fit it."""
    device = torch.device("cuda", torch.cuda.current_device())  # the fraction calls want one
    viz = FeatureVisualizer(InputGlue(timm_model("resnet50", zero_init_last=False)), device=device)
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(7))
    previous = torch.cuda.get_per_process_memory_fraction(device)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    allowed = torch.cuda.memory_reserved(device) + 4 * 2**30
    torch.cuda.set_per_process_memory_fraction(min(1.0, allowed / total), device)
    done = [0]
    try:
        torch.cuda.reset_peak_memory_stats(device)
        result = viz.occlusion(
            image,
            "net.layer3",
            patch_size=128,
            stride=128,
            on_progress=lambda count, total, partial: done.append(count),
        )
        peak = torch.cuda.max_memory_allocated(device)
        # The incremental plan on the same model: clean maps of every stage kept, crops batched.
        plain = FeatureVisualizer(viz.model.net, device=device)
        incremental = plain.occlusion(image, "layer3", patch_size=128, stride=128)
        peak = max(peak, torch.cuda.max_memory_allocated(device))
    finally:
        torch.cuda.set_per_process_memory_fraction(previous, device)
    assert result.complete and not result.incremental
    assert incremental.complete and incremental.incremental
    np.testing.assert_allclose(incremental.deltas, result.deltas, atol=1e-4)
    assert peak <= allowed
    batches = np.diff(done)
    assert 1 < batches.max() < 64  # the allowance was used, and it bounded the batches
