"""The quickstart notebook runs top to bottom, offline, in a real kernel (as CI executes it)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.mark.timeout(300)
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    widget = next(out for out in outputs if WIDGET_MIME in out.get("data", {}))
    assert widget["data"]["image/png"]  # the static fallback for GitHub / nbviewer / HTML
    texts = [
        str(out.get("data", {}).get("text/plain", "")) + out.get("text", "") for out in outputs
    ]
    assert any("file not found" in text for text in texts)  # the bad image reached `error`
    assert (tmp_path / "featviz-grid.png").stat().st_size > 1000
    assert (tmp_path / "featviz-channel.png").is_file()
