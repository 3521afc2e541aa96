"""The dataset examples in a real Notebook 7 (Chromium, a real kernel and comm): the scan's
thumbnails are painted, and clicking one makes that image the explorer's image in Python."""

from __future__ import annotations

import pytest

from .jupyter import app_ready, canvas_state, pixels, run_all, wait_canvas
from .test_widget_browser import SETUP, wait_state, write_notebook

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stop_kernels")]

DATASET = """
import numpy as np
from PIL import Image

rng = np.random.default_rng(0)
images = [Image.fromarray(rng.integers(0, 256, (90, 90, 3), dtype=np.uint8)) for _ in range(6)]
explorer.scan_dataset(images, ["layer2"], k=4)
"""


def test_notebook7_examples_paint_and_a_click_shows_the_image(jupyter_server, page):
    server = jupyter_server
    write_notebook(server, "examples_nb7.ipynb", SETUP + DATASET)
    page.goto(server.page_url("/notebooks/examples_nb7.ipynb?reset"))
    app_ready(page)
    run_all(page)
    widget = ".jp-NotebookPanel .fvz"
    wait_canvas(page, widget, "examples", "(s) => /^layer2\\|\\d+\\|4$/.test(s)", 120_000)
    hash_ = pixels(page, widget, "examples")
    assert hash_ and not hash_.endswith(":0")  # painted, not blank
    canvas = page.locator(f"{widget} canvas.fvz-examples")
    indices = [int(i) for i in canvas.get_attribute("data-indices").split(",")]
    tile = canvas.bounding_box()["width"] / 2 - 4  # 4 examples: 2 columns
    canvas.click(position={"x": tile + 4 + tile / 2, "y": 15 + tile / 2})  # the second
    wait_state(
        server,
        lambda s: s["image"] == f"dataset image {indices[1]}",
        timeout=60,
        what="the clicked example as the image",
    )
    # the explorer recomputes for the new image; the examples stay (no rescan)
    wait_canvas(page, widget, "grid", "(s) => s.startsWith('layer2|')", 60_000)
    assert canvas_state(page, widget, "examples").endswith("|4")
