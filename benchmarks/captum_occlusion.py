"""Occlusion: the engine vs Captum's `Occlusion`, for the same unit and image, in one run.

    python benchmarks/captum_occlusion.py [--only resnet50:layer3 ...] [--per-eval 32]

Captum (`pip install captum`) attributes one scalar per input: here the unit at the centre of
the layer's map, in its strongest channel. A Captum user writes `forward_func` one of two ways,
both timed: the whole model with a forward hook reading the layer ("whole model"), or a forward
stopped at the layer ("stopped", the engine's own layer function: Captum at its best). Window
16 px over every colour channel, stride 8, baseline 0 (the mean colour after normalisation, the
engine's fill), `--per-eval` placements a batch. Captum gives one channel per run, the engine
every channel in one sweep; the ratios compare one run with one sweep. The engine is timed on a
fresh `FeatureVisualizer` (its plan built and checked inside the time). "max rel diff": the
largest difference between Captum's attribution and the engine's `map(channel, signed=True)`
(the same average over the windows covering each pixel), over the map's largest magnitude.
Randomly initialised timm models (pretrained=False), a 224 px real photo.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import timm
import torch
from captum.attr import Occlusion
from matplotlib import cbook
from PIL import Image

from featviz_widgets import FeatureVisualizer

CASES = [("resnet50", "layer3"), ("resnet50", "layer4"), ("convnext_tiny", "stages.2")]


def unit_of(viz: FeatureVisualizer, layer: str, image: torch.Tensor) -> tuple[int, int, int]:
    """(channel, h, w): the map's centre, in the channel that is strongest there."""
    maps = viz.features.layer_fn(layer)(image)
    h, w = maps.shape[-2] // 2, maps.shape[-1] // 2
    return int(maps[0, :, h, w].argmax()), h, w


def whole_model(viz: FeatureVisualizer, layer: str, unit: tuple[int, int, int]):
    """`forward_func`: the whole model runs; a hook reads the layer."""
    channel, h, w = unit
    module = dict(viz.model.named_modules())[layer]
    captured = {}
    module.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))

    def forward(x: torch.Tensor) -> torch.Tensor:
        viz.model(x)
        return viz.features.normalise(captured["out"], layer, x).maps[:, channel, h, w]

    return forward


def stopped(viz: FeatureVisualizer, layer: str, unit: tuple[int, int, int]):
    """`forward_func`: the forward stops at the layer."""
    channel, h, w = unit
    layer_fn = viz.features.layer_fn(layer)
    return lambda x: layer_fn(x)[:, channel, h, w]


def captum_map(forward, image: torch.Tensor, per_eval: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    with torch.no_grad():
        attribution = Occlusion(forward).attribute(
            image,
            sliding_window_shapes=(3, 16, 16),
            strides=(3, 8, 8),
            baselines=0.0,
            perturbations_per_eval=per_eval,
        )
    return time.perf_counter() - start, attribution[0, 0].double().cpu().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="cases as model:layer")
    parser.add_argument("--per-eval", type=int, default=32, help="Captum's perturbations_per_eval")
    args = parser.parse_args()
    cases = [tuple(c.split(":")) for c in args.only] if args.only else CASES
    with cbook.get_sample_data("grace_hopper.jpg") as photo:
        picture = Image.open(photo).convert("RGB")
    print(
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"perturbations_per_eval={args.per_eval}, window 16 stride 8"
    )
    print(
        "| model | layer | placements | Captum, whole model s | Captum, stopped s "
        "| engine s | vs whole | vs stopped | max rel diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, layer in cases:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        viz = FeatureVisualizer(model, device="cpu")
        image = viz.prepare(picture)
        unit = unit_of(viz, layer, image)
        whole_s, whole_map = captum_map(whole_model(viz, layer, unit), image, args.per_eval)
        stopped_s, stopped_map = captum_map(stopped(viz, layer, unit), image, args.per_eval)
        fresh = FeatureVisualizer(model, device="cpu")
        start = time.perf_counter()
        result = fresh.occlusion(picture, layer, unit[1:], progress=False)
        engine_s = time.perf_counter() - start
        engine_map = result.map(unit[0], signed=True).astype(np.float64)
        scale = max(np.abs(engine_map).max(), 1e-12)
        diff = max(np.abs(m - engine_map).max() for m in (whole_map, stopped_map)) / scale
        print(
            f"| {name} | {layer} | {result.deltas.shape[0] * result.deltas.shape[1]} "
            f"| {whole_s:.1f} | {stopped_s:.1f} | {engine_s:.1f} | {whole_s / engine_s:.1f} "
            f"| {stopped_s / engine_s:.1f} | {diff:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
