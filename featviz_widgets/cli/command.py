"""The `featviz-widgets` command (also `python -m featviz_widgets`).

`featviz-widgets demo` copies the quickstart notebook into a working folder and opens it in
JupyterLab; `featviz-widgets demo --execute` runs that copy headless in a real kernel instead
and checks what the widget produced (this is what CI runs, and what the notebook test uses).
`featviz-widgets microscope` builds the static site of a model's units (`microscope`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .demo_run import (
    EXECUTED,
    NOTEBOOK,
    PACKAGE_DIR,
    DemoError,
    execute_notebook,
    package_importable,
    require_extras,
)
from .microscope import add_microscope_command, run_microscope

__all__ = ["DemoError", "copy_notebook", "main"]

DEFAULT_DIR = "featviz-demo"


def packaged_notebook() -> Path:
    """The quickstart notebook: the wheel's copy, else the repository's `notebooks/` file."""
    for folder in (PACKAGE_DIR, PACKAGE_DIR.parent):
        candidate = folder / "notebooks" / NOTEBOOK
        if candidate.is_file():
            return candidate
    raise DemoError(f"The quickstart notebook is missing from this installation ({PACKAGE_DIR}).")


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
    require_extras("jupyterlab", "ipykernel")
    from jupyterlab.labapp import LabApp

    argv = _lab_argv(notebook, port, no_browser, extra)
    print(f"Starting JupyterLab on {notebook} (Ctrl-C to stop): jupyter lab {' '.join(argv)}")
    sys.stdout.flush()
    with package_importable():
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
    from .. import __version__

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
    add_microscope_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `featviz-widgets` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "microscope":
        return run_microscope(args)
    if args.execute and (args.port is not None or args.no_browser or args.lab_args):
        parser.error(
            "--port, --no-browser and JupyterLab options start JupyterLab; --execute does not"
        )
    try:
        return _demo(args)
    except DemoError as exc:
        print(f"featviz-widgets: {exc}", file=sys.stderr)
        return 1
