"""What a panel is: `Panel`, one view of the explorer in one module. It gets the explorer's
view at one moment (`ViewState`, immutable) and the services of its host (`PanelHost`: the
lock, the worker, the job status, the outbox), computes on the worker, sends one payload and
draws its static picture. Its JS module paints that payload."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from matplotlib.figure import Figure

from ...core.inputs import ImageInput
from ...visualizer import FeatureVisualizer
from ..model_set import ModelProfiles
from ..worker import Job, Worker

__all__ = ["ComputedPanel", "JobReporter", "Panel", "PanelHost", "Result", "ViewState"]


@dataclass(frozen=True)
class ViewState:
    """What the explorer shows at one moment: the model, the image, the layer and its maps, and
    every control's value. The explorer holds one; a control's change makes a new one
    (`dataclasses.replace`), and each panel gets it (`Panel.update`)."""

    viz: FeatureVisualizer  # the model shown, on its device (its caches hold the view's maps)
    source: ImageInput  # the image shown, prepared: one image
    shown: np.ndarray  # that image as the model sees it, (H, W, 3) uint8
    layer: str
    features: torch.Tensor  # the layer's maps of the image shown, (1, C, H, W) float32 on the CPU
    rankings: Mapping[str, list[int]]  # every channel, best first, per core sort mode
    statistics: Mapping[str, Any]  # the layer's statistics (mean, sparsity, ...), JSON-safe
    weights_version: Hashable  # moves when the user's model is trained
    channel: int = 0  # the selected channel
    position: tuple[int, ...] = ()  # the selected unit (h, w) on the layer's map; () for none
    sort_by: str = "activation"
    num_features: int = 16  # how many maps the grid shows
    color_scale: str = "per-tile"
    input: ImageInput = None  # the input given (an image or a batch) ...
    image_index: int = 0  # ... which of its images is shown ...
    batch_size: int = 1  # ... of how many
    image_name: str = ""
    model_name: str = ""  # the model shown, of `model_names` ([] for one model)
    model_names: tuple[str, ...] = ()
    profiles: ModelProfiles | None = None  # every model's layer profiles, per image
    layers: tuple[str, ...] = ()  # the layer menu's
    all_layers: bool = False  # whether the menu lists every module
    restrict: tuple[str, ...] | None = None  # the layers the explorer was limited to
    traits: Mapping[str, Any] = field(default_factory=dict)  # the panels' own traits' values
    # what each panel asked for while this view was computed (`PanelHost.pending`), by name:
    # given with the view's first `update` only, empty later
    asked: Mapping[str, Any] = field(default_factory=dict)

    @property
    def map_size(self) -> tuple[int, int]:
        """The layer's map (H, W)."""
        return tuple(self.features.shape[-2:])  # type: ignore[return-value]


class JobReporter(Protocol):
    """What a job says in the view's status line (`job_status.JobStatus`)."""

    def start(self, job: Job, status: str, progress: float = -1.0) -> None:
        """`job` (if still current) is running: `status` in words, `progress` in [0, 1]
        (-1: not measured)."""

    def report(self, job: Job, exc: BaseException) -> None:
        """A current job's exception, in `error`."""


@dataclass(frozen=True)
class PanelHost:
    """What the explorer lends its panels (explorer.py makes it)."""

    lock: threading.RLock  # guards the traits and every panel's state, across threads
    worker: Worker
    status: JobReporter
    current: Callable[[], ViewState | None]  # the view shown (under the lock); None before one
    viewing: Callable[[], bool]  # whether a new view is being computed (under the lock)
    # what the panels ask of the view being computed, by panel name (a panel changes it in
    # place, under the lock; its `update` gets it as `view.asked`); None when none is
    pending: Callable[[], dict[str, Any] | None]
    publish: Callable[[str, bytes, dict], None]  # set payload trait quietly (under the lock)
    payload: Callable[[str], tuple[bytes, dict]]  # a payload trait's bytes and metadata
    show: Callable[[ImageInput, str], None]  # make (image, its name) the explorer's image
    error: Callable[[str], None]  # say what went wrong in the view's error line
    widget: Any  # the explorer, for its public traits only (a panel sets `channel`, ...)
    # set the panel's own traits quietly (under the lock), and the grid's channel ranking,
    # `_order`, the channel menu
    set: Callable[..., None]
    reorder: Callable[[], None]  # sort the grid again (a panel's ranking came or went)
    ranking: Callable[[str, ViewState], list[int] | None]  # a panel's mode's, if known
    default_sort: str  # the sort mode to fall back to
    # inside it, changes to public traits are the widget's own: no observer reacts, and they
    # go to the front end in one message with the payloads published there
    quiet: Callable[[], AbstractContextManager[None]]


@dataclass(frozen=True)
class Result:
    """A panel's result for a view: what `figure` draws, and the metadata sent with it."""

    key: Hashable  # the view's parts it depends on
    view: ViewState
    value: Any  # None: there is none (`meta["note"]` says why)
    meta: dict


class Panel(ABC):
    """One view of the explorer. Subclasses name it (`name`: its payload trait `_<name>`, its
    job kind and its JS module's key), type its payload's metadata (`meta`, a TypedDict that
    its JS module mirrors), list its `save_png` views (default: its name), and say what it
    does with each view (`update`) and how it draws (`picture`)."""

    name: ClassVar[str]
    meta: ClassVar[type]
    status: ClassVar[str]  # what the worker is doing while it computes, e.g. "layer as colour"
    cancellable: ClassVar[bool] = False  # whether the view's Cancel button stops it
    views: ClassVar[tuple[str, ...]] = ()  # its `save_png` views; () for just its name
    # the front end's messages it answers: the message `type` -> the name of its method,
    # called with the message's content (a dict)
    messages: ClassVar[dict[str, str]] = {}
    # its own traits, public ones too, which the explorer gets (each checked by `check`); a
    # change made by the person calls `changed` (by default: `update`)
    traits: ClassVar[dict[str, Any]] = {}
    contract: ClassVar[dict[str, Any]] = {}  # what its JS module reads: `_contract.panels[name]`
    sort_modes: ClassVar[tuple[str, ...]] = ()  # the grid's sort modes it adds (`ranking`)
    observes: ClassVar[tuple[str, ...]] = ()  # core traits whose change by the person it hears
    sorts: ClassVar[bool] = False  # it follows `sort_by`: updated when a panel's ranking comes
    trait: ClassVar[str]  # `_<name>`

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls.trait = f"_{cls.name}"

    def __init__(self, host: PanelHost) -> None:
        self.host = host
        self.wanted: Hashable = None  # the parts of the view of its latest run

    @classmethod
    def export_views(cls) -> tuple[str, ...]:
        return cls.views or (cls.name,)

    def depends_on(self, view: ViewState) -> Hashable:
        """The parts of the view whose change calls for a new result (default: the model and
        its weights, the image and the layer); None: nothing to compute."""
        return (id(view.viz), view.weights_version, id(view.source), view.layer)

    def check(self, name: str, value: Any) -> Any:
        """The value of its trait `name` (or of `sort_by`, for a mode it adds) to set for
        `value`; ValueError says why not."""
        return value

    def initial(self) -> dict[str, Any]:
        """Values of its own traits the explorer starts with (set with its other traits)."""
        return {}

    def begin(self) -> None:
        """The explorer is made, its traits set (quietly): what they ask for, start."""
        return None

    def changed(self, name: str, value: Any) -> None:
        """The person changed its trait `name` (or a core trait it `observes`), under the
        lock: by default, it gets the view shown, unless a new one is being computed."""
        view = self.host.current()
        if view is not None and not self.host.viewing():
            self.update(view)

    def ranking(self, mode: str, view: ViewState) -> list[int] | None:
        """Every channel of `view` under its sort mode `mode`, best first; None until it is
        known (the grid is then sorted by activation)."""
        return None

    def ranked(self, view: ViewState) -> list[int] | None:
        """Every channel of `view` in the order it shows them, for a panel that `sorts`."""
        return None

    def stand_in(self) -> bytes | None:
        """The notebook's static picture (PNG bytes) where widgets cannot run, for the panel
        that draws it; None for the others."""
        return None

    def pause(self) -> None:
        """A new view is being computed: stop what needs the worker (`update` resumes it)."""
        return None

    def stay_paused(self) -> None:
        """The view that paused it failed: do not resume."""
        return None

    @abstractmethod
    def update(self, view: ViewState) -> None:
        """A new view (under the lock): publish what it calls for, working on the worker."""

    @abstractmethod
    def picture(self, name: str) -> Figure:
        """The static picture of its `save_png` view `name` for the view shown."""

    def report(self, job: Job, exc: BaseException) -> None:
        """An exception of this panel's job, in `error`."""
        self.host.status.report(job, exc)

    def cancel(self) -> bool:
        """Stop its queued or running job (the view's Cancel button, `explorer.cancel()`);
        whether there was one."""
        running = self.host.worker.pending(self.name)
        self.host.worker.invalidate(self.name)
        return running

    def mark_cancelled(self) -> None:
        """Its payload, when partial, says it was cancelled (its bytes kept); under the lock."""
        data, meta = self.host.payload(self.trait)
        if meta and not meta.get("complete"):
            self.host.publish(self.trait, data, {**meta, "cancelled": True})


class ComputedPanel(Panel):
    """A panel with one result per view: computed on the worker for each view whose parts
    it depends on changed, the latest request winning; a `ValueError` from `compute` is said
    in the panel (`note`), not as an error."""

    def __init__(self, host: PanelHost) -> None:
        super().__init__(host)
        self.shown: Result | None = None

    def update(self, view: ViewState) -> None:
        key = self.depends_on(view)
        if key is None or (self.shown is not None and self.shown.key == key):
            return
        if self.wanted == key and self.host.worker.pending(self.name):
            return
        self.wanted = key
        self.host.worker.submit(self.name, lambda job: self._run(job, view), self.report)

    def _run(self, job: Job, view: ViewState) -> None:
        self.host.status.start(job, f"{self.status}: {view.layer}…")
        try:
            value = self.compute(view, job)
            data, meta = self.payload(view, value)
        except ValueError as exc:  # the panel says why (a layer it cannot show)
            value, (data, meta) = None, self.note(view, str(exc))
        with self.host.lock:
            if job.current:
                self.shown = Result(self.depends_on(view), view, value, meta)
                self.host.publish(self.trait, data, meta)

    def picture(self, name: str) -> Figure:
        with self.host.lock:
            view, shown = self.host.current(), self.shown
        if view is None or shown is None or shown.key != self.depends_on(view):
            raise ValueError(f"nothing to save yet: the {self.name} view is still being computed.")
        if shown.value is None:
            raise ValueError(f"no {self.name} view for {view.layer}: {shown.meta.get('note', '')}")
        return self.figure(shown.view, shown.value)

    @abstractmethod
    def compute(self, view: ViewState, job: Job) -> Any:
        """The panel's result for `view`, on the worker, through `view.viz` (`job.current`
        turns False when a newer view replaced it)."""

    @abstractmethod
    def payload(self, view: ViewState, result: Any) -> tuple[bytes, dict]:
        """The result as the front end paints it: bytes and their metadata (`meta`)."""

    def note(self, view: ViewState, message: str) -> tuple[bytes, dict]:
        """The payload that says, in the panel, why there is no result."""
        return b"", {"note": message}

    @abstractmethod
    def figure(self, view: ViewState, result: Any) -> Figure:
        """The static picture of the result (`save_png`)."""
