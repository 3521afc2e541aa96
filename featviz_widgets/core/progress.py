"""Progress bars for calls that can take seconds, shown only once they have."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["PROGRESS_DELAY_S", "progress_bar"]

# A bar appears only once the work has run this long: quick calls print nothing.
PROGRESS_DELAY_S = 2.0


@contextmanager
def progress_bar(
    total: int, description: str, *, enabled: bool = True, unit: str = "it"
) -> Iterator[Callable[[int], None]]:
    """A `tqdm.auto` bar over `total` steps (a widget in notebooks, stderr elsewhere) that
    appears after `PROGRESS_DELAY_S` seconds; yields `advance_to(done)`. The bar is closed
    whatever happens (an error, a cancel, Ctrl-C). Disabled: nothing is created or written."""
    if not enabled:
        yield lambda done: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=description, unit=unit, delay=PROGRESS_DELAY_S)

    def advance_to(done: int) -> None:
        if done > bar.n:
            bar.update(done - bar.n)

    try:
        yield advance_to
    finally:
        bar.close()
