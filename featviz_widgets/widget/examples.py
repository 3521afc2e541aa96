"""The explorer's dataset examples (`ExamplesJob`): a background scan of a
collection (`dataset_examples`) over the explorer's layers, then the top images of the
selected channel as the `_examples` payload, re-cut from the cached result whenever the layer
or channel changes (no rescan).

Everything model-related runs on the explorer's worker: the scan (kind `JobState.DATASET`,
with progress and Cancel) and the crops of each selection (kind `_CROPS`; it reads back only
the k winning images and measures a layer's receptive fields once). Between two batches the
scan runs whatever else was asked meanwhile (a layer change, an occlusion, the crops of a
channel) before going on, so the rest of the explorer keeps answering during a long scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import traitlets as t

from ..core.inputs import image_name, read_now
from ..dataset.scan import DatasetExamples, ScanCancelled
from .job_status import JobStatus
from .layer_menu import explorer_layers
from .protocol import JobState
from .traits import ExplorerTraits
from .view_job import ViewJob
from .views import examples_view
from .worker import Job, Throttle

__all__ = ["ExamplesJob"]

_CROPS = "examples"  # the worker kind re-cutting the selected channel's examples


class ExamplesJob:
    """The dataset scan and examples view of `widget`, under its lock, quietly: what was
    scanned, its result, the `_examples` payload of the selected layer and channel."""

    def __init__(self, widget: ExplorerTraits, status: JobStatus, view: ViewJob) -> None:
        self.w, self.status, self.view = widget, status, view
        self.data: Any = None  # what was given to scan
        self.result: DatasetExamples | None = None
        widget.observe(self.on_selection, names=["layer", "channel"])

    # ------------------------------------------------------------------ scan
    def submit_scan(
        self,
        data: Any,
        layers: Sequence[str] | None = None,
        *,
        k: int = 9,
        batch_size: int = 32,
    ) -> None:
        """Scan `data` in the background for the top `k` images of every channel of `layers`
        (default: the explorer's layer list and the current layer), replacing any scan."""
        w = self.w
        names = None if layers is None else list(layers)
        with w._lock:
            self.data = data
            with w._quiet(), w.hold_sync():
                w.error = ""
                if self.result is None:
                    self._publish(examples_view(w.layer, w.channel, note="scanning the dataset…"))
            w._worker.submit(
                JobState.DATASET,
                lambda job: self._run_scan(job, data, names, k, batch_size),
                self._report,
            )

    def clear(self) -> None:
        """Forget the dataset and its result; the view hides the examples."""
        w = self.w
        with w._lock:
            w._worker.invalidate(JobState.DATASET, _CROPS)
            self.data, self.result = None, None
            with w._quiet(), w.hold_sync():
                w._outbox.set("_examples", b"", {})

    def cancel(self) -> None:
        """Stop a queued or running scan; the examples of an earlier scan stay."""
        w = self.w
        with w._lock:
            if not w._worker.pending(JobState.DATASET):
                return
            w._worker.invalidate(JobState.DATASET)
            if self.result is None:
                with w._quiet(), w.hold_sync():
                    note = "the dataset scan was cancelled; set `dataset` again to rescan."
                    self._publish(examples_view(w.layer, w.channel, note=note))

    def _layers(self) -> list[str]:
        """The explorer's layers (the default list when it shows every module), the current
        layer included: one pass covers every layer the dropdown offers first."""
        w = self.w
        with w._lock:
            names, current, every = w.layers, w.layer, w.all_layers
        if every or not names:
            names = [info.name for info in explorer_layers(w._viz, w._source, False, w._restrict)]
        if current and current not in names:
            names.append(current)
        if not names:
            raise ValueError("the explorer has no layers to scan the dataset for.")
        return names

    def _run_scan(
        self, job: Job, data: Any, layers: list[str] | None, k: int, batch_size: int
    ) -> None:
        w = self.w
        viz, names = w._viz, layers or self._layers()
        shown = ["dataset examples…", 0.0]  # the scan's status and progress
        self.status.start(job, *shown)
        throttle = Throttle()

        def on_progress(done: int, total: int) -> None:
            shown[:] = f"dataset examples: {done}/{total} images", done / total if total else -1.0
            if not throttle.due(done, total):
                return
            self.status.start(job, *shown)

        def should_stop() -> bool:
            """Between two batches: first the jobs asked for meanwhile (a layer change must not
            wait for the whole scan), then whether to stop."""
            with torch.enable_grad():  # the scan runs under no_grad; an optimization needs it
                if not w._worker.run_others(job):
                    return job.stale()
            if w._viz is not viz:  # a device change rebuilt the visualizer: rescan with it
                self.submit_scan(data, layers, k=k, batch_size=batch_size)
            self.status.start(job, *shown)  # the scan's status, and its Cancel, back
            return job.stale()

        result = viz.dataset_examples(
            data,
            names,
            k=k,
            batch_size=batch_size,
            progress=False,  # the widget shows its own
            on_progress=on_progress,
            should_stop=should_stop,
        )
        with w._lock:
            if not job.current:
                return
            self.result = result
        self._cut(job)

    def _report(self, job: Job, exc: BaseException) -> None:
        """A failed scan or cut: its message in `error` (a cancelled scan is not an error)."""
        if isinstance(exc, ScanCancelled):
            return
        w = self.w
        with w._lock:
            if job.current and job.kind == JobState.DATASET and self.result is None:
                with w._quiet(), w.hold_sync():
                    self._publish(examples_view(w.layer, w.channel, note="the scan failed."))
        self.status.report(job, exc)

    # ------------------------------------------------------------------ selection
    def on_selection(self, change: t.Bunch) -> None:
        """The layer or channel changed (by anyone): cut the new selection's examples."""
        w = self.w
        with w._lock:
            if self.result is not None:
                w._worker.submit(_CROPS, self._cut, self._report)

    def _cut(self, job: Job) -> None:
        """The examples of the selected (layer, channel) from the cached result: crops of
        only its k images. A channel the scan's layer lacks waits for its layer's view."""
        w = self.w
        with w._lock:
            result, layer, channel, viz = self.result, w.layer, w.channel, w._viz
        if result is None:
            return
        # A device change rebuilt the visualizer: crops re-read and measure with the new one.
        result._viz = viz
        if layer not in result.states:
            scanned = ", ".join(result.layers)
            note = f"{layer} was not in the dataset scan (scanned: {scanned})."
            view = examples_view(layer, channel, sources=result.sources, note=note)
        elif not 0 <= channel < result.states[layer].scores.shape[0]:
            return  # the layer's view is still computing: its channel comes with it
        else:
            top = result.top(layer, channel)
            crops = result.crops(layer, channel)
            note = "" if top else "no image of the dataset could be read."
            view = examples_view(layer, channel, top, crops, result.sources, note=note)
        with w._lock:
            if job.current and (w.layer, w.channel) == (layer, channel):
                with w._quiet(), w.hold_sync():
                    self._publish(view)

    def _publish(self, view: tuple[bytes, dict]) -> None:
        self.w._outbox.set("_examples", *view)

    # ------------------------------------------------------------------ clicks
    def show(self, index: Any) -> None:
        """Make image `index` of the scanned dataset the explorer's image."""
        w = self.w
        result = self.result
        try:
            if result is None:
                raise ValueError("no dataset scan has finished yet.")
            item = read_now(result.item(index))
        except (ValueError, TypeError, IndexError, OSError) as exc:
            w.error = str(exc)
            return
        source = result.sources[index]
        name = image_name(source) if isinstance(source, str) else f"dataset image {index}"
        self.view.submit(item, name=name, relist=True)
