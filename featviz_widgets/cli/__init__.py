"""The `featviz-widgets` command: `demo` opens the quickstart notebook in JupyterLab, or runs
it headless with `--execute` (`demo_run`)."""

from .command import main

__all__ = ["main"]
