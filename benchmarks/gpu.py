"""Occlusion on a GPU: the engine against the reference and a batched baseline, in one run.

    python benchmarks/gpu.py [--device cuda] [--only resnet50:layer3 ...] [--sample 96]

Per case (patch 16, stride 8, 224 px, randomly initialised model, image `randn`):
- reference: one forward of the whole model per placement, batch 1 (the published
  implementation), timed on `--sample` placements spread over the image, scaled to all;
- baseline: every placement, 256 occluded images a batch, forward stopped at the layer;
- engine cold: a fresh `FeatureVisualizer`'s first sweep (planning included); warm: another
  unit of the same layer on the same visualizer;
- max|diff|: the engine's change of the unit against the reference's, every channel, at the
  sampled placements; path: incremental or full forwards;
- bf16 / tf32: the warm sweep again in that precision (where the device has it); grad: the
  gradient approximation; peak GB: the most GPU memory allocated during the case.
Everything runs with TF32 off (exact float32) except the tf32 column. `--device cpu` runs the
same on the CPU (slow; use `--only` with a small case to check the script).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import timm
import torch
from occlusion import reference_changes  # benchmarks/occlusion.py, beside this script

from featviz_widgets import FeatureVisualizer
from featviz_widgets.core.precision import exact_float32
from featviz_widgets.occlusion.engine import patch_starts

CASES = [
    ("resnet50", "layer3"),
    ("resnet50", "layer4"),
    ("convnext_tiny", "stages.2"),
    ("vit_base_patch16_224", "blocks.6"),
]
PATCH, STRIDE, SIZE, BASELINE_BATCH = 16, 8, 224, 256


def timed(device: torch.device, work: Callable, *args, **kwargs) -> tuple[float, object]:
    """Seconds `work(*args, **kwargs)` takes, the device's queue drained before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    value = work(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, value


def occluded(image: torch.Tensor, boxes: list[tuple[int, int]]) -> torch.Tensor:
    batch = image.repeat(len(boxes), 1, 1, 1)
    for k, (top, left) in enumerate(boxes):
        batch[k, :, top : top + PATCH, left : left + PATCH] = 0
    return batch


def baseline(viz, image, layer, unit, boxes) -> None:
    """Every placement, `BASELINE_BATCH` a batch, the forward stopped at the layer."""
    layer_fn = viz.features.layer_fn(layer)
    h, w = unit
    with torch.no_grad():
        for first in range(0, len(boxes), BASELINE_BATCH):
            layer_fn(occluded(image, boxes[first : first + BASELINE_BATCH]))[:, :, h, w].cpu()


def measure(model_name: str, layer: str, device: torch.device, sample: int) -> tuple[str, ...]:
    """One row of the table."""
    starts = patch_starts(SIZE, PATCH, STRIDE)
    every = [(top, left) for top in starts for left in starts]
    picks = np.unique(np.linspace(0, len(every) - 1, sample).round().astype(int))
    torch.manual_seed(0)
    model = timm.create_model(model_name, pretrained=False).eval().to(device)
    image = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    image = image.to(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    viz = FeatureVisualizer(model, use_cuda=device.type == "cuda")
    maps = viz.get_features(image, layer)
    unit = (maps.shape[2] // 2, maps.shape[3] // 2)
    other = (max(unit[0] - 1, 0), max(unit[1] - 1, 0))
    with exact_float32():
        reference_changes(viz, image, layer, unit, every[:2], PATCH)  # warm-up
        ref_s, expected = timed(
            device, reference_changes, viz, image, layer, unit, [every[k] for k in picks], PATCH
        )
        ref_s *= len(every) / len(picks)
        baseline(viz, image, layer, unit, every[:BASELINE_BATCH])  # warm-up
        base_s, _ = timed(device, baseline, viz, image, layer, unit, every)

    cold_s, result = timed(device, viz.occlusion, image, layer, unit, progress=False)
    warm_s, _ = timed(device, viz.occlusion, image, layer, other, progress=False)
    found = result.deltas.reshape(len(every), -1)[picks]
    difference = float(np.abs(found - expected).max())

    def reduced(precision: str) -> str:
        try:
            seconds, _ = timed(
                device, viz.occlusion, image, layer, unit, precision=precision, progress=False
            )
        except (ValueError, RuntimeError):  # not available on this device
            return "n/a"
        return f"{seconds:.3f}"

    bf16, tf32 = reduced("bfloat16"), reduced("tf32")
    channel = int(np.abs(result.baseline).argmax())
    grad_s, _ = timed(
        device,
        viz.visualize_receptive_field,
        image,
        layer,
        channel,
        unit,
        method="gradient",
        show=False,
        progress=False,
    )
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else 0.0
    return (
        model_name,
        layer,
        f"{ref_s:.2f}",
        f"{base_s:.3f}",
        f"{cold_s:.3f}",
        f"{warm_s:.3f}",
        f"{ref_s / warm_s:.1f}",
        f"{base_s / warm_s:.2f}",
        f"{difference:.1e}",
        "incremental" if result.incremental else "full",
        bf16,
        tf32,
        f"{grad_s:.3f}",
        f"{peak:.2f}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", nargs="*", help="cases as model:layer")
    parser.add_argument("--sample", type=int, default=96, help="reference placements timed")
    args = parser.parse_args()
    device = torch.device(args.device)
    cases = [tuple(c.split(":")) for c in args.only] if args.only else CASES
    name_of = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name_of}, torch {torch.__version__}, patch {PATCH}, stride {STRIDE}, {SIZE} px")
    columns = (
        "model",
        "layer",
        "ref s",
        "base s",
        "cold s",
        "warm s",
        "x ref",
        "x base",
        "max|diff|",
        "path",
        "bf16 s",
        "tf32 s",
        "grad s",
        "peak GB",
    )
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for model_name, layer in cases:
        print("| " + " | ".join(measure(model_name, layer, device, args.sample)) + " |", flush=True)


if __name__ == "__main__":
    main()
