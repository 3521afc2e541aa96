"""The explorer's model work: view, comparison and occlusion jobs on its `Worker`, their
progress and errors in its traits, and their results published as view payloads; and
`OcclusionAPI`, `FeatureExplorer`'s occlusion methods (a mixin)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._cancel import Cancelled
from ._inputs import ImageInput
from ._looks_for import LooksForJobs
from ._occlusion import OcclusionResult
from ._protocol import JobState, json_safe
from ._view_jobs import ViewJobs
from ._views import occlusion_view
from ._worker import Job, Throttle

if TYPE_CHECKING:
    from .widget import FeatureExplorer

__all__ = ["ExplorerJobs", "OcclusionAPI"]


class OcclusionAPI:
    """`FeatureExplorer`'s occlusion methods (a mixin; the work is `ExplorerJobs`')."""

    _jobs: ExplorerJobs
    _occ_result: OcclusionResult | None
    channel: int  # ExplorerTraits' traits
    position: list[int]
    error: str

    @property
    def occlusion_result(self) -> OcclusionResult | None:
        """The last (possibly partial) occlusion sweep, for every channel of its unit."""
        return self._occ_result

    def occlusion_map(self, channel: int | None = None, signed: bool = False) -> np.ndarray:
        """The occlusion map (H_in, W_in) of `channel` (default: the selected one)."""
        if self._occ_result is None:
            raise ValueError("no occlusion has run yet; set `position` or call `run_occlusion()`.")
        return self._occ_result.map(self.channel if channel is None else channel, signed=signed)

    def run_occlusion(self, position: Sequence[int] | None = None) -> None:
        """Start an occlusion sweep for the unit at `position` (default: the current one, or
        the centre of the map) in the background; results stream into the widget."""
        if position is not None and list(position) != self.position:
            self.position = list(position)  # checked; the observer starts the sweep
        else:  # an equal value notifies nobody: start it here
            self._jobs.submit_occlusion(None if position is None else list(position))

    def _occlude_now(self) -> None:
        try:
            self._jobs.submit_occlusion()
        except ValueError as exc:
            self.error = str(exc)


class ExplorerJobs(ViewJobs, LooksForJobs):
    """Submits and runs the jobs of `widget` (a `FeatureExplorer`), whose state (results,
    traits) they update under its lock, quietly: its observers do not react to them."""

    def __init__(self, widget: FeatureExplorer) -> None:
        self.w = widget
        self.request = None
        self.occlusion_cancelled = False
        self.looks_cache = OrderedDict()

    # ------------------------------------------------------------------ state and errors
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
        w = self.w
        with w._lock:
            if job.current:
                with w._quiet(), w.hold_sync():
                    w._job = JobState(job.kind).value
                    w.status = status
                    w.progress = progress

    def report(self, job: Job, exc: BaseException) -> None:
        """A job's exception, in `error`; a failed view puts the controls back to what is
        shown. A cancelled sweep or optimization is not an error (`cancel` has said so)."""
        w = self.w
        with w._lock:
            if not job.current or isinstance(exc, Cancelled):
                return
            with w._quiet(), w.hold_sync():
                if job.kind == JobState.VIEW:
                    self.request = None
                    self.looks_resume = False
                    w._viewed.set()
                    if w._features_layer and w.layer != w._features_layer:
                        w.layer = w._features_layer
                    if w.device != w._viz.device.type:
                        w.device = w._viz.device.type
                    channel = w._unit_meta.get("channel", w.channel)
                    if w.channel != channel:
                        w.channel = channel
                    w.position = list(w._occlusion_meta.get("position", []))
                cause = exc.__cause__ if isinstance(exc, RuntimeError) and exc.__cause__ else None
                text = f"{type(exc).__name__}: {exc}"
                if cause is not None and str(cause) not in text:
                    text += f" ({type(cause).__name__}: {cause})"
                w.error = text

    # ------------------------------------------------------------------ comparison
    def submit_compare(self, names: list[str], source: ImageInput | None = None) -> None:
        w = self.w
        source = w._source if source is None else source

        def run(job: Job) -> None:
            self.start(job, "comparing layers…")
            stats = w._viz.compare_layers(source, names, plot=False)
            with w._lock:
                if job.current:
                    with w._quiet(), w.hold_sync():
                        w.compare = list(names)
                        w.compare_statistics = json_safe(stats)

        with w._lock:
            w._worker.submit(JobState.COMPARE, run, self.report)

    # ------------------------------------------------------------------ occlusion
    def submit_occlusion(self, position: list[int] | None = None) -> None:
        """Run an occlusion sweep at `position` (None: the current unit, else the centre) now,
        or once the pending view is shown."""
        w = self.w
        with w._lock:
            with w._quiet():
                w.error = ""
            request = self.request
            if request is not None:
                request.position = position or request.position or []
            elif w._features is None:
                raise ValueError("the layer's features are not ready yet; try again shortly.")
            else:
                self._queue_occlusion()

    def push_occlusion(self, done: int, total: int) -> None:
        w = self.w
        result = w._occ_result
        if result is None or result.layer_name != w.layer:
            return
        size = w._features.shape[-2:] if w._features is not None else (1, 1)
        view = occlusion_view(result, w.channel, size, done, total, self.occlusion_cancelled)
        with w.hold_sync():
            w._outbox.set("_occlusion", *view)

    def cancel(self) -> None:
        """Stop a running occlusion sweep or "looks for" optimization (the partial map or
        picture stays, marked cancelled)."""
        w = self.w
        with w._lock:
            self.cancel_looks_for()
            if self.request is not None:  # not to be run once the pending view is shown
                self.request.position = None
            running = w._worker.pending(JobState.OCCLUSION)
            w._worker.invalidate(JobState.OCCLUSION)
            if running:
                self.occlusion_cancelled = True
                meta = w._occlusion_meta
                if meta and not meta.get("complete"):
                    with w._quiet():
                        w._occlusion_meta = {**meta, "cancelled": True}

    def _queue_occlusion(self) -> None:
        w = self.w
        layer, source = w._features_layer, w._source
        position = tuple(w.position) if w.position else None
        self.occlusion_cancelled = False
        w._worker.submit(
            JobState.OCCLUSION,
            lambda job: self._run_occlusion(job, source, layer, position),
            self.report,
        )

    def _run_occlusion(
        self, job: Job, source: ImageInput, layer: str, position: tuple[int, int] | None
    ) -> None:
        w = self.w
        self.start(job, "occlusion…", 0.0)
        throttle = Throttle()

        def on_progress(done: int, total: int, partial: OcclusionResult) -> None:
            if not throttle.due(done, total):
                return
            with w._lock:
                if job.current:
                    w._occ_result = partial
                    with w._quiet(), w.hold_sync():
                        w.progress = done / total
                        w.status = f"occlusion {done}/{total}"
                        self.push_occlusion(done, total)

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
                w._occ_result = result
                total = int(result.done.size)
                with w._quiet(), w.hold_sync():
                    w.position = list(result.position)
                    self.push_occlusion(total, total)
