"""One background thread for model work, where the latest request of each kind wins."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["Job", "Worker"]


class Job:
    """What a running job knows about itself: whether a newer request replaced it."""

    def __init__(self, worker: Worker, kind: str, token: int) -> None:
        self._worker = worker
        self.kind = kind
        self.token = token

    @property
    def current(self) -> bool:
        """False once a newer job of the same kind was submitted or the kind was invalidated."""
        return self._worker._latest[self.kind] == self.token

    def stale(self) -> bool:
        """`not current`, as a callable for `should_stop=` arguments."""
        return not self.current


class Throttle:
    """Whether a progress update is due: the first and the last always, and between them at
    most one per `interval` seconds (each update is a message to the browser)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.last: float | None = None

    def due(self, done: int, total: int) -> bool:
        now = time.monotonic()
        if self.last is not None and now - self.last < self.interval and done < total:
            return False
        self.last = now
        return True


class Worker:
    """Serialises model work on a single thread (one model, one device: no contention).

    Every job has a kind ("view", "occlusion", ...). Submitting a job makes the earlier jobs
    of that kind stale: queued ones are skipped, running ones can poll `job.current` and
    results of stale ones should be dropped. `lock` (shared with the owner) guards the
    counters, so an owner holding it while checking `job.current` and publishing a result
    cannot interleave with a newer submission.

    Args:
        lock: the owner's re-entrant lock.
        on_busy: called with the new busy flag (under `lock`) when it changes.
    """

    def __init__(self, lock: threading.RLock, on_busy: Callable[[bool], None]) -> None:
        self._lock = lock
        self._on_busy = on_busy
        self._latest: Counter[str] = Counter()
        self._pending = 0
        self._queued: Counter[str] = Counter()
        self._idle = threading.Condition(lock)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="featviz-worker")
        self._closed = False

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def pending(self, kind: str) -> bool:
        """Whether a job of `kind` is queued or running."""
        return self._queued[kind] > 0

    def submit(
        self,
        kind: str,
        run: Callable[[Job], Any],
        on_error: Callable[[Job, BaseException], None],
    ) -> Future:
        """Queue `run(job)`; an exception it raises goes to `on_error(job, exc)` (same thread)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this explorer was closed; create a new one.")
            self._latest[kind] += 1
            job = Job(self, kind, self._latest[kind])
            self._pending += 1
            self._queued[kind] += 1
            if self._pending == 1:
                self._on_busy(True)
        return self._executor.submit(self._run, job, run, on_error)

    def invalidate(self, *kinds: str) -> None:
        """Make every submitted job of `kinds` stale (running ones stop at their next check)."""
        with self._lock:
            for kind in kinds:
                self._latest[kind] += 1

    def _run(
        self,
        job: Job,
        run: Callable[[Job], Any],
        on_error: Callable[[Job, BaseException], None],
    ) -> None:
        try:
            if job.current:
                try:
                    run(job)
                except BaseException as exc:  # reported to the owner, never lost in the thread
                    on_error(job, exc)
        finally:
            with self._lock:
                self._pending -= 1
                self._queued[job.kind] -= 1
                if self._pending == 0:
                    self._on_busy(False)
                    self._idle.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running; False if `timeout` passed first."""
        if threading.current_thread().name.startswith("featviz-worker"):
            raise RuntimeError("`wait()` cannot be called from the explorer's own worker.")
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self) -> None:
        """Stop accepting jobs; queued ones are skipped, a running one stops at its next check."""
        with self._lock:
            self._closed = True
            for kind in list(self._latest):
                self._latest[kind] += 1
        self._executor.shutdown(wait=False)
