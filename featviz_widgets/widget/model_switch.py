"""The explorer's models: several named models in one explorer (`model_set.ModelSet`) and the
switch between them (`ModelSwitch`).

- **Given** as a mapping of names to models, `FeatureExplorer({"resnet18": m1, ...}, image)`;
  a single model is a `ModelSet` without names (no menu).
- **Switch.** Setting `model_name` runs a job on the worker: the new model's
  `FeatureVisualizer` (made on first use, on the explorer's device), then a view job at the
  layer nearest in relative depth to the layer shown (by the models' layer profiles of the
  image, `ModelProfiles`), with the new model's layer list.
"""

from __future__ import annotations

import traitlets as t

from ..core.inputs import ImageInput
from ..visualizer import FeatureVisualizer
from .job_status import JobStatus
from .model_set import ModelProfiles, ModelSet
from .protocol import JobState
from .traits import ExplorerTraits
from .view_job import ViewJob
from .worker import Job

__all__ = ["ModelSwitch"]


class ModelSwitch:
    """The switch between `widget`'s models; `models` are its models, `profiles` their layer
    profiles per image (the switch aligns layers by depth)."""

    def __init__(
        self,
        widget: ExplorerTraits,
        status: JobStatus,
        models: ModelSet,
        view: ViewJob,
    ) -> None:
        self.w, self.status, self.models = widget, status, models
        self.view = view
        self.profiles = ModelProfiles(self.visualizer, widget._lock)
        widget.observe(self._on_model_name, names=["model_name"])

    def _on_model_name(self, change: t.Bunch) -> None:
        if not self.w._is_quiet():
            self.switch(change["new"])

    def visualizer(self, name: str) -> FeatureVisualizer:
        """Model `name`'s visualizer on the explorer's device (from the worker): the one in
        use for the model shown."""
        w = self.w
        with w._lock:
            if name == self.models.current:
                return w._viz
            device = w.device
        return self.models.visualizer(name, device, w._transform, w._cache_size)

    # ------------------------------------------------------------------ switch
    def switch(self, name: str) -> None:
        """Show model `name` (checked by `model_name`'s validator), in the background."""
        w = self.w
        with w._lock:
            w._worker.submit(
                JobState.SWITCH_MODEL, lambda job: self._run_switch(job, name), self._report
            )

    def _report(self, job: Job, exc: BaseException) -> None:
        w = self.w
        with w._lock:
            if job.current and w.model_name != self.models.current:
                with w._quiet():
                    w.model_name = self.models.current
        self.status.report(job, exc)

    def _aligned(
        self, job: Job, old: str, new: str, layer: str, source: ImageInput, index: int
    ) -> str:
        """The layer of model `new` nearest in relative depth to `layer` of model `old`; a
        layer of `old` outside its profile (with `all_layers`) has its place in the list."""
        w = self.w
        with w._lock:
            listed = [entry["name"] for entry in w._layers]
        old_rows = self.profiles.rows(old, source, index)
        self.status.start(job, f"switching to {new}…")
        new_rows = self.profiles.rows(new, source, index)
        depths = {row.layer: row.depth for row in old_rows}
        if layer in depths:
            depth = depths[layer]
        elif layer in listed and len(listed) > 1:
            depth = listed.index(layer) / (len(listed) - 1)
        else:
            depth = 0.5
        restrict = self.models.restrict[new]
        candidates = [row for row in new_rows if restrict is None or row.layer in restrict]
        if not candidates:
            return restrict[0] if restrict else new_rows[-1].layer
        return min(candidates, key=lambda row: abs(row.depth - depth)).layer  # tie: shallower

    def _run_switch(self, job: Job, name: str) -> None:
        w, models = self.w, self.models
        old = models.current
        if name == old:
            return
        self.status.start(job, f"switching to {name}…")
        with w._lock:
            layer, source, index = w._features_layer, w._source, w.image_index
        viz = self.visualizer(name)
        target = self._aligned(job, old, name, layer, source, index) if layer else None
        with w._lock:
            if not job.current:
                return
            models.visualizers[old] = w._viz  # the one in use (a device change remakes it)
            models.current = name
            w._model, w._viz, w._restrict = models.models[name], viz, models.restrict[name]
            w._worker.invalidate(JobState.COMPARE)  # a queued layer chart of the old model's
            with w._quiet(), w.hold_sync():
                w.compare, w.compare_statistics = [], {}
            if self.view.request is not None:
                self.view.request.compare = None  # the old model's layers
            self.view.submit(layer=target, relist=True)
