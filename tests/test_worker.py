"""The explorer's worker: one thread, the latest job of a kind wins, and a long job can let
the jobs of other kinds queued meanwhile run between its steps (`run_others`)."""

from __future__ import annotations

import threading

import pytest

from featviz_widgets.widget.worker import Worker


def make_worker() -> tuple[Worker, list[bool]]:
    busy: list[bool] = []
    return Worker(threading.RLock(), busy.append), busy


def test_a_long_job_runs_other_kinds_between_its_steps_but_not_its_own():
    worker, busy = make_worker()
    order: list[str] = []
    started, queued = threading.Event(), threading.Event()

    def long(job) -> None:
        order.append("long: start")
        started.set()
        assert queued.wait(10)
        assert worker.run_others(job) is True
        order.append("long: end")

    worker.submit("scan", long, lambda job, exc: order.append(repr(exc)))
    assert started.wait(10)
    worker.submit("view", lambda job: order.append("view"), lambda job, exc: None)
    worker.submit("scan", lambda job: order.append("next scan"), lambda job, exc: None)
    worker.submit("crops", lambda job: order.append("crops"), lambda job, exc: None)
    queued.set()
    assert worker.wait(10)
    # the view and crops queued meanwhile ran inside the long job, in order; the newer scan
    # (which made the long one stale) after it
    assert order == ["long: start", "view", "crops", "long: end", "next scan"]
    assert busy == [True, False] and not worker.busy
    worker.shutdown()


def test_run_others_returns_false_with_nothing_queued_and_refuses_other_threads():
    worker, _ = make_worker()
    seen: list[bool] = []
    worker.submit("scan", lambda job: seen.append(worker.run_others(job)), lambda j, e: None)
    assert worker.wait(10) and seen == [False]
    with pytest.raises(RuntimeError, match="worker itself"):
        worker.run_others(None)  # type: ignore[arg-type]
    worker.shutdown()


def test_shutdown_skips_queued_jobs_and_stops_the_thread():
    worker, _ = make_worker()
    release, ran = threading.Event(), []
    worker.submit("a", lambda job: release.wait(10), lambda j, e: None)
    worker.submit("b", lambda job: ran.append("b"), lambda j, e: None)
    worker.shutdown()
    release.set()
    assert worker.wait(10) and ran == []
    worker._thread.join(10)
    assert not worker._thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit("c", lambda job: None, lambda j, e: None)
