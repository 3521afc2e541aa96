"""`dataset_examples` throughput against plain forwards stopped at the deepest requested layer,
on the same batches, and its peak memory for two collection sizes.

    python benchmarks/dataset_examples.py [--n 128 512] [--px 128] [--model resnet18]
        [--layers layer3 layer4] [--batch-size 64] [--num-workers 0] [--device cpu|cuda]
        [--repeats 3]

For each N, a child process (so that its peak resident memory is its own) writes N PNG images
of `px` pixels to a temporary folder and runs `--repeats` rounds; each round times a plain run
and a `dataset_examples` run back to back, the order swapping every round (so that a slow
spell of a shared machine does not always fall on the same side):

- files: reading, decoding and preprocessing the folder in the same DataLoader batches, then
  a plain forward stopped at the deepest layer (a hook that raises), vs `dataset_examples` on
  the folder (which also keeps the top-k on the device). Peak RSS is read after these.
- tensors: the same, on model-ready tensors already in memory (no decoding): forwards alone
  vs `dataset_examples` on a Dataset of those tensors.
- batch: the per-batch cost alone, 2 x `--repeats` rounds on the first of those batches: a
  plain forward vs what the scan does per batch (the forward with its capturing hooks, then
  the top-k and sums folded into the state on the device), without any data loading.

Prints the median (wall-clock) images/s of each side and, over rounds, the median of the
round's ratio (plain time / `dataset_examples` time: 1.0 = no overhead) with the lowest and
highest, by wall clock and by this process's CPU time. On a machine that other jobs load, the
CPU-time ratio is the steadier one (it does not count the time the process waited for a core);
with `--num-workers` > 0 it misses the workers' decoding, so read the wall ratio then.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

from featviz_widgets import FeatureVisualizer
from featviz_widgets.core.precision import exact_float32
from featviz_widgets.dataset.scan import _fold, _Scan
from featviz_widgets.dataset.sources import Batch, open_source


class _Stop(Exception):
    pass


def write_images(folder: Path, n: int, px: int) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:px, 0:px] / px
    for i in range(n):
        base = np.stack([xx * rng.random(), yy * rng.random(), (1 - xx) * rng.random()], -1)
        pixels = np.clip(base + rng.normal(0, 0.1, base.shape), 0, 1)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / f"img_{i:05d}.png")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock() -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds)."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clock()
    return wall - start[0], cpu - start[1]


def plain(viz: FeatureVisualizer, batches, layer: str) -> tuple[float, float]:
    """(wall, CPU) seconds for forwards stopped at `layer` over `batches` (an iterable of CPU
    tensors)."""
    module = dict(viz.model.named_modules())[layer]

    def stop(*_):
        raise _Stop

    handle = module.register_forward_hook(stop)
    viz.model.eval()
    start = clock()
    try:
        with torch.no_grad():
            for batch in batches:
                with contextlib.suppress(_Stop):
                    viz.model(batch.to(viz.device, non_blocking=True))
        sync(viz.device)
    finally:
        handle.remove()
    return since(start)


def scan(viz: FeatureVisualizer, data, layers: list[str], options: dict) -> tuple[float, float]:
    """(wall, CPU) seconds for one `dataset_examples` over `data`."""
    start = clock()
    viz.dataset_examples(data, layers, **options)
    sync(viz.device)
    return since(start)


def rounds(repeats: int, run_plain, run_scan) -> list[tuple[tuple[float, float], ...]]:
    """((plain wall, CPU), (scan wall, CPU)) of each round; odd rounds run the scan first."""
    times = []
    for r in range(repeats):
        if r % 2:
            ours = run_scan()
            ref = run_plain()
        else:
            ref = run_plain()
            ours = run_scan()
        times.append((ref, ours))
    return times


def child(args: argparse.Namespace) -> None:
    args.n = args.n[0]
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False)
    model.pretrained_cfg = {
        **model.pretrained_cfg,
        "input_size": (3, args.px, args.px),
        "crop_pct": 1.0,
    }
    viz = FeatureVisualizer(model, device=device)
    deepest = args.layers[-1]  # the order given: the last is the deepest
    options = dict(k=9, batch_size=args.batch_size, num_workers=args.num_workers, progress=False)
    result: dict = {"n": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_images(folder, args.n, args.px)
        source = open_source(folder)
        numbers = range(-(-args.n // args.batch_size))
        pin = device.type == "cuda"

        def file_batches():
            for batch in source.batches(
                numbers, args.batch_size, viz.preprocessor, args.num_workers, pin
            ):
                yield batch.images

        viz.dataset_examples([folder / "img_00000.png"], args.layers, **options)  # warm-up
        result["files"] = rounds(
            args.repeats,
            lambda: plain(viz, file_batches(), deepest),
            lambda: scan(viz, folder, args.layers, options),
        )
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tensors = [b.clone() for b in file_batches()]
        data = [t for batch in tensors for t in batch]
        result["tensors"] = rounds(
            args.repeats,
            lambda: plain(viz, tensors, deepest),
            lambda: scan(viz, data, args.layers, options),
        )
        first = tensors[0]
        state = _Scan()

        def fold() -> tuple[float, float]:
            start = clock()
            with exact_float32(), torch.no_grad():
                _fold(viz, args.layers, 9, state, Batch(list(range(len(first))), first), None)
            sync(device)
            return since(start)

        result["batch"] = rounds(2 * args.repeats, lambda: plain(viz, [first], deepest), fold)
        result["batch_n"] = len(first)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--px", type=int, default=128)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--layers", nargs="+", default=["layer3", "layer4"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"{args.model} {' '.join(args.layers)}, {args.px} px, batch {args.batch_size}, "
        f"{args.device}, torch threads {torch.get_num_threads()}"
    )
    print(
        "| N | mode | plain img/s | dataset_examples img/s | wall ratio | range | CPU ratio "
        "| range | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.n:
        command = [sys.executable, __file__, "--child", "--n", str(n)]
        for name in ("px", "model", "batch_size", "num_workers", "device", "repeats"):
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        command += ["--layers", *args.layers]
        out = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        for mode in ("files", "tensors", "batch"):
            times = result[mode]
            images = result["batch_n"] if mode == "batch" else n
            ref = statistics.median(t[0] for t, _ in times)
            ours = statistics.median(u[0] for _, u in times)
            cells = []
            for clock_index in (0, 1):  # wall, CPU
                ratios = [t[clock_index] / u[clock_index] for t, u in times]
                cells += [
                    f"{statistics.median(ratios):.3f}",
                    f"{min(ratios):.2f}-{max(ratios):.2f}",
                ]
            rss = f"{result['peak_rss_mb']:.0f}" if mode == "files" else "-"
            print(
                f"| {n} | {mode} | {images / ref:.1f} | {images / ours:.1f} | {' | '.join(cells)} "
                f"| {rss} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
