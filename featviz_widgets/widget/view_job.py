"""The explorer's view job: an image and a layer in, a new `ViewState` out (the layer's maps,
statistics, rankings, the channel and unit shown), then the layer chart (`compare`). It owns
the pending request and reacts to the traits that ask for a new view (layer, layer list,
device, image of a batch, layer chart). It reads no explorer attribute: what it needs of the
explorer comes in a `ViewHost`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import traitlets as t

from ..core.cancel import Cancelled
from ..core.inputs import ImageInput
from ..core.json_values import json_safe
from ..core.layers import LayerInfo, default_compare, default_layer
from ..core.validate import channel_error, position_error
from ..visualizer import FeatureVisualizer
from .layer_menu import explorer_layers
from .panels.base import JobReporter, ViewState
from .payload import encode_png
from .protocol import ImageMeta, JobState, LayerEntry, layer_entry
from .request import ViewRequest
from .worker import Job, Worker

__all__ = ["Computed", "ViewHost", "ViewJob", "image_view"]


def image_view(shown: np.ndarray, name: str, batch: int, index: int = 0) -> tuple[bytes, dict]:
    """`_image`: the PNG of the (H, W, 3) image as the model sees it (image `index` of a
    batch of `batch`), and `ImageMeta`."""
    height, width = shown.shape[:2]
    meta = ImageMeta(h=height, w=width, name=name, batch=batch, index=index)
    return encode_png(shown), dict(meta)


@dataclass(frozen=True)
class Computed:
    """A view the job computed, for the explorer to show (`ViewHost.show`)."""

    state: ViewState  # the new view state
    menu: list[LayerEntry] | None  # the new layer menu (None: the same)
    image: tuple[bytes, dict] | None  # the new `_image` payload (None: the same picture)
    problems: list[str]  # what could not be shown as asked, for `error`
    asked: dict[str, Any]  # what the panels asked of it while it computed


@dataclass(frozen=True)
class ViewHost:
    """What the explorer lends its view job (explorer.py makes it)."""

    lock: threading.RLock  # guards the traits and the view state, across threads
    worker: Worker
    status: JobReporter
    widget: Any  # the explorer, for its public traits only
    own: Callable[[], bool]  # whether a trait change being made is the widget's own
    quiet: Callable[[], AbstractContextManager[None]]  # changes the widget makes itself
    current: Callable[[], ViewState | None]  # the view shown; None before the first
    input: Callable[[], ImageInput]  # the input shown (before the first view: the one given)
    # the model shown's visualizer for a new view: on the device asked for (None: its own),
    # remade when asked for; the explorer uses it from then on
    visualizer: Callable[[str | None], FeatureVisualizer]
    restrict: Callable[[], Sequence[str] | None]  # the layers the menu is limited to
    # a new view state with the computed parts given and the controls' values filled in
    make: Callable[..., ViewState]
    order: Callable[[ViewState], list[int]]  # every channel of a view under `sort_by`
    show: Callable[[Computed], None]  # show a computed view (under the lock)
    restore: Callable[[ViewRequest | None], None]  # a failed view: back to the one shown
    pause: Callable[[], None]  # a new view is asked for (under the lock)


class ViewJob:
    """The view and layer chart jobs of the explorer that lends it `host`."""

    def __init__(self, host: ViewHost) -> None:
        self.host = host
        self.request: ViewRequest | None = None  # the pending view job's
        widget = host.widget
        widget.observe(self._on_layer, names=["layer"])
        widget.observe(self._on_all_layers, names=["all_layers"])
        widget.observe(self._on_device, names=["device"])
        widget.observe(self._on_compare, names=["compare"])
        widget.observe(self._on_image_index, names=["image_index"])

    # ------------------------------------------------------------------ observers
    def _on_layer(self, change: t.Bunch) -> None:
        if not self.host.own():
            self.submit(layer=change["new"])

    def _on_all_layers(self, change: t.Bunch) -> None:
        if not self.host.own():
            self.submit(layer=self.host.widget.layer, relist=True)

    def _on_device(self, change: t.Bunch) -> None:
        if not self.host.own():
            self.submit(layer=self.host.widget.layer, rebuild_device=change["new"])

    def _on_image_index(self, change: t.Bunch) -> None:
        if not self.host.own():
            self.submit(layer=self.host.widget.layer, image_index=change["new"])

    def _on_compare(self, change: t.Bunch) -> None:
        if not self.host.own() and change["new"]:
            self.compare(list(change["new"]))

    # ------------------------------------------------------------------ errors
    def report(self, job: Job, exc: BaseException) -> None:
        """A failed view puts the controls back to what is shown, then says why in `error`."""
        host = self.host
        with host.lock, host.quiet():
            if job.current and not isinstance(exc, Cancelled):
                request, self.request = self.request, None
                host.restore(request)
            host.status.report(job, exc)

    # ------------------------------------------------------------------ layer chart
    def compare(self, names: list[str], source: ImageInput | None = None) -> None:
        """Queue the statistics of the layers `names` (on `source`, default: the image)."""
        host = self.host

        def run(job: Job) -> None:
            with host.lock:
                view = host.current()
            if view is None:
                return
            host.status.start(job, "comparing layers…")
            stats = view.viz.compare_layers(
                view.source if source is None else source, names, plot=False
            )
            with host.lock:
                if job.current:
                    with host.quiet():
                        host.widget.compare = list(names)
                        host.widget.compare_statistics = json_safe(stats)

        with host.lock:
            host.worker.submit(JobState.COMPARE, run, host.status.report)

    # ------------------------------------------------------------------ view
    def submit(
        self,
        source: ImageInput | None = None,
        *,
        layer: str | None = None,
        name: str | None = None,
        compare: Sequence[str] | None = None,
        relist: bool = False,
        rebuild_device: str | None = None,
        channel: int | None = None,
        image_index: int | None = None,
    ) -> None:
        """Queue the image/layer job: (new visualizer), (layer list), features, statistics,
        rankings; then the layer chart. A job that replaces a pending one also does what that
        one was asked (image, layer list, device, layer chart); the channel and unit chosen
        meanwhile, and what the panels asked, carry over only to the same layer of the same
        image. The image of a batch shown stays the same (`image_index`) until
        another input is given."""
        host, widget = self.host, self.host.widget
        with host.lock:
            old, given = self.request, host.input()
            if old is not None:
                if source is None:
                    source, name = old.source, old.name
                layer = layer or old.layer
                relist = relist or old.relist
                rebuild_device = rebuild_device or old.rebuild_device
                compare = old.compare if compare is None else compare
            request = ViewRequest(
                given if source is None else source,
                name,
                layer or widget.layer or None,
                None if compare is None else list(compare),
                relist,
                rebuild_device,
            )
            request.unit_shown = list(widget.position) if old is None else old.unit_shown
            if old is not None and (old.source, old.layer) == (request.source, request.layer):
                request.channel, request.position = old.channel, old.position
                request.asked = old.asked
            if channel is not None:  # checked once the layer's channel count is known
                request.channel = channel
            if image_index is not None:
                request.image_index = image_index
            elif request.source is given:
                request.image_index = widget.image_index
            elif old is not None and request.source is old.source:
                request.image_index = old.image_index
            self.request = request
            host.pause()
            with host.quiet():
                widget.error = ""
            host.worker.submit(JobState.VIEW, lambda job: self._run(job, request), self.report)

    def _run(self, job: Job, request: ViewRequest) -> None:
        host = self.host
        host.status.start(job, f"computing {request.layer or 'layers'}…")
        # The current model's visualizer: remade on another device or for a model changed
        # under its twin, its caches dropped when the model's weights changed meanwhile.
        viz = host.visualizer(request.rebuild_device)
        with host.lock:
            previous = host.current()
            all_layers, layer = host.widget.all_layers, host.widget.layer
        relist = request.relist or previous is None
        batch = viz.prepare(request.source)  # a batch's image shown is a slice of the input
        count = batch.shape[0]
        index = request.image_index if request.image_index < count else 0
        # Every analysis below reads the prepared tensor, so the image is preprocessed once.
        source = batch[index : index + 1] if count > 1 else batch
        fresh = relist or request.rebuild_device is not None or count > 1
        shown = viz.display_image(source) if fresh or previous is None else previous.shown
        infos = None
        if relist:
            infos = explorer_layers(viz, source, all_layers, host.restrict())
            if not infos:
                raise ValueError(
                    "the model has no layer whose output can be shown as maps for this image."
                )
        current = request.layer or layer or default_layer(infos or [])
        view = viz.layer_view(source, current, index=0)  # one forward, one layer resolution
        features = view.features.detach().float().cpu()
        with host.lock:
            if not job.current:
                return
            self.request = None
            state = host.make(
                viz=viz,
                source=source,
                shown=shown,
                layer=current,
                features=features,
                rankings=view.rankings,
                statistics=json_safe(view.statistics),
                input=request.source,
                image_index=index,
                batch_size=count,
                name=request.name,
                layers=None if infos is None else tuple(info.name for info in infos),
            )
            computed = self._computed(request, previous, state, infos)
            host.show(computed)
        names = self._compare_names(request.compare, infos)
        if names is not None:
            self.compare(names, source)

    def _computed(
        self,
        request: ViewRequest,
        previous: ViewState | None,
        state: ViewState,
        infos: list[LayerInfo] | None,
    ) -> Computed:
        """The view `state` with the channel and unit asked for (or why not, in `problems`)."""
        problems = []
        count, index = state.batch_size, state.image_index
        if request.image_index != index:
            problems.append(
                f"`image_index` {request.image_index} is out of range: the input holds "
                f"{count} image{'s' if count > 1 else ''}; showing image 0."
            )
        wanted, channels = request.channel, state.features.shape[1]
        same_layer = previous is not None and previous.layer == state.layer
        shown_channel = previous.channel if same_layer and previous is not None else -1
        if wanted is not None and 0 <= wanted < channels:
            channel = wanted
        else:  # the one shown (a channel chosen for a replaced request is not), or the top
            channel = shown_channel if 0 <= shown_channel < channels else self.host.order(state)[0]
            if wanted is not None:  # its channel count was not known when it was set
                problems.append(channel_error(wanted, state.layer, channels))
        unit = request.position
        off_map = position_error(unit, state.layer, state.map_size) if unit else None
        if off_map is not None:
            problems.append(off_map)
            unit = None
        new_picture = previous is None or state.shown is not previous.shown
        image = image_view(state.shown, state.image_name, count, index) if new_picture else None
        return Computed(
            state=replace(state, channel=channel, position=tuple(unit or ())),
            menu=None if infos is None else [layer_entry(info) for info in infos],
            image=image,
            problems=problems,
            asked=request.asked,
        )

    def _compare_names(
        self, requested: Sequence[str] | None, infos: list[LayerInfo] | None
    ) -> list[str] | None:
        """The layers to compare after a view job: requested, current, or a default."""
        if requested is not None:
            return list(requested)
        if self.host.widget.compare:
            return list(self.host.widget.compare) if infos is not None else None
        return None if infos is None else default_compare(infos)
