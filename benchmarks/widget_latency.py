"""How fast FeatureExplorer answers in a real browser: control -> repainted canvas.

Starts a sandboxed JupyterLab, opens a notebook with `FeatureExplorer(resnet50)` at 224 px
(random weights: timing does not depend on them) in Debian's Chromium, and measures inside the
page, from the input event to the `performance.now()` the widget stamps on the canvas it
repaints. Budgets (issue 3): sort / channel / tile click < 100 ms, layer change < 1 s, first
occlusion result within a few seconds.

    python benchmarks/widget_latency.py [--model resnet50] [--repeats 5] [--stride 8]

With `--against REF` it compares this checkout with commit REF (checked out in a temporary git
worktree) instead: `--repeats` alternating runs of each, every run a fresh JupyterLab whose
kernel imports the one checkout or the other, measuring the first paint (run-all to the first
grid) and an uncached layer change; it prints the medians and their ratio, after / before.

    python benchmarks/widget_latency.py --against 393eccd
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.e2e.jupyter import (  # noqa: E402
    app_ready,
    launch_browser,
    run_all,
    running_server,
    wait_canvas,
    write_notebook,
)

SETUP = """\
import timm, torch
from featviz_widgets.widget.explorer import FeatureExplorer
torch.manual_seed(0)
model = timm.create_model({model!r}, pretrained=False, zero_init_last=False)
explorer = FeatureExplorer(model, stride={stride})
"""

# Perform one action on the widget; resolve with the ms from the event to the repaint that
# matches `expect` (and, when `then` is given, to the later repaint matching `then`).
MEASURE = """async ({action, target, value, canvas, expect, source, then, thenSource, timeout}) => {
  const c = document.querySelector(canvas);
  const before = Number(c.dataset.paints || 0);
  const el = document.querySelector(target);
  const t0 = performance.now();
  if (action === "select") {
    el.value = String(value);
    el.dispatchEvent(new Event("change", { bubbles: true }));
  } else {
    const r = el.getBoundingClientRect();
    const init = { bubbles: true, clientX: r.left + value[0] * r.width,
                   clientY: r.top + value[1] * r.height };
    el.dispatchEvent(new MouseEvent("click", init));
  }
  const matches = (re, src) => Number(c.dataset.paints) > before
    && new RegExp(re).test(c.dataset.state || "") && (!src || c.dataset.source === src);
  const until = async (re, src) => {
    while (!matches(re, src)) {
      if (performance.now() - t0 > timeout) throw new Error(`timeout: ${c.dataset.state}`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    return Number(c.dataset.paintedAt) - t0;
  };
  const first = await until(expect, source);
  const second = then || thenSource ? await until(then || expect, thenSource) : null;
  return [first, second];
}"""

WIDGET = ".jp-NotebookPanel:not(.lm-mod-hidden) .fvz"


def measure(
    page,
    action: str,
    target: str,
    value,
    canvas: str,
    expect: str,
    *,
    source: str | None = None,
    then: str | None = None,
    then_source: str | None = None,
    timeout: int = 120_000,
) -> list[float | None]:
    return page.evaluate(
        MEASURE,
        {
            "action": action,
            "target": f"{WIDGET} {target}",
            "value": value,
            "canvas": f"{WIDGET} canvas.fvz-{canvas}",
            "expect": expect,
            "source": source,
            "then": then,
            "thenSource": then_source,
            "timeout": timeout,
        },
    )


def settle(page) -> None:
    """Wait until the kernel has no work left (busy flag off) before the next measurement."""
    page.wait_for_function(
        f"() => document.querySelector({WIDGET!r}).dataset.busy === '0'", timeout=300_000
    )
    time.sleep(0.2)


def attr(page, canvas: str, name: str) -> str:
    return page.locator(f"{WIDGET} canvas.fvz-{canvas}").get_attribute(name) or ""


@contextlib.contextmanager
def explorer_page(code: Path, model: str, stride: int) -> Iterator[tuple[Any, float]]:
    """A fresh JupyterLab whose kernel imports featviz_widgets from `code`, the benchmark's
    notebook run in Chromium: yields the page, once the kernel is idle, and the ms from
    run-all to the first grid."""
    setup = SETUP.format(model=model, stride=stride)
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), code) as server:
        write_notebook(server.root / "bench.ipynb", setup, "explorer")
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1400, "height": 1700})
            page.goto(server.page_url("/lab/tree/bench.ipynb?reset"))
            app_ready(page)
            start = time.perf_counter()
            run_all(page)
            wait_canvas(page, WIDGET, "grid", "(s) => s.length > 0", 300_000)
            first = (time.perf_counter() - start) * 1000
            settle(page)
            try:
                yield page, first
            finally:
                browser.close()


def run(model: str, repeats: int, stride: int) -> list[tuple[str, list[float], str]]:
    rows: list[tuple[str, list[float], str]] = []

    def add(name: str, times: list[float], budget: str) -> None:
        rows.append((name, times, budget))
        print(f"  {name}: {', '.join(f'{t:.0f}' for t in times)} ms", flush=True)

    with explorer_page(REPO, model, stride) as (page, elapsed):
        add("first grid after run-all (kernel start, imports, model)", [elapsed], "-")
        layer = attr(page, "grid", "data-state").split("|")[0]

        sort, maps = [], []
        for i in range(repeats):
            mode = ["variance", "random", "activation"][i % 3]
            expect = f"^{layer}\\|{mode}\\|"
            sort.append(measure(page, "select", "select.fvz-sort", mode, "grid", expect)[0])
            settle(page)
            n = [9, 25, 16][i % 3]
            maps.append(measure(page, "select", "input.fvz-num", n, "grid", f"\\|{n}\\|")[0])
            settle(page)
        add("sort mode -> grid repainted", sort, "< 100")
        add("number of maps -> grid repainted", maps, "< 100")

        tile, tile_python = [], []
        for i in range(repeats):
            channels = attr(page, "grid", "data-channels").split(",")
            cols = math.ceil(math.sqrt(len(channels)))
            k = (i + 1) % len(channels)
            at = ((k % cols + 0.5) / cols, (k // cols + 0.6) / math.ceil(len(channels) / cols))
            expect = f"^{layer}\\|{channels[k]}$"
            first, second = measure(
                page, "click", "canvas.fvz-grid", at, "unit", expect, then_source="python"
            )
            tile.append(first)
            tile_python.append(second)
            settle(page)
        add("tile click -> channel view repainted (from the tile)", tile, "< 100")
        add("tile click -> channel view from the kernel's payload", tile_python, "< 100")

        chosen = []
        options = page.locator(f"{WIDGET} select.fvz-channel option")
        for i in range(repeats):
            channel = options.nth(40 + i).get_attribute("value")  # not in the grid
            expect = f"^{layer}\\|{channel}$"
            chosen.append(measure(page, "select", "select.fvz-channel", channel, "unit", expect)[0])
            settle(page)
        add("channel selector -> channel view (kernel round trip)", chosen, "< 100")

        for label, names in (
            ("cached", ["layer2", "layer1", "layer4"]),
            ("uncached", ["layer3.2", "layer2.1", "layer1.0", "layer3.4", "layer2.3"]),
        ):
            times = []
            for i in range(repeats):
                name = names[i % len(names)]
                expect = "^" + name.replace(".", "[.]") + "\\|"
                times.append(measure(page, "select", "select.fvz-layer", name, "grid", expect)[0])
                settle(page)
            add(f"layer change ({label} features) -> grid repainted", times, "< 1000")

        measure(page, "select", "select.fvz-layer", layer, "grid", f"^{layer}\\|")
        settle(page)
        first, done = measure(
            page,
            "click",
            "canvas.fvz-unit",
            (0.5, 0.5),
            "occlusion",
            "\\|[1-9][0-9]*/[0-9]+$",
            then="\\|([0-9]+)/\\1$",
            timeout=900_000,
        )
        total = attr(page, "occlusion", "data-state").rsplit("|", 1)[1]
        add(f"occlusion {layer}, stride {stride} -> first partial map", [first], "a few 1000")
        add(f"occlusion {layer}, stride {stride} -> complete ({total})", [done], "-")
    return rows


def first_paint_and_layer_change(code: Path, model: str, stride: int) -> tuple[float, float]:
    """One fresh JupyterLab importing featviz_widgets from `code`: ms from run-all to the first
    grid, and from a layer change (features not cached) to its grid."""
    with explorer_page(code, model, stride) as (page, first):
        expect = "^layer3[.]2\\|"
        layer, _ = measure(page, "select", "select.fvz-layer", "layer3.2", "grid", expect)
    return first, layer


def against(ref: str, repeats: int, model: str, stride: int) -> None:
    """Before (commit `ref`) and after (this checkout), alternating; medians and ratios."""
    times: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        git = ["git", "-C", str(REPO), "worktree"]
        subprocess.run([*git, "add", "--detach", str(base), ref], check=True, capture_output=True)
        try:
            for i in range(repeats):
                order = [("before", base), ("after", REPO)]
                for label, code in order if i % 2 == 0 else order[::-1]:
                    times[label].append(first_paint_and_layer_change(code, model, stride))
                    first, layer = times[label][-1]
                    print(f"  run {i + 1} {label}: first paint {first:.0f}, layer {layer:.0f} ms")
        finally:
            subprocess.run([*git, "remove", "--force", str(base)], check=True)
    print(f"\nFeatureExplorer, {model} at 224 px, JupyterLab + Chromium, CPU: {ref} -> this tree")
    print(f"{'median ms':<34} {'before':>8} {'after':>8} {'after/before':>13}")
    for column, name in enumerate(("first paint (run-all -> grid)", "layer change -> grid")):
        before = statistics.median(run[column] for run in times["before"])
        after = statistics.median(run[column] for run in times["after"])
        print(f"{name:<34} {before:>8.0f} {after:>8.0f} {after / before:>12.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--against", metavar="REF", help="compare with this commit instead")
    args = parser.parse_args()
    if args.against:
        against(args.against, args.repeats, args.model, args.stride)
        return
    rows = run(args.model, args.repeats, args.stride)
    print(f"\nFeatureExplorer latency, {args.model} at 224 px, JupyterLab + Chromium, CPU")
    print(f"{'measurement':<58} {'median ms':>10} {'max ms':>9} {'n':>3}  budget ms")
    for name, times, budget in rows:
        median, worst = statistics.median(times), max(times)
        print(f"{name:<58} {median:>10.0f} {worst:>9.0f} {len(times):>3}  {budget}")


if __name__ == "__main__":
    main()
