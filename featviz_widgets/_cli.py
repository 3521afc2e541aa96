"""The `featviz-widgets` command (also `python -m featviz_widgets`).

`featviz-widgets demo` copies the quickstart notebook into a working folder and opens it in
JupyterLab; `featviz-widgets demo --execute` runs that copy headless in a real kernel instead
and checks what the widget produced (this is what CI runs, and what the notebook test uses).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
import io
import os
import shutil
import site
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoError", "DemoRun", "copy_notebook", "execute_notebook", "main"]

NOTEBOOK = "01-quickstart.ipynb"
EXECUTED = "01-quickstart.executed.ipynb"
DEFAULT_DIR = "featviz-demo"
# Files the quickstart notebook saves with `explorer.save_png` (checked by --execute).
SAVED_PNGS = ("featviz-grid.png", "featviz-channel.png")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
INSTALL_DEMO = "python3 -m pip install 'featviz-widgets[demo]'  (in a clone: -e '.[demo]')"
_PACKAGE = Path(__file__).resolve().parent


class DemoError(Exception):
    """A problem the user can fix; `main` prints it and exits with status 1."""


def packaged_notebook() -> Path:
    """The quickstart notebook: the wheel's copy, else the repository's `notebooks/` file."""
    for candidate in (_PACKAGE / "notebooks" / NOTEBOOK, _PACKAGE.parent / "notebooks" / NOTEBOOK):
        if candidate.is_file():
            return candidate
    raise DemoError(f"The quickstart notebook is missing from this installation ({_PACKAGE}).")


def copy_notebook(folder: str | os.PathLike, force: bool = False) -> tuple[Path, str]:
    """Copy the quickstart notebook into `folder` (created if needed).

    A copy that differs from the packaged notebook (the user edited or saved it) is kept
    unless `force`. Returns the copy's path and what happened: "created", "unchanged",
    "kept" or "replaced".
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DemoError(f"{folder} exists and is not a folder; pick another with --dir.")
    folder.mkdir(parents=True, exist_ok=True)
    source, target = packaged_notebook(), folder / NOTEBOOK
    if not target.exists():
        action = "created"
    elif target.read_bytes() == source.read_bytes():
        return target, "unchanged"
    elif not force:
        return target, "kept"
    else:
        action = "replaced"
    shutil.copyfile(source, target)
    return target, action


def _require(*modules: str) -> None:
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
def _package_importable() -> Iterator[None]:
    """Let kernels started from here import this same featviz_widgets.

    When the package is not installed in a site-packages folder (a checkout run with
    PYTHONPATH, or `python -m` from the repository), a kernel started in the demo folder would
    not find it; its parent folder goes first on the PYTHONPATH for the duration.
    """
    parent = str(_PACKAGE.parent)
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
    _require("nbclient", "nbformat", "ipykernel")
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
        with _package_importable():
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


def _execute(notebook: Path, timeout: float) -> int:
    print(f"Running {notebook} in a fresh kernel (no browser)...", flush=True)
    run = execute_notebook(notebook, timeout=timeout)
    print(f"  {run.code_cells} code cells in {run.seconds:.1f} s")
    for fact in run.facts:
        print(f"  {fact}")
    print(f"  executed copy, with outputs: {notebook.with_name(EXECUTED)}")
    if run.ok:
        print("demo OK: the widget rendered its views.")
        return 0
    print("demo FAILED:", file=sys.stderr)
    for problem in run.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def _lab_argv(
    notebook: Path, port: int | None, no_browser: bool, extra: Sequence[str]
) -> list[str]:
    argv = [str(notebook)]  # JupyterLab serves the notebook's folder and opens it
    if port is not None:
        argv.append(f"--port={port}")
    if no_browser:
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        argv.append("--allow-root")  # containers often run as root; Jupyter refuses otherwise
    return [*argv, *extra]


def _lab(notebook: Path, port: int | None, no_browser: bool, extra: Sequence[str]) -> int:
    _require("jupyterlab", "ipykernel")
    from jupyterlab.labapp import LabApp

    argv = _lab_argv(notebook, port, no_browser, extra)
    print(f"Starting JupyterLab on {notebook} (Ctrl-C to stop): jupyter lab {' '.join(argv)}")
    sys.stdout.flush()
    with _package_importable():
        LabApp.launch_instance(argv=argv)
    return 0


def _demo(args: argparse.Namespace) -> int:
    notebook, action = copy_notebook(args.dir, force=args.force)
    messages = {
        "created": f"Copied the quickstart notebook to {notebook}",
        "replaced": f"Replaced {notebook} with the packaged quickstart notebook (--force)",
        "unchanged": f"Using {notebook} (same as the packaged notebook)",
        "kept": f"Keeping your edited {notebook}; --force replaces it with the packaged one",
    }
    print(messages[action], flush=True)
    if args.execute:
        return _execute(notebook, args.timeout)
    return _lab(notebook, args.port, args.no_browser, args.lab_args)


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="featviz-widgets",
        description="featviz_widgets: see what a vision network computes, in a notebook.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="open the quickstart notebook in JupyterLab (or run it headless: --execute)",
        description=(
            "Copy the quickstart notebook (FeatureExplorer on a bundled photograph, a model "
            "that needs no download) into a folder and open it in JupyterLab. An edited copy "
            "is kept unless --force."
        ),
    )
    demo.add_argument(
        "--dir",
        type=Path,
        default=Path(DEFAULT_DIR),
        help=f"working folder for the notebook and the files it saves (default: ./{DEFAULT_DIR})",
    )
    demo.add_argument("--force", action="store_true", help="replace an edited copy of the notebook")
    demo.add_argument("--port", type=int, help="JupyterLab's port (default: Jupyter's, 8888)")
    demo.add_argument(
        "--no-browser", action="store_true", help="start JupyterLab without opening a browser"
    )
    demo.add_argument(
        "--execute",
        action="store_true",
        help="no JupyterLab: run the notebook in a kernel, check the widget's views, exit 0/1",
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="with --execute: seconds each cell may take (default: 600)",
    )
    demo.add_argument(
        "lab_args",
        nargs="*",
        metavar="-- JUPYTERLAB_OPTION",
        help="further options for JupyterLab, after --, e.g. -- --ip=0.0.0.0",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `featviz-widgets` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.execute and (args.port is not None or args.no_browser or args.lab_args):
        parser.error(
            "--port, --no-browser and JupyterLab options start JupyterLab; --execute does not"
        )
    try:
        return _demo(args)
    except DemoError as exc:
        print(f"featviz-widgets: {exc}", file=sys.stderr)
        return 1
