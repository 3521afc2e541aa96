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

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import traitlets as t

from ..core.inputs import ImageInput
from ..visualizer import FeatureVisualizer
from .model_set import ModelProfiles, ModelSet
from .panels.base import JobReporter, ViewState
from .protocol import JobState
from .worker import Job, Worker

__all__ = ["ModelSwitch", "SwitchHost"]


@dataclass(frozen=True)
class SwitchHost:
    """What the explorer lends its model switch (explorer.py makes it)."""

    lock: threading.RLock
    worker: Worker
    status: JobReporter
    widget: Any  # the explorer, for its public traits only
    own: Callable[[], bool]  # whether a trait change being made is the widget's own
    quiet: Callable[[], AbstractContextManager[None]]  # changes the widget makes itself
    current: Callable[[], ViewState | None]  # the view shown
    # model `name`'s visualizer on the explorer's device (the one in use for the model shown)
    visualizer: Callable[[str], FeatureVisualizer]
    use: Callable[[str, FeatureVisualizer], None]  # make model `name` the one shown
    show: Callable[[str | None], None]  # a new view of the model shown, at a layer, relisted


class ModelSwitch:
    """The switch between the explorer's `models`; `profiles` are their layer profiles per
    image (the switch aligns layers by depth)."""

    def __init__(self, host: SwitchHost, models: ModelSet) -> None:
        self.host, self.models = host, models
        self.profiles = ModelProfiles(host.visualizer, host.lock)
        host.widget.observe(self._on_model_name, names=["model_name"])

    def _on_model_name(self, change: t.Bunch) -> None:
        if not self.host.own():
            self.switch(change["new"])

    # ------------------------------------------------------------------ switch
    def switch(self, name: str) -> None:
        """Show model `name` (checked by `model_name`'s validator), in the background."""
        host = self.host
        with host.lock:
            host.worker.submit(
                JobState.SWITCH_MODEL, lambda job: self._run_switch(job, name), self._report
            )

    def _report(self, job: Job, exc: BaseException) -> None:
        host = self.host
        with host.lock:
            if job.current and host.widget.model_name != self.models.current:
                with host.quiet():
                    host.widget.model_name = self.models.current
        host.status.report(job, exc)

    def _aligned(
        self, job: Job, old: str, new: str, view: ViewState, source: ImageInput, index: int
    ) -> str:
        """The layer of model `new` nearest in relative depth to the layer shown of model
        `old`; a layer of `old` outside its profile (with `all_layers`) has its place in the
        list."""
        layer, listed = view.layer, list(view.layers)
        old_rows = self.profiles.rows(old, source, index)
        self.host.status.start(job, f"switching to {new}…")
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
        host, models = self.host, self.models
        old = models.current
        if name == old:
            return
        host.status.start(job, f"switching to {name}…")
        with host.lock:
            view = host.current()
        viz = host.visualizer(name)
        target = None
        if view is not None:
            target = self._aligned(job, old, name, view, view.input, view.image_index)
        with host.lock:
            if not job.current:
                return
            host.use(name, viz)
            host.worker.invalidate(JobState.COMPARE)  # a queued layer chart of the old model's
            with host.quiet():
                host.widget.compare, host.widget.compare_statistics = [], {}
            host.show(target)
