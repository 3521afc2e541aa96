"""The explorer's job status: the worker's busy flag, each job's kind, words and progress,
and a failed job's message, in the traits (`busy`, `_job`, `status`, `progress`, `error`)."""

from __future__ import annotations

from ..core.cancel import Cancelled
from .protocol import JobState
from .traits import ExplorerTraits
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
    """Writes what the worker is doing into `widget`'s traits, quietly, under its lock."""

    def __init__(self, widget: ExplorerTraits) -> None:
        self.w = widget

    def set_busy(self, busy: bool) -> None:
        """The worker's busy flag, in the traits."""
        w = self.w
        with w._quiet():
            w.busy = busy
            if not busy:
                w.progress = 0.0
                w.status = ""
                w._job = JobState.IDLE.value

    def start(self, job: Job, status: str, progress: float = -1.0) -> None:
        """`job` (if still current) is running: its kind (a `JobState` or a panel's name),
        `status` and `progress`."""
        w = self.w
        with w._lock:
            if job.current:
                with w._quiet(), w.hold_sync():
                    w._job = getattr(job.kind, "value", job.kind)
                    w.status = status
                    w.progress = progress

    def report(self, job: Job, exc: BaseException) -> None:
        """A current job's exception, in `error`. A cancelled sweep or optimization is not an
        error (`cancel` has said so)."""
        w = self.w
        with w._lock:
            if job.current and not isinstance(exc, Cancelled):
                with w._quiet():
                    w.error = error_text(exc)

    def fault(self, exc: BaseException) -> None:
        """A worker callback (the busy flag, a job's error report) raised `exc`: say so in
        `error`; the worker carries on."""
        w = self.w
        with w._lock, w._quiet():
            w.error = f"internal error in the explorer's worker: {error_text(exc)}"
