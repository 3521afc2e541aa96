"""The explorer's job status: the worker's busy flag, each job's kind, words and progress,
and a failed job's message, in the traits (`busy`, `_job`, `status`, `progress`, `error`)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..core.cancel import Cancelled
from .protocol import JobState
from .worker import Job

__all__ = ["JobStatus", "error_text"]


def error_text(exc: BaseException) -> str:
    """`exc` in words, with its cause where a RuntimeError wraps one."""
    cause = exc.__cause__ if isinstance(exc, RuntimeError) and exc.__cause__ else None
    text = f"{type(exc).__name__}: {exc}"
    if cause is not None and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text


class JobStatus:
    """Writes what the worker is doing into the explorer's traits under `lock`, through
    `apply(**traits)`, which sets them as the widget's own changes, in one message."""

    def __init__(self, lock: threading.RLock, apply: Callable[..., None]) -> None:
        self.lock, self.apply = lock, apply

    def set_busy(self, busy: bool) -> None:
        """The worker's busy flag, in the traits."""
        with self.lock:
            if busy:
                self.apply(busy=True)
            else:
                self.apply(busy=False, progress=0.0, status="", _job=JobState.IDLE.value)

    def start(self, job: Job, status: str, progress: float = -1.0) -> None:
        """`job` (if still current) is running: its kind (a `JobState` or a panel's name),
        `status` and `progress`."""
        with self.lock:
            if job.current:
                kind = getattr(job.kind, "value", job.kind)
                self.apply(_job=kind, status=status, progress=progress)

    def report(self, job: Job, exc: BaseException) -> None:
        """A current job's exception, in `error`. A cancelled sweep or optimization is not an
        error (`cancel` has said so)."""
        with self.lock:
            if job.current and not isinstance(exc, Cancelled):
                self.apply(error=error_text(exc))

    def fault(self, exc: BaseException) -> None:
        """A worker callback (the busy flag, a job's error report) raised `exc`: say so in
        `error`; the worker carries on."""
        with self.lock:
            self.apply(error=f"internal error in the explorer's worker: {error_text(exc)}")
