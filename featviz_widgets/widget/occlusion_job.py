"""The explorer's occlusion job: a sweep for the selected unit (`position`) on the worker,
streamed into the `_occlusion` payload as it refines, cancellable, its result kept."""

from __future__ import annotations

import traitlets as t

from ..core.inputs import ImageInput
from ..occlusion.engine import OcclusionResult
from .job_status import JobStatus
from .protocol import JobState
from .traits import ExplorerTraits
from .views import occlusion_view
from .worker import Job, Throttle

__all__ = ["OcclusionJob"]


class OcclusionJob:
    """Occlusion sweeps of `widget` (state, observer of `position`, `_occlusion` payload)."""

    def __init__(self, widget: ExplorerTraits, status: JobStatus) -> None:
        self.w, self.status = widget, status
        self.result: OcclusionResult | None = None  # the last (possibly partial) sweep
        self.cancelled = False  # the running sweep was cancelled: its map says so
        widget.observe(self._on_position, names=["position"])

    def _on_position(self, change: t.Bunch) -> None:
        if not self.w._is_quiet() and change["new"]:
            self.submit(list(change["new"]))

    def submit(self, position: list[int] | None = None) -> None:
        """Run an occlusion sweep at `position` (None: the current unit, else the centre) now,
        or once the pending view is shown."""
        w = self.w
        with w._lock:
            with w._quiet():
                w.error = ""
            request = w._pending_request()
            if request is not None:
                request.position = position or request.position or []
            elif w._features is None:
                raise ValueError("the layer's features are not ready yet; try again shortly.")
            else:
                self.queue()

    def queue(self) -> None:
        """Queue a sweep of the shown layer at the current unit (under the lock)."""
        w = self.w
        layer, source = w._features_layer, w._shown_source
        position = tuple(w.position) if w.position else None
        self.cancelled = False
        w._worker.submit(
            JobState.OCCLUSION,
            lambda job: self._run(job, source, layer, position),
            self.status.report,
        )

    def stop(self) -> None:
        """Drop a queued or running sweep (a new view replaces what it was for)."""
        self.w._worker.invalidate(JobState.OCCLUSION)

    def forget(self) -> None:
        """A new view is shown: the old sweep's result no longer applies."""
        self.result = None

    def push(self, done: int, total: int) -> None:
        """The `_occlusion` payload of the selected channel (inside `hold_sync()`)."""
        w = self.w
        result = self.result
        if result is None or result.layer_name != w.layer:
            return
        size = w._features.shape[-2:] if w._features is not None else (1, 1)
        view = occlusion_view(result, w.channel, size, done, total, self.cancelled)
        with w.hold_sync():
            w._outbox.set("_occlusion", *view)

    def refresh(self) -> None:
        """The channel changed: show its map of the current sweep (quietly, under the lock)."""
        meta = self.w._occlusion
        if meta:
            self.push(meta.get("done", 0), meta.get("total", 0))

    def cancel(self) -> None:
        """Stop a running sweep (the partial map stays, marked cancelled) and any sweep a
        pending view was to run."""
        w = self.w
        with w._lock:
            request = w._pending_request()
            if request is not None:  # not to be run once the pending view is shown
                request.position = None
            running = w._worker.pending(JobState.OCCLUSION)
            w._worker.invalidate(JobState.OCCLUSION)
            if running:
                self.cancelled = True
                if w._occlusion and not w._occlusion.get("complete"):
                    with w._quiet():
                        w._outbox.update("_occlusion", cancelled=True)

    def _run(
        self, job: Job, source: ImageInput, layer: str, position: tuple[int, int] | None
    ) -> None:
        w = self.w
        self.status.start(job, "occlusion…", 0.0)
        throttle = Throttle()

        def on_progress(done: int, total: int, partial: OcclusionResult) -> None:
            if not throttle.due(done, total):
                return
            with w._lock:
                if job.current:
                    self.result = partial
                    with w._quiet(), w.hold_sync():
                        w.progress = done / total
                        w.status = f"occlusion {done}/{total}"
                        self.push(done, total)

        result = w._viz.occlusion(
            source,
            layer,
            position,
            patch_size=w.patch_size,
            stride=w.stride,
            on_progress=on_progress,
            should_stop=job.stale,
            progress=False,  # the widget shows its own
        )
        with w._lock:
            if job.current:
                self.result = result
                total = int(result.done.size)
                with w._quiet(), w.hold_sync():
                    w.position = list(result.position)
                    self.push(total, total)
