"""What deciding layouts costs: the first forward at an input size (every module observed by
the layout tracker) against a later forward at that size (only the requested layer hooked).

    python benchmarks/layout_cost.py [--models resnet50 convnext_tiny ...] [--repeats 5]

Prints medians and their ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

from featviz_widgets import FeatureVisualizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["resnet50", "convnext_tiny", "swin_tiny_patch4_window7_224"]
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name in args.models:
        model = timm.create_model(name, pretrained=False)
        layer = [info.name for info in FeatureVisualizer(model).list_layers()][-3]
        first, later = [], []
        for repeat in range(args.repeats):
            viz = FeatureVisualizer(model)  # knows no layout yet
            image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(repeat))
            start = time.perf_counter()
            viz.get_features(image, layer)
            first.append(time.perf_counter() - start)
            start = time.perf_counter()
            viz.get_features(image + 1, layer)  # another image: no cache hit, layouts known
            later.append(time.perf_counter() - start)
        a, b = statistics.median(first), statistics.median(later)
        print(f"{name} {layer}: deciding {a * 1e3:.1f} ms, later {b * 1e3:.1f} ms, x{a / b:.2f}")


if __name__ == "__main__":
    main()
