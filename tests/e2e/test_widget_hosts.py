"""The explorer in the hosts people use besides JupyterLab and Notebook 7 (Voila, `marimo
run`), each a real server driven in Debian's Chromium: the grid paints, every menu fills, a
layer change repaints."""

from __future__ import annotations

import time

import pytest

from featviz_widgets.widget.protocol import INLINE_PAYLOAD_BYTES

from .hosts import EXPLORER, HOSTS, route_anywidget_locally, serving
from .test_widget_browser import CONTRAST
from .test_widget_exports import COLOURS

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


# A grid past INLINE_PAYLOAD_BYTES: resnet18's layer1 on a 640 px input, 64 maps of 160×160.
LARGE = EXPLORER.replace("input_size=(3, 112, 112)", "input_size=(3, 640, 640)").replace(
    'layer="layer2", num_features=9', 'layer="layer1", num_features=64'
)


def test_marimo_dark_theme_with_a_grid_sent_in_chunks(browser, tmp_path):
    """`marimo run` with the user setting `display.theme = "dark"`: the view (in marimo's shadow
    root) sees the dark page, every text has contrast >= 4.5, and a grid too large for one
    message (its bytes in chunks) paints, with nothing held back by marimo's output limit."""
    pytest.importorskip("marimo")
    assert LARGE != EXPLORER and INLINE_PAYLOAD_BYTES < 64 * 160 * 160
    with serving("marimo", tmp_path, explorer=LARGE, theme="dark") as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1500})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            start = time.perf_counter()
            page.goto(url, timeout=90_000)
            grid_painted(page, "layer1|activation|64|", 180_000)
            first = time.perf_counter() - start
            print(f"marimo dark, 64 maps of 160×160: first paint {first:.1f} s")
            view = page.locator(".fvz")
            assert page.evaluate("document.body.classList.contains('dark')")  # marimo's mark
            assert view.evaluate("(root) => root.getRootNode() instanceof ShadowRoot")
            assert "fvz-dark" in view.get_attribute("class").split()
            grid = page.locator("canvas.fvz-grid")
            assert grid.evaluate(COLOURS) > 100
            deadline = time.monotonic() + 5  # canvases may take a moment to repaint
            while True:
                low = [c for c in view.evaluate(CONTRAST) if not c["ratio"] >= 4.5]
                if not low or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert not low, f"marimo dark: text below 4.5:1 contrast: {low}"
            assert page.get_by_text("Your output is too large").count() == 0
            assert page.locator(".fvz.fvz-snapshot").count() == 0
            assert errors == []
        finally:
            context.close()
