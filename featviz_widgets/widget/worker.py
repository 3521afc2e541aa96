"""One background thread for model work, where the latest request of each kind wins."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

__all__ = ["Job", "Worker"]

_log = logging.getLogger(__name__)

_Entry = tuple["Job", Callable[["Job"], Any], Callable[["Job", BaseException], None]]

# How long the interpreter's exit waits for a running job to reach its next check.
EXIT_TIMEOUT = 60.0
_running: weakref.WeakSet[Worker] = weakref.WeakSet()


@atexit.register
def _stop_at_exit() -> None:
    """Stop every worker and wait for its thread before the interpreter exits: a thread still
    inside torch while the interpreter tears down aborts the process ("terminate called
    without an active exception", exit code 134)."""
    workers = list(_running)
    for worker in workers:
        worker.shutdown()
    for worker in workers:
        worker._thread.join(EXIT_TIMEOUT)


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

    Every job has a kind ("view", "compare", a panel's name, ...). Submitting a job makes the
    earlier jobs of that kind stale: queued ones are skipped, running ones can poll
    `job.current` and results of stale ones should be dropped. `lock` (shared with the owner)
    guards the counters, so an owner holding it while checking `job.current` and publishing a
    result cannot interleave with a newer submission. A long job lets quick ones through by calling
    `run_others` between its steps.

    A callback that raises (`on_busy`, a job's `on_error`) does not stop the thread: the
    error goes to `on_fault` (or, without one or if that raises too, to the log), and the
    worker carries on with the next job.

    Args:
        lock: the owner's re-entrant lock.
        on_busy: called with the new busy flag (under `lock`) when it changes.
        on_fault: called with an exception a callback raised (from the thread that called it).
    """

    def __init__(
        self,
        lock: threading.RLock,
        on_busy: Callable[[bool], None],
        on_fault: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._lock = lock
        self._on_busy = on_busy
        self._on_fault = on_fault
        self._latest: Counter[str] = Counter()
        self._pending = 0
        self._queued: Counter[str] = Counter()
        self._queue: deque[_Entry] = deque()
        self._idle = threading.Condition(lock)
        self._wakeup = threading.Condition(lock)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="featviz-worker", daemon=True)
        self._thread.start()
        _running.add(self)

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
    ) -> None:
        """Queue `run(job)`; an exception it raises goes to `on_error(job, exc)` (same thread)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this explorer was closed; create a new one.")
            self._latest[kind] += 1
            job = Job(self, kind, self._latest[kind])
            self._pending += 1
            self._queued[kind] += 1
            if self._pending == 1:
                self._set_busy(True)
            self._queue.append((job, run, on_error))
            self._wakeup.notify()

    def invalidate(self, *kinds: str) -> None:
        """Make every submitted job of `kinds` stale (running ones stop at their next check)."""
        with self._lock:
            for kind in kinds:
                self._latest[kind] += 1

    def run_others(self, running: Job) -> bool:
        """From the worker, inside the long job `running`: run now, in order, every queued job
        of another kind (those queued meanwhile too), so that a long scan does not hold up a
        layer change for minutes. Returns whether any ran."""
        if threading.current_thread() is not self._thread:
            raise RuntimeError("`run_others` is for a job running on the worker itself.")
        ran = False
        while True:
            with self._lock:
                entry = next((e for e in self._queue if e[0].kind != running.kind), None)
                if entry is None:
                    return ran
                self._queue.remove(entry)
            self._run(*entry)
            ran = True

    def _loop(self) -> None:
        while True:
            with self._lock:
                self._wakeup.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return  # closed, and every queued job has been through `_run`
                entry = self._queue.popleft()
            self._run(*entry)
            del entry  # the job's closures hold its owner: let the owner be collected

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
                    try:
                        on_error(job, exc)
                    except BaseException as fault:
                        self._fault(fault)
        finally:
            with self._lock:
                self._pending -= 1
                self._queued[job.kind] -= 1
                if self._pending == 0:
                    try:
                        self._set_busy(False)
                    finally:
                        self._idle.notify_all()

    def _set_busy(self, busy: bool) -> None:
        try:
            self._on_busy(busy)
        except BaseException as fault:
            self._fault(fault)

    def _fault(self, fault: BaseException) -> None:
        """A callback raised `fault`: hand it to `on_fault`, else log it; never raise."""
        try:
            if self._on_fault is not None:
                self._on_fault(fault)
                return
        except BaseException as again:
            _log.error("the worker's on_fault callback failed", exc_info=again)
        _log.error("a callback of the explorer's worker failed", exc_info=fault)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running; False if `timeout` passed first."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("`wait()` cannot be called from the explorer's own worker.")
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self) -> None:
        """Stop accepting jobs; queued ones are skipped, a running one stops at its next check."""
        with self._lock:
            self._closed = True
            for kind in list(self._latest):
                self._latest[kind] += 1
            self._wakeup.notify()
