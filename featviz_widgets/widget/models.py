"""The explorer's models: several named models in one explorer (`model_set.ModelSet`), the switch
between them and their comparison (`ModelsJob`).

- **Given** as a mapping of names to models, `FeatureExplorer({"resnet18": m1, ...}, image)`;
  a single model is a `ModelSet` without names (no menu, no comparison).
- **Switch.** Setting `model_name` runs a job on the worker: the new model's
  `FeatureVisualizer` (made on first use, on the explorer's device), then a view job at the
  layer nearest in relative depth to the layer shown (`ModelComparison.nearest_layer`), with
  the new model's layer list.
- **Comparison.** With two models or more, each image shown is profiled by `compare_models`
  (mean activation and sparsity of every default layer against relative depth), one model
  at a time on the worker, with progress; Cancel stops it between models. Profiles are cached
  per image and model, so switching models or coming back to an image costs nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict
from typing import Any

import traitlets as t

from ..compare import LayerProfile, ModelComparison, compare_models
from ..core.cancel import Cancelled
from ..core.inputs import ImageInput
from ..visualizer import FeatureVisualizer
from .examples import ExamplesJob
from .job_status import JobStatus
from .looks_for import LooksForJob
from .model_set import ModelSet
from .protocol import ComparisonMeta, JobState, json_safe
from .traits import ExplorerTraits
from .view_job import ViewJob
from .worker import Job

__all__ = ["ModelsJob"]

_CACHED_IMAGES = 4  # images whose profiles are kept


def _image_rows(
    name: str, viz: FeatureVisualizer, source: ImageInput, index: int
) -> list[LayerProfile]:
    """The profile of model `name` on image `index` of `source`, as `compare_models` makes
    it, from the model-ready input its visualizer prepares."""
    batch = viz.prepare(source)
    image = batch[index : index + 1] if batch.shape[0] > 1 else batch
    return compare_models({name: viz.model}, image, device=viz.device).rows


class ModelsJob:
    """The switch between `widget`'s models and their comparison; `models` are its models."""

    def __init__(
        self,
        widget: ExplorerTraits,
        status: JobStatus,
        models: ModelSet,
        view: ViewJob,
        looks_for: LooksForJob,
        examples: ExamplesJob,
    ) -> None:
        self.w, self.status, self.models = widget, status, models
        self.view, self.looks_for, self.examples = view, looks_for, examples
        # per image (the input, its index): each model's profile; the input is kept so that
        # its id is not reused while it is a key
        self.profiles: OrderedDict[tuple[int, int], tuple[Any, dict[str, list]]] = OrderedDict()
        self.shown: ModelComparison | None = None  # the complete comparison of the image shown
        widget.observe(self._on_model_name, names=["model_name"])
        view.on_shown.append(self._on_view)

    @property
    def several(self) -> bool:
        return len(self.models.names) > 1

    # ------------------------------------------------------------------ observers
    def _on_model_name(self, change: t.Bunch) -> None:
        if not self.w._is_quiet():
            self.switch(change["new"])

    def _on_view(self) -> None:
        """A view was shown: the comparison of its image (at once if cached)."""
        if self.several:
            self.compare()

    # ------------------------------------------------------------------ profiles
    def _key(self) -> tuple[tuple[int, int], ImageInput, int]:
        w = self.w
        return (id(w._source), w.image_index), w._source, w.image_index

    def _cached(self, key: tuple[int, int], source: ImageInput) -> dict[str, list]:
        entry = self.profiles.get(key)
        if entry is None or entry[0] is not source:
            entry = (source, {})
            self.profiles[key] = entry
            while len(self.profiles) > _CACHED_IMAGES:
                self.profiles.popitem(last=False)
        self.profiles.move_to_end(key)
        return entry[1]

    def visualizer(self, name: str) -> FeatureVisualizer:
        """Model `name`'s visualizer on the explorer's device (from the worker): the one in
        use for the model shown."""
        w = self.w
        with w._lock:
            if name == self.models.current:
                return w._viz
            device = w.device
        return self.models.visualizer(name, device, w._transform, w._cache_size)

    def _rows(self, name: str, source: ImageInput, index: int, done: dict[str, list]) -> list:
        """Model `name`'s profile of the image (from the worker), cached in `done`."""
        if name not in done:
            rows = _image_rows(name, self.visualizer(name), source, index)
            with self.w._lock:
                done[name] = rows
        return done[name]

    # ------------------------------------------------------------------ comparison
    @property
    def comparison(self) -> ModelComparison | None:
        """Every model profiled on the image shown, once complete (None before, or for one
        model)."""
        return self.shown

    def compare(self) -> None:
        """Profile every model on the image shown, in the background (cached profiles are
        shown at once)."""
        w = self.w
        with w._lock:
            key, source, index = self._key()
            done = self._cached(key, source)
            names = self.models.names
            with w._quiet():
                self._publish(done, "" if len(done) == len(names) else "profiling the models…")
            if len(done) < len(names):
                w._worker.submit(
                    JobState.COMPARE_MODELS,
                    lambda job: self._run_compare(job, key, source, index),
                    self.status.report,
                )

    def _run_compare(self, job: Job, key: tuple[int, int], source: ImageInput, index: int) -> None:
        w, names = self.w, self.models.names
        with w._lock:
            done = self._cached(key, source)
        for i, name in enumerate(names):
            if name in done:
                continue
            self.status.start(job, f"profiling {name} ({i + 1}/{len(names)})…", i / len(names))
            self._rows(name, source, index, done)
            with w._lock:
                if not job.current:
                    raise Cancelled("the model comparison was cancelled")
                if self._key()[0] == key:
                    with w._quiet():
                        self._publish(done, "profiling the models…")
        with w._lock:
            if job.current and self._key()[0] == key:
                with w._quiet():
                    self._publish(done, "")

    def _publish(self, done: dict[str, list], note: str) -> None:
        """`_comparison` from the profiles `done` (under the lock, quietly)."""
        w, names = self.w, self.models.names
        rows = [row for name in names for row in done.get(name, [])]
        complete = len(done) == len(names)
        self.shown = ModelComparison(list(names), rows) if complete else None
        meta = ComparisonMeta(
            models=list(names),
            rows=[asdict(row) for row in rows],
            image=w._source_name,
            done=sum(name in done for name in names),
            total=len(names),
            note=note,
        )
        w._comparison = json_safe(meta)

    def cancel(self) -> None:
        """Stop a queued or running comparison; the profiles made so far stay."""
        w = self.w
        with w._lock:
            if not w._worker.pending(JobState.COMPARE_MODELS):
                return
            w._worker.invalidate(JobState.COMPARE_MODELS)
            key, source, _ = self._key()
            with w._quiet():
                note = "the model comparison was cancelled; show the image again to finish it."
                self._publish(self._cached(key, source), note)

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
            key = (id(source), index)
            done = self._cached(key, source)
            listed = [entry["name"] for entry in w._layers]
        old_rows = self._rows(old, source, index, done)
        self.status.start(job, f"switching to {new}…")
        new_rows = self._rows(new, source, index, done)
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
        return ModelComparison([new], candidates).nearest_layer(new, depth)

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
            self.looks_for.cache.clear()  # keyed by layer and channel: another model's
            w._worker.invalidate(JobState.COMPARE)  # a queued layer chart of the old model's
            with w._quiet(), w.hold_sync():
                w.compare, w.compare_statistics = [], {}
            if self.view.request is not None:
                self.view.request.compare = None  # the old model's layers
            self.view.submit(layer=target, relist=True)
            if self.examples.data is not None:  # the dataset's top images, for this model
                self.examples.result = None
                self.examples.submit_scan(self.examples.data)
