"""The explorer's worker: one thread, the latest job of a kind wins, and a long job can let
the jobs of other kinds queued meanwhile run between its steps (`run_others`)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

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


def test_a_raising_error_callback_does_not_kill_the_thread(caplog):
    worker, busy = make_worker()  # no on_fault: the error goes to the log
    ran: list[str] = []

    def fail(job) -> None:
        raise ValueError("the job failed")

    def broken_report(job, exc) -> None:
        raise RuntimeError(f"the report of {exc} failed")

    with caplog.at_level(logging.ERROR, logger="featviz_widgets.widget.worker"):
        worker.submit("view", fail, broken_report)
        assert worker.wait(10)
        worker.submit("view", lambda job: ran.append("after"), lambda job, exc: None)
        assert worker.wait(10), "the worker thread died with the error callback"
    assert ran == ["after"] and worker._thread.is_alive()
    assert "the report of the job failed failed" in caplog.text
    assert busy == [True, False, True, False]
    worker.shutdown()


def test_callback_errors_go_to_on_fault_and_later_jobs_still_run():
    faults: list[BaseException] = []
    calls: list[bool] = []

    def on_busy(flag: bool) -> None:
        calls.append(flag)
        raise RuntimeError(f"busy={flag} observer failed")

    worker = Worker(threading.RLock(), on_busy, faults.append)
    ran: list[str] = []

    def broken_report(job, exc) -> None:
        raise RuntimeError(f"report failed for {exc}")

    worker.submit("view", lambda job: 1 / 0, broken_report)  # on_busy(True) raises here
    assert worker.wait(10)  # on_busy(False) raised on the worker: wait() is still woken
    for kind in ("view", "crops"):
        worker.submit(kind, lambda job, kind=kind: ran.append(kind), lambda job, exc: None)
    assert worker.wait(10) and ran == ["view", "crops"]
    assert worker._thread.is_alive() and not worker.busy
    assert calls == [True, False, True, False]
    assert [str(f) for f in faults] == [
        "busy=True observer failed",
        "report failed for division by zero",
        "busy=False observer failed",
        "busy=True observer failed",
        "busy=False observer failed",
    ]
    worker.shutdown()


def test_a_raising_on_fault_is_logged_and_the_worker_carries_on(caplog):
    def on_fault(fault: BaseException) -> None:
        raise RuntimeError("on_fault failed too")

    worker = Worker(threading.RLock(), lambda flag: None, on_fault)
    ran: list[int] = []
    with caplog.at_level(logging.ERROR, logger="featviz_widgets.widget.worker"):
        worker.submit("view", lambda job: 1 / 0, lambda job, exc: 1 / 0)
        worker.submit("crops", lambda job: ran.append(1), lambda job, exc: None)
        assert worker.wait(10) and ran == [1]
    assert "on_fault callback failed" in caplog.text and "on_fault failed too" in caplog.text
    assert "ZeroDivisionError" in caplog.text
    worker.shutdown()


EXIT_WHILE_BUSY = textwrap.dedent(
    """
    import time, timm
    from featviz_widgets import FeatureExplorer, sample_image
    explorer = FeatureExplorer(timm.create_model("resnet18", pretrained=False), sample_image())
    explorer.wait()
    explorer.run_looks_for()  # a preview of seconds: still running when the script ends
    time.sleep(0.5)
    print("busy at exit:", explorer.busy)
    """
)


@pytest.mark.slow
def test_a_script_that_ends_while_the_explorer_computes_exits_cleanly(tmp_path):
    """The interpreter's exit stops the worker and waits for it: without that, a thread inside
    torch during the teardown aborted the process (exit code 134, "terminate called without an
    active exception") in 2 of 3 runs, so two scripts run here."""
    script = tmp_path / "ends_while_busy.py"
    script.write_text(EXIT_WHILE_BUSY)
    repo = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
    }
    runs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        out, err = run.communicate(timeout=240)
        assert "busy at exit: True" in out, (out, err)
        assert run.returncode == 0 and "terminate called" not in err, (run.returncode, err[-2000:])
