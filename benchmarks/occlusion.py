"""Occlusion engine vs the straightforward computation, for the same unit and image.

    python benchmarks/occlusion.py [--only resnet50:layer3 ...] [--patch 16 --stride 8]

The reference runs one forward of the whole model per patch placement, batch 1 (what the
published implementation does), with the engine's fill, averaging and border coverage so
the maps can be compared. Prints reference time, engine time, their ratio, the largest
absolute difference of the signed maps, and the gradient approximation's time, ratio and
correlation with the exact map. Every number comes from this one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import timm
import torch

from featviz_widgets import FeatureVisualizer
from featviz_widgets._occlusion import patch_starts

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


def reference_map(viz, image, layer, position, patch, stride) -> np.ndarray:
    """(C, H, W) signed maps of every channel of the unit: one full forward per placement."""
    model = viz.model
    captured = {}
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
    h, w = position
    height, width = image.shape[-2:]
    try:
        with torch.no_grad():
            model(image)
            base = viz._normalise(captured["out"], layer, module, image)[0][0, :, h, w]
            total = np.zeros((base.numel(), height, width))
            count = np.zeros((height, width))
            for top in patch_starts(height, patch, stride):
                for left in patch_starts(width, patch, stride):
                    occluded = image.clone()
                    occluded[..., top : top + patch, left : left + patch] = 0
                    model(occluded)
                    unit = viz._normalise(captured["out"], layer, module, image)[0][0, :, h, w]
                    change = (base - unit).double().numpy()
                    total[:, top : top + patch, left : left + patch] += change[:, None, None]
                    count[top : top + patch, left : left + patch] += 1
    finally:
        handle.remove()
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="cases as model:layer or model:layer:size")
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--stride", type=int, default=8)
    args = parser.parse_args()
    cases = CASES
    if args.only:
        wanted = {tuple(c.split(":")) for c in args.only}
        cases = [c for c in CASES if c[:2] in wanted or (c[0], c[1], str(c[2])) in wanted]

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, patch {args.patch}, "
        f"stride {args.stride}"
    )
    header = (
        f"{'model':22s} {'layer':9s} {'px':>4s} {'ref s':>8s} {'engine s':>9s} "
        f"{'ratio':>6s} {'max|diff|':>10s} {'grad s':>7s} {'grad x':>7s} {'grad r':>7s}"
    )
    print(header)
    for name, layer, size in cases:
        torch.manual_seed(0)
        kwargs = {"img_size": size} if name.startswith("vit") else {}
        model = timm.create_model(name, pretrained=False, **kwargs).eval()
        viz = FeatureVisualizer(model)
        image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        maps = viz.get_features(image, layer)
        position = (maps.shape[2] // 2, maps.shape[3] // 2)
        channel = int(maps[0, :, position[0], position[1]].abs().argmax())

        start = time.perf_counter()
        reference = reference_map(viz, image, layer, position, args.patch, args.stride)
        reference_s = time.perf_counter() - start

        start = time.perf_counter()
        result = viz.occlusion(image, layer, position, patch_size=args.patch, stride=args.stride)
        engine_s = time.perf_counter() - start
        difference = max(
            np.abs(result.map(c, signed=True) - reference[c]).max()
            for c in range(result.num_channels)
        )

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
        exact = result.map(channel)
        correlation = np.corrcoef(fast.ravel(), exact.ravel())[0, 1]
        print(
            f"{name:22s} {layer:9s} {size:4d} {reference_s:8.2f} {engine_s:9.2f} "
            f"{reference_s / engine_s:6.2f} {difference:10.2e} {gradient_s:7.3f} "
            f"{reference_s / gradient_s:7.1f} {correlation:7.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
