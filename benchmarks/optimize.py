"""`FeatureVisualizer.optimize` vs a straightforward loop of the same recipe, in one run.

    python benchmarks/optimize.py [--model resnet50 --layer layer3] [--steps 128]
                                  [--channels 4] [--ref-steps 16] [--device cpu|cuda]

The straightforward loop is what a first implementation does: one channel at a time, the whole
model run each step (a forward hook reads the layer; nothing stops the forward there), weights
left with `requires_grad=True` (so the backward also computes every weight's gradient), the
transforms as five separate operations (pad, crop, resize, rotate, crop) and a sixth resize to
the model's input size, Python's global RNG. Same parameterisation, learning rate and model.
Its time per step is measured on `--ref-steps` steps and scaled to `--steps` and to the number
of channels (it is linear in both). The engine runs every step: one channel, then `--channels`
channels as one batch, at the model's input size, then as a preview at `size` (no upsampling:
`model_size=128`). Randomly initialised timm models (pretrained=False). `--device cuda` is for a
GPU run (defaults 16 channels, 512 steps).
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import time
from collections.abc import Callable

import timm
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from featviz_widgets import FeatureVisualizer
from featviz_widgets.optimize.imageparam import ANGLES, JITTER_1, JITTER_2, PAD, SCALES, ImageParam
from featviz_widgets.optimize.imageparam import channel_generator as _generator


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_step_seconds(viz: FeatureVisualizer, layer: str, channel: int, steps: int) -> float:
    """Seconds per step of the straightforward loop (after one warm-up step)."""
    model, device = viz.model, viz.device
    model.eval()
    size, out = 128, tuple(viz.preprocessor.input_size[1:])
    mean = torch.tensor(viz.preprocessor.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(viz.preprocessor.std, device=device).view(1, 3, 1, 1)
    image = ImageParam([_generator(0, channel)], size, device=device)
    optimizer = torch.optim.Adam([image.param], lr=0.05)
    captured = {}
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))

    def transform(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, [PAD] * 4, mode="constant", value=0.5)
        dx, dy = random.randrange(JITTER_1), random.randrange(JITTER_1)
        x = x[..., dy : x.shape[-2] - JITTER_1 + dy, dx : x.shape[-1] - JITTER_1 + dx]
        scale = random.choice(SCALES)
        side = round(x.shape[-1] * scale)
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        angle = math.radians(random.choice(ANGLES))
        rotation = torch.tensor(
            [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]],
            device=x.device,
        )[None]
        grid = F.affine_grid(rotation, list(x.shape), align_corners=False)
        x = F.grid_sample(x - 0.5, grid, align_corners=False) + 0.5
        dx, dy = random.randrange(JITTER_2), random.randrange(JITTER_2)
        x = x[..., dy : x.shape[-2] - JITTER_2 + dy, dx : x.shape[-1] - JITTER_2 + dx]
        return F.interpolate(x, size=out, mode="bilinear", align_corners=False)

    try:
        random.seed(0)
        for step in range(steps + 1):
            if step == 1:
                _sync(device)
                start = time.perf_counter()
            optimizer.zero_grad()
            model((transform(image.pixels()) - mean) / std)
            maps = viz.features.normalise(captured["out"], layer, torch.empty(1, 3, *out))
            loss = -maps.maps[0, channel].mean()
            loss.backward()
            optimizer.step()
        _sync(device)
        return (time.perf_counter() - start) / steps
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)


def lucent_runner(
    model: torch.nn.Module, layer: str, channel: int
) -> tuple[Callable[[int], None], torch.device] | None:
    """`run(steps)`: Lucent's `render_vis` with its defaults (the same recipe: 128 px Fourier +
    decorrelated parameter, its standard transforms, Adam 0.05, upsampled to 224), and the
    device it runs on; None where Lucent is not installed. Lucent picks its device at import
    (CUDA when present), so the model goes there."""
    try:
        from lucent.optvis import param, render
        from lucent.optvis.transform import device as lucent_device
    except ImportError:
        return None
    model = copy.deepcopy(model).to(lucent_device).eval()  # Lucent leaves hooks behind

    def run(count: int) -> None:
        render.render_vis(
            model,
            f"{layer.replace('.', '_')}:{channel}",
            param_f=lambda: param.image(128),
            thresholds=(count,),
            show_image=False,
            progress=False,
        )

    return run, torch.device(lucent_device)


def lucent_step_seconds(
    model: torch.nn.Module, layer: str, channel: int, steps: int
) -> float | None:
    """Seconds per step of Lucent's `render_vis` after a 2-step warm-up; None without Lucent."""
    runner = lucent_runner(model, layer, channel)
    if runner is None:
        return None
    run, device = runner
    run(2)
    _sync(device)
    start = time.perf_counter()
    run(steps)
    _sync(device)
    return (time.perf_counter() - start) / steps


class _OpCounter(TorchDispatchMode):
    """Counts the operators that reach the device (views excluded: they launch nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(run: Callable[[int], object], short: int = 20, long: int = 28) -> float:
    """Device operators per step of `run(steps)`: the difference between two run lengths, so
    set-up and the final read-out cancel. On a GPU each is at least one kernel launch, which
    is what bounds a small model's step there."""
    counts = []
    for steps in (short, long):
        with _OpCounter() as counter:
            run(steps)
        counts.append(counter.count)
    return (counts[1] - counts[0]) / (long - short)


def print_op_counts(viz: FeatureVisualizer, model, layer: str, count: int) -> None:
    """Operators per step: the reference, Lucent and the engine (op counts do not depend on
    the image size, so the engine is counted at a small `model_size`)."""
    counts = {
        "reference, 1 channel": ops_per_step(
            lambda n: reference_step_seconds(viz, layer, 0, n), 2, 6
        ),
    }
    runner = lucent_runner(model, layer, 0)
    if runner is not None:
        counts["Lucent render_vis, 1 channel"] = ops_per_step(runner[0], 4, 8)
    many = list(range(count))
    runs = (
        ("engine, 1 channel", [0], {}),
        (f"engine, {count} channels", many, {}),
        (f"engine, {count} channels, redirect_relu=False", many, {"redirect_relu": False}),
    )
    for label, channels, options in runs:
        counts[label] = ops_per_step(
            lambda n, c=channels, o=options: viz.optimize(
                layer, c, steps=n, model_size=64, progress=False, **o
            )
        )
    print("| loop | device operators per step |")
    print("|---|---|")
    for label, ops in counts.items():
        print(f"| {label} | {ops:.0f} |")


def engine_seconds(viz: FeatureVisualizer, layer: str, channels: list[int], **options) -> float:
    _sync(viz.device)
    start = time.perf_counter()
    viz.optimize(layer, channels, progress=False, **options)
    _sync(viz.device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--layer", default="layer3")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--channels", type=int, default=None)
    parser.add_argument("--ref-steps", type=int, default=16)
    parser.add_argument("--no-preview", action="store_true")
    parser.add_argument("--ops-only", action="store_true", help="only count operators per step")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    steps = args.steps or (512 if cuda else 128)
    count = args.channels or (16 if cuda else 4)
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False)
    viz = FeatureVisualizer(model, device=args.device)
    device_name = torch.cuda.get_device_name(viz.device) if cuda else "CPU"
    print(
        f"{args.model} {args.layer}, {device_name}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {steps} steps, input "
        f"{tuple(viz.preprocessor.input_size[1:])}"
    )
    print_op_counts(viz, model, args.layer, count)
    if args.ops_only:
        return
    engine_seconds(viz, args.layer, [0], steps=2)  # warm-up: layouts, allocator, kernels
    per_step = reference_step_seconds(viz, args.layer, 0, args.ref_steps)
    print(f"reference: {per_step:.3f} s/step (measured on {args.ref_steps} steps, 1 channel)")
    lucent = lucent_step_seconds(model, args.layer, 0, args.ref_steps)
    if lucent is None:
        print("Lucent: not installed (pip install torch-lucent), not measured")
    else:
        print(f"Lucent render_vis: {lucent:.3f} s/step (measured on {args.ref_steps} steps)")
    rows = [("1 channel", [0], {}), (f"{count} channels batched", list(range(count)), {})]
    if not args.no_preview:
        rows.append(
            (f"{count} channels, preview model_size=128", list(range(count)), {"model_size": 128})
        )
    print(
        "| run | engine s | s/step/channel | reference s (scaled) | ratio "
        "| Lucent s (scaled) | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, channels, options in rows:
        seconds = engine_seconds(viz, args.layer, channels, steps=steps, **options)
        reference = per_step * steps * len(channels)
        # Lucent runs one channel at a time here, like the reference
        versus_lucent = (
            f"{lucent * steps * len(channels):.1f} | {lucent * steps * len(channels) / seconds:.2f}"
            if lucent is not None
            else "- | -"
        )
        print(
            f"| {label} | {seconds:.1f} | {seconds / steps / len(channels):.3f} | "
            f"{reference:.1f} | {reference / seconds:.2f} | {versus_lucent} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
