"""The explorer in the hosts people use besides JupyterLab and Notebook 7 (Voila, `marimo
run`), each a real server driven in Debian's Chromium: the grid paints, every menu fills, a
layer change repaints."""

from __future__ import annotations

import time

import pytest

from .hosts import HOSTS, route_anywidget_locally, serving

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def grid_painted(page, prefix: str, timeout: float) -> None:
    """Wait until the grid is painted for a state starting with `prefix` (locators pierce the
    shadow DOM marimo renders widgets in)."""
    page.locator(f"canvas.fvz-grid[data-state^='{prefix}']").wait_for(
        state="attached", timeout=timeout
    )


def hold_scripts_back(page, seconds: float) -> None:
    """The page's first script arrives `seconds` after its HTML (the rest queue behind it): the
    explorer has published its first view before the view connects."""
    held = []

    def late(route) -> None:
        if not held:
            held.append(route.request.url)
            time.sleep(seconds)
        route.continue_()

    page.route("http://127.0.0.1:*/**/*.js*", late)


CASES = [(host, False) for host in sorted(HOSTS)] + [("panel", True)]


@pytest.mark.parametrize(
    ("host", "late"), CASES, ids=[f"{h}{'-scripts-8s-late' if late else ''}" for h, late in CASES]
)
def test_the_explorer_paints_and_answers_in(host, late, browser, tmp_path):
    pytest.importorskip(host)
    with serving(host, tmp_path) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1500})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        route_anywidget_locally(page)
        if late:
            hold_scripts_back(page, 8.0)
        try:
            start = time.perf_counter()
            page.goto(url, timeout=90_000)
            grid_painted(page, "layer2|activation|9|", 120_000)
            first = time.perf_counter() - start
            layer = page.locator("select.fvz-layer")
            assert layer.input_value() == "layer2"
            assert page.locator("select.fvz-layer option").count() > 5
            assert page.locator("select.fvz-channel option").count() == 128  # resnet18 layer2
            start = time.perf_counter()
            layer.select_option("layer3")
            grid_painted(page, "layer3|", 60_000)
            repaint = time.perf_counter() - start
            print(f"{host}: first paint {first:.1f} s, layer repaint {repaint:.2f} s")
            assert page.locator("select.fvz-channel option").count() == 256
            assert page.locator(".fvz.fvz-snapshot").count() == 0
            assert errors == []
        finally:
            context.close()
