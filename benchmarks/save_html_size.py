"""How large `FeatureExplorer.save_html` makes a page, and how long it takes.

resnet50 (random weights: neither size nor time depends on them) at 224 px on a real photo,
every layer of its default menu; the page is written to a temporary folder and opened from
file:// in Debian's Chromium with the network blocked (time to the first painted grid, and to
the grid of another layer, layer3, after picking it in the menu). The reference,
timed in the same run, is one plain forward of the model per saved layer (what computing each
layer's maps costs at least), so the ratio column says what saving adds to that.

    python benchmarks/save_html_size.py [--model resnet50] [--size 224]
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import timm  # noqa: E402
import torch  # noqa: E402
from matplotlib import cbook  # noqa: E402
from PIL import Image  # noqa: E402

from featviz_widgets.widget.explorer import FeatureExplorer  # noqa: E402

SAVED = re.compile(r'<script type="application/json" id="fvz-saved">(.*?)</script>', re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.manual_seed(0)
    overlay = dict(input_size=(3, args.size, args.size), crop_pct=1.0)
    model = timm.create_model(args.model, pretrained=False, pretrained_cfg_overlay=overlay)
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        photo = Image.open(file).convert("RGB")
    explorer = FeatureExplorer(model, photo, device="cpu")
    explorer.wait()
    layers = explorer.layers

    batch = explorer.visualizer.prepare(photo)
    with torch.inference_mode():
        model.eval()(batch)  # warm-up
        start = time.perf_counter()
        for _ in layers:
            model(batch)
        forwards = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = explorer.save_html(Path(folder) / "explorer.html")
        took = time.perf_counter() - start
        size = path.stat().st_size
        saved = json.loads(SAVED.search(path.read_text(encoding="utf-8")).group(1))
        first_paint, switch = open_in_browser(path)
    explorer.close()
    maps = sum(len(base64.b64decode(r["data"])) for r in saved["layers"].values())
    print(f"{args.model} at {args.size} px, {len(layers)} layers: {', '.join(layers)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        "| file MB | maps MB (uint8) | save_html s | one forward per layer s | ratio "
        "| page: first grid s | page: layer3's grid ms |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {size / 1e6:.1f} | {maps / 1e6:.1f} | {took:.2f} | {forwards:.2f} "
        f"| {took / forwards:.1f} | {first_paint:.2f} | {switch:.0f} |"
    )


def open_in_browser(path: Path) -> tuple[float, float]:
    """Seconds from navigation to the first painted grid; ms from picking layer3 to its grid."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.jupyter import launch_browser

    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        context = browser.new_context(viewport={"width": 1200, "height": 1400})
        context.route(re.compile(r"^https?://"), lambda route: route.abort())
        page = context.new_page()
        start = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_selector("#fvz-host[data-ready='1'] canvas.fvz-grid[data-state]")
        first = time.perf_counter() - start
        switch = page.evaluate(
            """() => new Promise((resolve) => {
              const select = document.querySelector("select.fvz-layer");
              const grid = document.querySelector("canvas.fvz-grid");
              const start = performance.now();
              const watch = new MutationObserver(() => {
                if (!grid.dataset.state.startsWith("layer3|")) return;
                watch.disconnect();
                resolve(Number(grid.dataset.paintedAt) - start);
              });
              watch.observe(grid, { attributes: true });
              select.value = "layer3";
              select.dispatchEvent(new Event("change"));
            })"""
        )
        browser.close()
    return first, switch


if __name__ == "__main__":
    main()
