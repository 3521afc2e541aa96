"""Occlusion engine vs the straightforward computation, for the same unit and image.

    python benchmarks/occlusion.py [--only resnet50:layer3 ...] [--sample 48 | --full-reference]

The reference runs one forward of the whole model per patch placement, batch 1 (what the
published implementation does). Its time is measured on `--sample` placements spread evenly
over the image and scaled to all placements (`--full-reference` runs every one; a full
reference for vit_base or 448 px takes the better part of an hour here). "max|diff|" is the
largest difference, over every channel, between the engine's and the reference's change of
the unit at the measured placements. Also printed: the engine's path (incremental or full
forwards), the time to switch channel after a sweep, the gradient approximation's time,
ratio and correlation with the exact map, and the process's peak resident memory so far.
`--only` takes any model:layer[:size]; `--engine-only` skips the reference (1024 px images).
Every number comes from this one run.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import timm
import torch

from featviz_widgets import FeatureVisualizer
from featviz_widgets.occlusion.engine import patch_starts

CASES = [
    ("resnet18", "layer1", 224),
    ("resnet18", "layer2", 224),
    ("resnet18", "layer3", 224),
    ("resnet18", "layer4", 224),
    ("resnet50", "layer1", 224),
    ("resnet50", "layer2", 224),
    ("resnet50", "layer3", 224),
    ("resnet50", "layer4", 224),
    ("convnext_tiny", "stages.2", 224),
    ("vit_base_patch16_224", "blocks.6", 224),
    ("resnet50", "layer2", 448),
]


def reference_changes(viz, image, layer, position, placements, patch) -> np.ndarray:
    """(len(placements), C) change of the unit per placement: one full forward each."""
    model = viz.model
    captured = {}
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
    h, w = position

    def unit() -> torch.Tensor:
        return viz.features.normalise(captured["out"], layer, image).maps[0, :, h, w].double()

    try:
        with torch.no_grad():
            model(image)
            base = unit()
            changes = []
            for top, left in placements:
                occluded = image.clone()
                occluded[..., top : top + patch, left : left + patch] = 0
                model(occluded)
                changes.append((base - unit()).cpu().numpy())
    finally:
        handle.remove()
    return np.array(changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="cases as model:layer or model:layer:size")
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--sample", type=int, default=48, help="reference placements timed")
    parser.add_argument("--full-reference", action="store_true", help="time every placement")
    parser.add_argument(
        "--engine-only", action="store_true", help="skip the reference (large images)"
    )
    args = parser.parse_args()
    cases = CASES
    if args.only:
        cases = [(*c.split(":")[:2], int((c.split(":") + ["224"])[2])) for c in args.only]

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, patch {args.patch}, "
        f"stride {args.stride}"
    )
    print(
        f"{'model':22s} {'layer':9s} {'px':>4s} {'places':>6s} {'ref s':>8s} {'engine s':>9s} "
        f"{'ratio':>6s} {'max|diff|':>9s} {'path':>11s} {'switch ms':>9s} {'grad s':>7s} "
        f"{'grad x':>7s} {'grad r':>6s} {'peak GB':>7s}"
    )
    for name, layer, size in cases:
        torch.manual_seed(0)
        kwargs = {"img_size": size} if name.startswith("vit") else {}
        model = timm.create_model(name, pretrained=False, **kwargs).eval()
        viz = FeatureVisualizer(model)
        image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        maps = viz.get_features(image, layer)
        position = (maps.shape[2] // 2, maps.shape[3] // 2)
        channel = int(maps[0, :, position[0], position[1]].abs().argmax())

        starts = patch_starts(size, args.patch, args.stride)
        every = [(i, j) for i in range(len(starts)) for j in range(len(starts))]
        count = 0 if args.engine_only else args.sample if not args.full_reference else len(every)
        sampled = [
            every[k] for k in np.unique(np.linspace(0, len(every) - 1, count).round().astype(int))
        ]
        start = time.perf_counter()
        reference = reference_changes(
            viz, image, layer, position, [(starts[i], starts[j]) for i, j in sampled], args.patch
        )
        elapsed = time.perf_counter() - start
        reference_s = elapsed / len(sampled) * len(every) if sampled else float("nan")

        start = time.perf_counter()
        result = viz.occlusion(image, layer, position, patch_size=args.patch, stride=args.stride)
        engine_s = time.perf_counter() - start
        engine = np.array([result.deltas[index] for index in sampled])
        difference = np.abs(engine - reference).max() if sampled else float("nan")
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6

        other = (channel + 1) % result.num_channels
        switches = []
        for _ in range(5):
            start = time.perf_counter()
            result.map(other)
            switches.append(time.perf_counter() - start)

        start = time.perf_counter()
        fast = viz.visualize_receptive_field(
            image,
            layer,
            channel,
            position,
            patch_size=args.patch,
            stride=args.stride,
            method="gradient",
            show=False,
        )
        gradient_s = time.perf_counter() - start
        correlation = np.corrcoef(fast.ravel(), result.map(channel).ravel())[0, 1]
        path = "incremental" if result.incremental else "full"
        print(
            f"{name:22s} {layer:9s} {size:4d} {len(every):6d} {reference_s:8.2f} "
            f"{engine_s:9.2f} {reference_s / engine_s:6.2f} {difference:9.1e} {path:>11s} "
            f"{statistics.median(switches) * 1000:9.1f} {gradient_s:7.3f} "
            f"{reference_s / gradient_s:7.1f} {correlation:6.3f} {peak_gb:7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
