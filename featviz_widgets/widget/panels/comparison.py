"""The model comparison: with several models, every model's mean activation and sparsity
against relative depth on the image shown (`profile_model`, as `compare_models` makes them),
one model at a time on the worker, with progress; Cancel stops it between models. Profiles
are cached per image (`ModelProfiles`), so switching models or coming back to an image costs
nothing. Its painter is js/src/panels/comparison.js; `save_png(view="models")` draws it."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import asdict
from typing import TypedDict

from matplotlib.figure import Figure

from ...compare import LayerProfile, ModelComparison
from ...core.cancel import Cancelled
from ...core.json_values import json_safe
from ..worker import Job
from .base import Panel, PanelHost, ViewState

__all__ = ["ComparisonMeta", "ComparisonPanel"]


class ComparisonMeta(TypedDict):
    """`_comparison`'s metadata (no bytes): the models' profiles on the image shown
    (`ModelComparison.to_dict()` rows), `done` of `total` models profiled so far."""

    models: list[str]
    rows: list[dict]
    image: str
    done: int
    total: int
    note: str


class ComparisonPanel(Panel):
    name = "comparison"
    meta = ComparisonMeta
    status = "profiling the models"
    cancellable = True
    views = ("models",)

    def __init__(self, host: PanelHost) -> None:
        super().__init__(host)
        self.complete: ModelComparison | None = None  # the image shown's, once complete

    def depends_on(self, view: ViewState) -> Hashable:
        """The image shown, with several models (one model: nothing to compare)."""
        if len(view.model_names) < 2 or view.profiles is None:
            return None
        return (id(view.input), view.image_index)

    def update(self, view: ViewState) -> None:
        """Show the image's profiles made so far at once; profile the others on the worker."""
        key = self.depends_on(view)
        if key is None:
            return
        done = view.profiles.done(view.input, view.image_index)
        complete = len(done) == len(view.model_names)
        self._publish(view, done, "" if complete else "profiling the models…")
        if not complete:
            self.wanted = key
            self.host.worker.submit(self.name, lambda job: self._run(job, view), self.report)

    def _run(self, job: Job, view: ViewState) -> None:
        names, profiles = view.model_names, view.profiles
        for i, name in enumerate(names):
            if name in profiles.done(view.input, view.image_index):
                continue
            self.host.status.start(job, f"profiling {name} ({i + 1}/{len(names)})…", i / len(names))
            profiles.rows(name, view.input, view.image_index)
            with self.host.lock:
                if not job.current:
                    raise Cancelled("the model comparison was cancelled")
                if self._shows(view):
                    self._publish(
                        view, profiles.done(view.input, view.image_index), "profiling the models…"
                    )
        with self.host.lock:
            if job.current and self._shows(view):
                self._publish(view, profiles.done(view.input, view.image_index), "")

    def _shows(self, view: ViewState) -> bool:
        """Whether `view`'s image is the one shown now (under the lock)."""
        now = self.host.current()
        return now is not None and self.depends_on(now) == self.depends_on(view)

    def _publish(self, view: ViewState, done: dict[str, list[LayerProfile]], note: str) -> None:
        """`_comparison` from the profiles `done` (under the lock)."""
        names = list(view.model_names)
        rows = [row for name in names for row in done.get(name, [])]
        complete = len(done) == len(names)
        self.complete = ModelComparison(names, rows) if complete else None
        meta = ComparisonMeta(
            models=names,
            rows=[asdict(row) for row in rows],
            image=view.image_name,
            done=sum(name in done for name in names),
            total=len(names),
            note=note,
        )
        self.host.publish(self.trait, b"", json_safe(meta))

    def cancel(self) -> bool:
        """Stop a queued or running comparison; the profiles made so far stay, and say so."""
        with self.host.lock:
            if not super().cancel():
                return False
            view = self.host.current()
            if view is not None and self.depends_on(view) is not None:
                done = view.profiles.done(view.input, view.image_index)
                note = "the model comparison was cancelled; show the image again to finish it."
                self._publish(view, done, note)
            return True

    def picture(self, name: str) -> Figure:
        with self.host.lock:
            comparison, view = self.complete, self.host.current()
        if comparison is None or view is None:
            raise ValueError(
                "no model comparison yet: it needs several models (a mapping of names to "
                "models) and is computed in the background after the image is shown; try "
                "after `wait()`."
            )
        return self.figure(view, comparison)

    def figure(self, view: ViewState, result: ModelComparison) -> Figure:
        """`ModelComparison.figure()` with the layer shown of the model shown ringed on both
        axes."""
        fig = result.figure()
        model, layer = view.model_name, view.layer
        rows = [row for row in result.rows if row.model == model and row.layer == layer]
        for ax, value in zip(fig.axes, ("mean", "sparsity")):
            for row in rows:
                ax.plot([row.depth], [getattr(row, value)], "o", ms=11, mfc="none", mec="black")
                ax.annotate(
                    f"{model} {layer}",
                    (row.depth, getattr(row, value)),
                    fontsize=8,
                    xytext=(6, 6),
                    textcoords="offset points",
                )
        return fig
