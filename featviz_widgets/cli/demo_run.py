"""`featviz-widgets demo --execute`: run the quickstart notebook headless in a real kernel and
check what the widget produced (no cell raised, the widget view with a non-blank static PNG,
the PNG files the notebook saves). CI runs it, and so does the notebook test.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import os
import site
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoError", "DemoRun", "execute_notebook"]

NOTEBOOK = "01-quickstart.ipynb"
EXECUTED = "01-quickstart.executed.ipynb"
# Files the quickstart notebook saves with `explorer.save_png` (checked by --execute).
SAVED_PNGS = ("featviz-grid.png", "featviz-channel.png")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
INSTALL_DEMO = "python3 -m pip install 'featviz-widgets[demo]'  (in a clone: -e '.[demo]')"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


class DemoError(Exception):
    """A problem the user can fix; `main` prints it and exits with status 1."""


def require_extras(*modules: str) -> None:
    """DemoError naming whichever of `modules` cannot be imported, and the install command."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise DemoError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed; the demo "
            f"needs the 'demo' extra: {INSTALL_DEMO}"
        )


@contextlib.contextmanager
def package_importable() -> Iterator[None]:
    """Let kernels started from here import this same featviz_widgets.

    When the package is not installed in a site-packages folder (a checkout run with
    PYTHONPATH, or `python -m` from the repository), a kernel started in the demo folder would
    not find it; its parent folder goes first on the PYTHONPATH for the duration.
    """
    parent = str(PACKAGE_DIR.parent)
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.USER_SITE or ""]}
    current = os.environ.get("PYTHONPATH")
    entries = [str(Path(p).resolve()) for p in (current or "").split(os.pathsep) if p]
    if parent in installed or parent in entries:
        yield
        return
    os.environ["PYTHONPATH"] = os.pathsep.join([parent, *entries])
    try:
        yield
    finally:
        if current is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = current


@dataclass
class DemoRun:
    """What `execute_notebook` found: `problems` is empty when the demo worked."""

    notebook: Any  # the executed nbformat.NotebookNode
    seconds: float
    code_cells: int
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _png_problem(data: bytes, what: str) -> str | None:
    """None when `data` is a PNG of more than one colour, else what is wrong with it."""
    from PIL import Image

    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return f"{what} is not a PNG"
    try:
        with Image.open(io.BytesIO(data)) as image:
            low, high = zip(*image.convert("RGB").getextrema())
    except (OSError, ValueError) as exc:
        return f"{what} cannot be decoded ({exc})"
    if low == high:
        return f"{what} is a blank image of one colour"
    return None


def _check_outputs(run: DemoRun, folder: Path, since: float) -> None:
    """Errors, the widget view with its static PNG, and the saved PNG files."""
    number = 0
    views: list[dict] = []
    for cell in run.notebook.cells:
        if cell.cell_type != "code":
            continue
        number += 1
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                run.problems.append(
                    f"code cell {number} raised {output.ename}: {output.evalue}".strip()
                )
            elif WIDGET_MIME in output.get("data", {}):
                views.append(output["data"])
    if not views:
        run.problems.append(f"no cell displayed a widget (no {WIDGET_MIME} output)")
    saved_state = run.notebook.metadata.get("widgets", {})
    saved_state = saved_state.get("application/vnd.jupyter.widget-state+json", {})
    for view in views[:1]:
        if view[WIDGET_MIME].get("model_id") not in saved_state.get("state", {}):
            run.problems.append("the widget's model state was not recorded (its comm never opened)")
        if not view.get("image/png"):
            run.problems.append("the widget's output has no image/png static fallback")
            continue
        png = base64.b64decode(view["image/png"])
        problem = _png_problem(png, "the widget's image/png fallback")
        if problem:
            run.problems.append(problem)
        else:
            run.facts.append(f"widget view with a static image/png fallback ({len(png)} bytes)")
    saved = []
    for name in SAVED_PNGS:
        path = folder / name
        if not path.is_file():
            run.problems.append(f"{name} was not saved")
        elif path.stat().st_mtime < since - 1:
            run.problems.append(f"{name} is left from an earlier run; this run did not save it")
        elif path.stat().st_size < 1000:
            run.problems.append(f"{name} is only {path.stat().st_size} bytes")
        elif problem := _png_problem(path.read_bytes(), name):
            run.problems.append(problem)
        else:
            saved.append(f"{name} ({path.stat().st_size // 1024} kB)")
    if saved:
        run.facts.append("saved " + ", ".join(saved))


def execute_notebook(path: str | os.PathLike, timeout: float = 600.0) -> DemoRun:
    """Run the notebook at `path` top to bottom in a fresh kernel, in its own folder, and check it.

    The check: no cell raised, a cell displayed the widget with an `image/png` fallback, and
    the notebook saved non-blank `SAVED_PNGS` during this run. The executed notebook (outputs
    and widget state) is written next to it as `EXECUTED`. `timeout` applies to each cell.
    """
    require_extras("nbclient", "nbformat", "ipykernel")
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path).resolve()
    try:
        notebook = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not a notebook
        raise DemoError(f"cannot read {path}: {exc} (--force restores the demo notebook)") from exc
    code_cells = sum(cell.cell_type == "code" for cell in notebook.cells)
    run = DemoRun(notebook, 0.0, code_cells)
    client = nbclient.NotebookClient(
        notebook, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
    )
    started = time.time()
    try:
        with package_importable():
            client.execute()
    except CellExecutionError:
        pass  # the error output is in the notebook; _check_outputs reports it
    except CellTimeoutError:
        run.problems.append(f"a cell ran longer than {timeout:g} s (--timeout)")
    except DeadKernelError as exc:
        run.problems.append(f"the kernel died: {exc}")
    except NoSuchKernel as exc:
        raise DemoError(f"no Jupyter kernel named {exc}; {INSTALL_DEMO}") from exc
    run.seconds = time.time() - started
    _check_outputs(run, path.parent, started)
    nbformat.write(notebook, path.with_name(EXECUTED))
    return run
