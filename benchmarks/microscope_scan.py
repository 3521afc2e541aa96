"""`build_microscope` on resnet18 (random weights) at 224 px over 32 real photos: the dataset
scan's images/s against plain forwards over the same files in the same run, the class
contributions' and crops' time apart, and the site's size per layer.

    python benchmarks/microscope_scan.py [--images 32] [--layers layer1,layer2,layer3,layer4]

The plain forward reads, decodes and preprocesses the same files with the same batch size (the
model's own transform) and runs the whole model: the scan's extra cost is its hooks, its top-k
and statistics, and its stop after the deepest layer (which makes it cheaper). Each is timed
best of `--repeats` after a warm-up; the ratio is what to read on a shared machine.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch
from matplotlib import cbook
from PIL import Image

from featviz_widgets import FeatureVisualizer, build_microscope
from featviz_widgets.evidence.gradcam import channel_contributions
from featviz_widgets.microscope.output import file_stems
from featviz_widgets.microscope.units import class_contributions, write_crops


def photos(folder: Path, count: int) -> list[Path]:
    """`count` distinct photos: crops and flips of skimage's and matplotlib's samples."""
    from skimage import data

    bases = [Image.fromarray(getattr(data, n)()) for n in ("astronaut", "chelsea", "coffee")]
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        bases.append(Image.open(file).convert("RGB"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        base = bases[i % len(bases)]
        w, h = base.size
        size = int(min(w, h) * rng.uniform(0.5, 1.0))
        x, y = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
        image = base.crop((x, y, x + size, y + size))
        if i % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        paths.append(folder / f"photo_{i:03d}.jpg")
        image.save(paths[-1], quality=92)
    return paths


def best_of(functions: list, repeats: int) -> list[float]:
    """Each function's best time over `repeats` rounds, the functions interleaved in each
    round (a shared machine's load then weighs on all of them alike)."""
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, found in zip(functions, times):
            start = time.perf_counter()
            function()
            found.append(time.perf_counter() - start)
    return [min(found) for found in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--layers", default="layer1,layer2,layer3,layer4")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    layers = args.layers.split(",")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False)
    viz = FeatureVisualizer(model, device="cpu")
    work = Path(tempfile.mkdtemp(prefix="microscope-bench-"))
    try:
        (work / "photos").mkdir()
        files = photos(work / "photos", args.images)
        batches = [
            [str(p) for p in files[i : i + args.batch_size]]
            for i in range(0, len(files), args.batch_size)
        ]

        def plain() -> None:
            with torch.no_grad():
                for batch in batches:
                    model.eval()(viz.prepare(batch))

        def scan():
            return viz.dataset_examples(
                work / "photos", layers, k=9, batch_size=args.batch_size, progress=False
            )

        tensors = [viz.prepare(batch) for batch in batches]

        def forward_only() -> None:
            with torch.no_grad():
                for batch in tensors:
                    model.eval()(batch)

        plain(), scan()  # warm-up
        plain_s, scan_s, forward_s = best_of([plain, scan, forward_only], args.repeats)
        examples = scan()
        start = time.perf_counter()
        class_contributions(
            viz,
            examples,
            layers,
            max_classes=5,
            batch_size=args.batch_size,
            class_names=None,
            progress=False,
        )
        classes_s = time.perf_counter() - start
        # One batch of the class contributions (6 images x 5 classes): every layer from one
        # forward and backward, against one `class_evidence` per layer.
        batch = viz.prepare(batches[0][:6]).repeat(5, 1, 1, 1)
        targets = [c for c in range(5) for _ in range(6)]

        def together() -> None:
            channel_contributions(viz.features, batch, layers, targets)

        def per_layer() -> None:
            for layer in layers:
                viz.class_evidence(batch, layer, targets)

        together_s, per_layer_s = best_of([together, per_layer], args.repeats)
        start = time.perf_counter()
        for layer in layers:
            write_crops(
                viz,
                examples,
                layer,
                work / "crops" / layer,
                work / "images",
                extension="jpg",
                batch_size=args.batch_size,
                progress=False,
            )
        crops_s = time.perf_counter() - start
        start = time.perf_counter()
        build_microscope(viz, work / "photos", work / "site", layers=layers, progress=False)
        build_s = time.perf_counter() - start

        n = len(files)
        threads = torch.get_num_threads()
        print(f"resnet18 (random weights), {n} photos at 224 px, CPU, {threads} threads")
        rows = [
            ("plain: read + preprocess + whole model", plain_s),
            ("plain: whole model on ready tensors", forward_s),
            (f"dataset scan of {','.join(layers)}", scan_s),
        ]
        for name, seconds in rows:
            print(f"{name:42s} {seconds:6.2f} s  {n / seconds:6.1f} img/s")
        print(f"scan images/s / plain images/s (both reading the files): {plain_s / scan_s:.2f}")
        print(f"class contributions (5 classes, {len(layers)} layers): {classes_s:6.2f} s")
        print(
            f"  one batch of 30: all layers at once {together_s:.2f} s, one class_evidence per "
            f"layer {per_layer_s:.2f} s ({per_layer_s / together_s:.1f}x)"
        )
        print(f"crops (all layers): {crops_s:6.2f} s")
        print(f"build_microscope, whole: {build_s:6.2f} s")
        site = work / "site"
        stems = file_stems(layers)
        print("site size per layer (data script + its crops; shared whole images apart):")
        for layer in layers:
            data = (site / "data" / f"{stems[layer]}.js").stat().st_size
            crops = sum(p.stat().st_size for p in (site / "crops" / stems[layer]).iterdir())
            count = len(list((site / "crops" / stems[layer]).iterdir()))
            print(f"  {layer:8s} data {data / 1e3:7.1f} kB, {count:5d} crops {crops / 1e6:6.2f} MB")
        shared = site / "images"
        size = sum(p.stat().st_size for p in shared.iterdir()) if shared.exists() else 0
        print(f"  images/ (whole images, shared): {size / 1e6:.2f} MB")
        total = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
        print(f"  whole site: {total / 1e6:.2f} MB (scan cache included)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
