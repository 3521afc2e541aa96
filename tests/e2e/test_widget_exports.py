"""What an HTML export of a notebook with the explorer shows where no kernel runs, opened from
file:// in Chromium with the network cut (as the README says):

- exported as executed (`nbclient` and `nbconvert --execute` save the widget state): the cell
  holds the widget view, which needs a widget manager from the internet: offline it is blank;
- exported with `--ClearMetadataPreprocessor.enabled=True` (the widget state left out): the
  static PNG of the view shows.
"""

from __future__ import annotations

import os
import re

import pytest

from .hosts import EXPLORER
from .jupyter import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def executed():
    """The explorer's notebook, executed in a real kernel (its widget state saved)."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(EXPLORER), nbformat.v4.new_code_cell("explorer")]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    paths = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = paths  # the kernel imports this checkout
    try:
        nbclient.NotebookClient(notebook, timeout=180).execute()
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    assert "widgets" in notebook.metadata  # nbclient saved the widget state
    return notebook


def export(notebook, tmp_path, clear: bool):
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.ClearMetadataPreprocessor.enabled = clear
    html, _ = HTMLExporter(config=config).from_notebook_node(notebook)
    path = tmp_path / f"explorer{'-clear' if clear else ''}.html"
    path.write_text(html)
    return path


def open_offline(browser, path):
    context = browser.new_context(viewport={"width": 1200, "height": 1200})
    page = context.new_page()
    page.route(re.compile(r"^https?://"), lambda route: route.abort())  # no network: no CDN
    page.goto(path.as_uri())
    page.wait_for_timeout(1000)
    return context, page


# the pictures in the output cells, by their natural size
PICTURES = """() => [...document.querySelectorAll(".jp-OutputArea-output img")]
  .map((img) => [img.naturalWidth, img.naturalHeight])"""


def test_an_export_without_widget_state_shows_the_picture_offline(executed, browser, tmp_path):
    context, page = open_offline(browser, export(executed, tmp_path, clear=True))
    try:
        pictures = page.evaluate(PICTURES)
        assert len(pictures) == 1 and pictures[0][0] > 400 and pictures[0][1] > 100
    finally:
        context.close()


def test_an_export_with_widget_state_is_blank_offline(executed, browser, tmp_path):
    context, page = open_offline(browser, export(executed, tmp_path, clear=False))
    try:
        assert page.evaluate(PICTURES) == []
        views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]')
        assert views.count() == 1 and page.locator(".fvz").count() == 0
    finally:
        context.close()
