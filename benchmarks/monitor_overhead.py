"""What `FeatureMonitor` adds to a training step: resnet18 (timm, random weights) trained with
SGD on random data, without a monitor, with one recording every step, and one every 10 steps,
on layer1..layer4.

    python benchmarks/monitor_overhead.py [--size 224] [--batch 32] [--rounds 3] [--steps 10]

Configurations run in interleaved blocks of `--steps` training steps (the order rotates each
round), so the machine's drift hits them alike; each block's time is divided by its steps, and
the ratios are of medians over the rounds, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import timm
import torch
import torch.nn.functional as F

from featviz_widgets import FeatureMonitor

LAYERS = ["layer1", "layer2", "layer3", "layer4"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--histogram", action="store_true", help="monitors record histograms too")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=10).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))

    def block(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (time.perf_counter() - start) / steps

    configs = {
        "no monitor": None,
        "every=1": FeatureMonitor(model, LAYERS, every=1, histogram=args.histogram),
        "every=10": FeatureMonitor(model, LAYERS, every=10, histogram=args.histogram),
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    for monitor in configs.values():  # warm-up; decides the monitors' layouts
        with monitor or contextlib.nullcontext():
            block(1)
    for monitor in configs.values():  # every=10 blocks start on a recorded step
        if monitor is not None:
            monitor.steps_seen = 0
    names = list(configs)
    for round_ in range(args.rounds):
        for name in names[round_ % 3 :] + names[: round_ % 3]:
            with configs[name] or contextlib.nullcontext():
                times[name].append(block(args.steps))
        print(
            f"round {round_ + 1}: " + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()),
            flush=True,
        )
    base = statistics.median(times["no monitor"])
    print(
        f"\nresnet18, batch {args.batch}, {args.size} px, {torch.get_num_threads()} threads, "
        f"{args.rounds} rounds of {args.steps} steps, histogram={args.histogram}"
    )
    for name, values in times.items():
        med = statistics.median(values)
        spread = f"{min(values):.3f}-{max(values):.3f}"
        print(f"{name:>10}: {med:.3f} s/step (range {spread}), ratio {med / base:.4f}")
    recorded = configs["every=1"].history["layer1"]["step"]
    print(f"every=1 recorded {len(recorded)} steps of layer1 (the last: {recorded[-1]})")
    # The hook's own work, timed alone (less exposed to the machine's drift than whole steps).
    monitor, outputs = configs["every=1"], {}
    hooks = [
        model.get_submodule(n).register_forward_hook(
            lambda m, i, o, _n=n: outputs.__setitem__(_n, o.detach())
        )
        for n in LAYERS
    ]
    with torch.no_grad():
        model(x)
    for handle in hooks:
        handle.remove()
    monitor._recording = -1  # the step number the timed records carry
    work = []
    for _ in range(5):
        start = time.perf_counter()
        for name, out in outputs.items():
            monitor._summarise(name, out)
        work.append(time.perf_counter() - start)
    hook = statistics.median(work)
    print(f"hook work per recorded step: {hook * 1e3:.1f} ms = {hook / base:.2%} of a plain step")


if __name__ == "__main__":
    main()
