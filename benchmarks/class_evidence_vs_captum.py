"""Class evidence: `FeatureVisualizer.class_evidence` vs Captum's `LayerGradCam`, same model,
layer, input and target, in one run.

    python benchmarks/class_evidence_vs_captum.py [--only resnet50:layer3 ...] [--runs 7]
                                                  [--batch 1]

Captum (`pip install captum`): `LayerGradCam(model, layer).attribute(x, target,
relu_attributions=True)`, the Grad-CAM alone. Ours: `viz.class_evidence(x, layer, target)`,
which also gives the top-5 classes with names and every channel's contribution. Both get the
same model-ready tensor (a 224 px real photo, repeated `--batch` times) and the same target
(the top-1 class). The two are timed alternately, `--runs` times each after one warm-up call
of each (ours decides the layer's layout on its first call per input size: "first s"), and the
medians are compared: "Captum/ours" > 1 means ours is faster ("fastest runs' ratio": the same
for each side's fastest run, steadier on a loaded machine). "max rel diff": the largest
difference between the two Grad-CAMs over Captum's largest value. Randomly initialised timm
models (pretrained=False, ResNets with zero_init_last=False), eval mode, CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
from captum.attr import LayerGradCam
from matplotlib import cbook
from PIL import Image

from featviz_widgets import FeatureVisualizer

CASES = [
    ("resnet18", "layer4"),
    ("resnet50", "layer3"),
    ("resnet50", "layer4"),
    ("convnext_tiny", "stages.2"),
]


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(name: str, layer: str, picture: Image.Image, runs: int, batch_size: int) -> str:
    """One table row: Captum's and our medians, their ratio, our first call, the difference."""
    torch.manual_seed(0)
    extra = {"zero_init_last": False} if name.startswith("resnet") else {}
    model = timm.create_model(name, pretrained=False, **extra).eval()
    viz = FeatureVisualizer(model, device="cpu")
    batch = viz.prepare([picture] * batch_size)
    first_s, evidence = timed(lambda: viz.class_evidence(batch, layer))
    target = evidence.targets
    gradcam = LayerGradCam(model, dict(model.named_modules())[layer])

    def captum():
        return gradcam.attribute(batch, target, relu_attributions=True)

    def ours():
        return viz.class_evidence(batch, layer, target)

    captum()  # warm-up
    captum_times, our_times = [], []
    for _ in range(runs):
        seconds, reference = timed(captum)
        captum_times.append(seconds)
        seconds, evidence = timed(ours)
        our_times.append(seconds)
    expected = reference[:, 0].detach()
    diff = float((evidence.cam - expected).abs().max() / expected.abs().max().clamp(min=1e-12))
    captum_s, ours_s = statistics.median(captum_times), statistics.median(our_times)
    fastest = min(captum_times) / min(our_times)
    return (
        f"| {name} | {layer} | {captum_s:.3f} | {ours_s:.3f} | {captum_s / ours_s:.2f} "
        f"| {fastest:.2f} | {first_s:.3f} | {diff:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="cases as model:layer")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each, after a warm-up")
    parser.add_argument("--batch", type=int, default=1, help="images per call")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [tuple(c.split(":")) for c in args.only] if args.only else CASES
    with cbook.get_sample_data("grace_hopper.jpg") as photo:
        picture = Image.open(photo).convert("RGB")
    print(
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch "
        f"{args.batch}, median of {args.runs} alternating runs"
    )
    print(
        "| model | layer | Captum s | ours s | Captum/ours | fastest runs' ratio | ours first s "
        "| max rel diff |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, layer in cases:
        print(measure(name, layer, picture, args.runs, args.batch), flush=True)


if __name__ == "__main__":
    main()
