"""The quickstart notebook runs top to bottom, offline, in a real kernel, through the same
command CI and the README use: `featviz-widgets demo --execute` (here `python -m`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from featviz_widgets.cli.demo_run import EXECUTED, NOTEBOOK, SAVED_PNGS, WIDGET_MIME

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "notebooks" / NOTEBOOK


def test_quickstart_uses_the_bundled_photo_and_no_download():
    nb = nbformat.read(QUICKSTART, as_version=4)
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    prose = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    assert "sample_image()" in code and "pretrained=False" in code
    assert "pretrained=True" not in code
    assert "`pretrained=True` downloads the weights from\nthe Hugging Face Hub" in prose
    assert not [cell for cell in nb.cells if cell.get("outputs")]  # stored without outputs


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_execute_runs_the_quickstart_notebook(tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    folder = tmp_path / "demo"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "featviz_widgets", "demo", "--execute", "--dir", str(folder)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo OK" in done.stdout
    assert (folder / NOTEBOOK).read_bytes() == QUICKSTART.read_bytes()
    # The command's own checks passed; these re-read what it left, independently.
    nb = nbformat.read(folder / EXECUTED, as_version=4)
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    widget = next(out for out in outputs if WIDGET_MIME in out.get("data", {}))
    assert widget["data"]["image/png"]  # the static fallback for GitHub / nbviewer / HTML
    texts = [
        str(out.get("data", {}).get("text/plain", "")) + out.get("text", "") for out in outputs
    ]
    assert any("file not found" in text for text in texts)  # the bad image reached `error`
    assert (folder / SAVED_PNGS[0]).stat().st_size > 1000
    assert (folder / SAVED_PNGS[1]).is_file()
    assert not list(tmp_path.glob("*.png"))  # everything went into --dir, not the cwd
