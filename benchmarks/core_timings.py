"""Time the core API for resnet50 at 224 px next to a plain model forward, in one run.

    python benchmarks/core_timings.py [--model resnet50] [--repeats 3] [--skip-occlusion]

Prints the median wall time of each call and its ratio to the plain forward measured here.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import timm
import torch
from PIL import Image

from featviz_widgets import FeatureVisualizer


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-occlusion", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False).eval()
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
    viz = FeatureVisualizer(model)
    batch = viz.prepare(image)
    layers = ["layer1", "layer2", "layer3", "layer4"]

    def uncached(fn):
        def run():
            viz.clear_cache()
            return fn()

        return run

    rows = []
    with torch.no_grad():
        forward = median_time(lambda: model(batch), args.repeats)
    rows.append(("plain model forward", forward))
    rows.append(
        (
            "get_features(layer4)",
            median_time(uncached(lambda: viz.get_features(image, "layer4")), args.repeats),
        )
    )
    rows.append(
        (
            "get_features(layer4), cached",
            median_time(lambda: viz.get_features(image, "layer4"), args.repeats),
        )
    )
    rows.append(
        (
            "get_feature_statistics(layer4)",
            median_time(
                uncached(lambda: viz.get_feature_statistics(image, "layer4")), args.repeats
            ),
        )
    )
    rows.append(
        (
            "compare_layers(layer1-4), no plot",
            median_time(
                uncached(lambda: viz.compare_layers(image, layers, plot=False)), args.repeats
            ),
        )
    )
    rows.append(
        (
            "compare_layers(layer1-4) + figure",
            median_time(
                uncached(lambda: viz.compare_layers(image, layers, show=False)), args.repeats
            ),
        )
    )
    rows.append(
        (
            "plot_feature_maps(layer3, 16)",
            median_time(uncached(lambda: viz.plot_feature_maps(image, "layer3", 16)), args.repeats),
        )
    )
    if not args.skip_occlusion:
        start = time.perf_counter()
        viz.visualize_receptive_field(image, "layer3", channel=0, show=False)
        rows.append(("visualize_receptive_field(layer3)", time.perf_counter() - start))
        rows.append(
            (
                "  same position, another channel",
                median_time(
                    lambda: viz.visualize_receptive_field(image, "layer3", channel=1, show=False),
                    args.repeats,
                ),
            )
        )

    print(f"{args.model} at 224 px, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'call':40s} {'seconds':>9s} {'x forward':>10s}")
    for name, seconds in rows:
        print(f"{name:40s} {seconds:9.3f} {seconds / forward:10.2f}")


if __name__ == "__main__":
    main()
