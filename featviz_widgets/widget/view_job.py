"""The explorer's view job: an image and a layer in, features, statistics, rankings and
the view payloads (image, grid, channel) out; then the layer chart (`compare`). It owns the pending
request and reacts to the traits that change what is shown (layer, device, order, channel)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import traitlets as t

from ..core.cancel import Cancelled
from ..core.inputs import ImageInput
from ..core.layers import LayerInfo, default_compare, default_layer
from ..core.validate import channel_error, position_error
from .job_status import JobStatus
from .layer_menu import explorer_layers
from .protocol import CORE_SORT_MODES, JobState, json_safe, layer_entry
from .request import ViewRequest
from .traits import ExplorerTraits
from .views import grid_view, image_view, unit_view
from .worker import Job

__all__ = ["ViewJob"]


class ViewJob:
    """The view and layer chart jobs of `widget`; a new view pauses the panels' work
    (`on_submit`), and the view shown resumes it (`on_shown`)."""

    def __init__(
        self,
        widget: ExplorerTraits,
        status: JobStatus,
        rank: Callable[[str], list[int] | None],
    ) -> None:
        self.w, self.status = widget, status
        self.rank = rank  # the ranking of a sort mode a panel adds
        self.request: ViewRequest | None = None  # the pending view job's
        # what the panels asked of the view being shown (its `asked`), while `on_shown` runs
        self.asked: dict[str, Any] = {}
        self.order_mode = CORE_SORT_MODES[0]  # the ranking `_order` holds (see `order`)
        self.on_shown: list[Callable[[], None]] = []  # called (locked, quiet) after each view
        self.on_submit: list[Callable[[], None]] = []  # called (locked) when a view is asked for
        self.on_failed: list[Callable[[], None]] = []  # called (locked) when a view failed
        widget.observe(self._on_layer, names=["layer"])
        widget.observe(self._on_all_layers, names=["all_layers"])
        widget.observe(self._on_device, names=["device"])
        widget.observe(self._on_order, names=["sort_by", "num_features"])
        widget.observe(self._on_channel, names=["channel"])
        widget.observe(self._on_compare, names=["compare"])
        widget.observe(self._on_image_index, names=["image_index"])

    # ------------------------------------------------------------------ observers
    def _on_layer(self, change: t.Bunch) -> None:
        if not self.w._is_quiet():
            self.submit(layer=change["new"])

    def _on_all_layers(self, change: t.Bunch) -> None:
        if not self.w._is_quiet():
            self.submit(layer=self.w.layer, relist=True)

    def _on_device(self, change: t.Bunch) -> None:
        if not self.w._is_quiet():
            self.submit(layer=self.w.layer, rebuild_device=change["new"])

    def _on_order(self, change: t.Bunch) -> None:
        w = self.w
        if w._is_quiet():
            return
        with w._lock:
            if w._rankings:
                with w._quiet(), w.hold_sync():
                    self.reorder()

    def _on_channel(self, change: t.Bunch) -> None:
        w = self.w
        with w._lock:
            if w._is_quiet() or self.request is not None:
                return  # a layer being computed publishes its own channel view
            with w._quiet(), w.hold_sync():
                self.push_unit()

    def _on_image_index(self, change: t.Bunch) -> None:
        if not self.w._is_quiet():
            self.submit(layer=self.w.layer, image_index=change["new"])

    def _on_compare(self, change: t.Bunch) -> None:
        if not self.w._is_quiet() and change["new"]:
            self.compare(list(change["new"]))

    # ------------------------------------------------------------------ errors
    def report(self, job: Job, exc: BaseException) -> None:
        """A failed view puts the controls back to what is shown, then says why in `error`."""
        w = self.w
        with w._lock, w._quiet(), w.hold_sync():
            if job.current and not isinstance(exc, Cancelled):
                request, self.request = self.request, None
                for callback in self.on_failed:
                    callback()
                w._viewed.set()
                if w._features_layer and w.layer != w._features_layer:
                    w.layer = w._features_layer
                if w.device != w._viz.device.type:
                    w.device = w._viz.device.type
                channel = w._unit.get("channel", w.channel)
                if w.channel != channel:
                    w.channel = channel
                if request is not None and w.position != request.unit_shown:
                    w.position = list(request.unit_shown)
            self.status.report(job, exc)

    # ------------------------------------------------------------------ layer chart
    def compare(self, names: list[str], source: ImageInput | None = None) -> None:
        """Queue the statistics of the layers `names` (on `source`, default: the image)."""
        w = self.w
        source = w._shown_source if source is None else source

        def run(job: Job) -> None:
            self.status.start(job, "comparing layers…")
            stats = w._viz.compare_layers(source, names, plot=False)
            with w._lock:
                if job.current:
                    with w._quiet(), w.hold_sync():
                        w.compare = list(names)
                        w.compare_statistics = json_safe(stats)

        with w._lock:
            w._worker.submit(JobState.COMPARE, run, self.status.report)

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
        w = self.w
        with w._lock:
            old = self.request
            if old is not None:
                if source is None:
                    source, name = old.source, old.name
                layer = layer or old.layer
                relist = relist or old.relist
                rebuild_device = rebuild_device or old.rebuild_device
                compare = old.compare if compare is None else compare
            request = ViewRequest(
                w._source if source is None else source,
                name,
                layer or w.layer or None,
                None if compare is None else list(compare),
                relist,
                rebuild_device,
            )
            request.unit_shown = list(w.position) if old is None else old.unit_shown
            if old is not None and (old.source, old.layer) == (request.source, request.layer):
                request.channel, request.position = old.channel, old.position
                request.asked = old.asked
            if channel is not None:  # checked once the layer's channel count is known
                request.channel = channel
            if image_index is not None:
                request.image_index = image_index
            elif request.source is w._source:
                request.image_index = w.image_index
            elif old is not None and request.source is old.source:
                request.image_index = old.image_index
            self.request = request
            for callback in self.on_submit:
                callback()
            with w._quiet():
                w.error = ""
            w._worker.submit(JobState.VIEW, lambda job: self._run(job, request), self.report)

    def _run(self, job: Job, request: ViewRequest) -> None:
        w = self.w
        self.status.start(job, f"computing {request.layer or 'layers'}…")
        source = request.source
        # The current model's visualizer: remade on another device or for a model changed
        # under its twin, its caches dropped when the model's weights changed meanwhile.
        device = request.rebuild_device or w._viz.device
        viz = w._models.visualizer(
            w._models.current,
            device,
            w._transform,
            w._cache_size,
            remake=request.rebuild_device is not None,
        )
        with w._lock:  # later jobs must use this one
            w._viz = viz
        relist = request.relist or not w._layers
        batch = viz.prepare(source)  # a batch's image shown is a slice of the model's input
        count = batch.shape[0]
        index = request.image_index if request.image_index < count else 0
        # Every analysis below reads the prepared tensor, so the image is preprocessed once.
        source = batch[index : index + 1] if count > 1 else batch
        fresh = relist or request.rebuild_device is not None or w._shown is None or count > 1
        shown = viz.display_image(source) if fresh else w._shown
        infos = None
        if relist:
            infos = explorer_layers(viz, source, w.all_layers, w._restrict)
            if not infos:
                raise ValueError(
                    "the model has no layer whose output can be shown as maps for this image."
                )
        current = request.layer or w.layer or default_layer(infos or [])
        view = viz.layer_view(source, current, index=0)  # one forward, one layer resolution
        features = view.features.detach().float().cpu()
        stats, rankings = view.statistics, view.rankings
        with w._lock:
            if not job.current:
                return
            self._publish_view(
                request, source, count, index, shown, infos, current, features, stats, rankings
            )
        names = self._compare_names(request.compare, infos)
        if names is not None:
            self.compare(names, source)

    def _compare_names(
        self, requested: Sequence[str] | None, infos: list[LayerInfo] | None
    ) -> list[str] | None:
        """The layers to compare after a view job: requested, current, or a default."""
        if requested is not None:
            return list(requested)
        if self.w.compare:
            return list(self.w.compare) if infos is not None else None
        return None if infos is None else default_compare(infos)

    def _publish_view(
        self,
        request: ViewRequest,
        source: ImageInput,
        count: int,
        index: int,
        shown: np.ndarray | None,
        infos: list[LayerInfo] | None,
        layer: str,
        features: torch.Tensor,
        stats: dict,
        rankings: dict[str, list[int]],
    ) -> None:
        w = self.w
        new_layer = layer != w._features_layer
        self.request = None
        w._source, w._shown_source, w._batch_size = request.source, source, count
        if request.name is not None:
            w._source_name = request.name
        w._features, w._features_layer, w._rankings = features, layer, rankings
        with w._quiet(), w.hold_sync():
            if w.image_index != index:
                w.image_index = index
            if shown is not None and shown is not w._shown:
                w._shown = shown
                w._outbox.set("_image", *image_view(shown, w._source_name, count, index))
            if infos is not None:
                w._layers = [layer_entry(info) for info in infos]
            if w._viz.device.type != w.device:
                w.device = w._viz.device.type
            w.layer = layer
            w.statistics = json_safe(stats)
            w._order = order = self.order()
            problems = []
            if request.image_index != index:
                problems.append(
                    f"`image_index` {request.image_index} is out of range: the input holds "
                    f"{count} image{'s' if count > 1 else ''}; showing image 0."
                )
            wanted, count = request.channel, features.shape[1]
            shown_channel = -1 if new_layer else w._unit.get("channel", -1)
            if wanted is not None and 0 <= wanted < count:
                w.channel = wanted
            else:  # the one shown (a channel chosen for a replaced request is not), or the top
                w.channel = shown_channel if 0 <= shown_channel < count else order[0]
                if wanted is not None:  # its channel count was not known when it was set
                    problems.append(channel_error(wanted, layer, count))
            unit = request.position
            off_map = position_error(unit, layer, features.shape[2:]) if unit else None
            if off_map is not None:
                problems.append(off_map)
                request.position = unit = None
            w.position = unit or []
            if problems:
                w.error = " ".join(problems)
            self.push_grid()
            self.push_unit()
            self.asked = request.asked
            for callback in self.on_shown:
                callback()
            self.asked = {}
        w._viewed.set()

    def order(self) -> list[int]:
        """Every channel of the view shown under `sort_by`; for a mode a panel adds ("class
        contribution") the panel's ranking, and by activation until it is there (`order_mode`
        says which)."""
        w = self.w
        mode = w.sort_by
        if mode not in CORE_SORT_MODES:
            ranking = self.rank(mode)
            if ranking is not None:
                self.order_mode = mode
                return ranking
            mode = CORE_SORT_MODES[0]
        self.order_mode = mode
        return list(w._rankings[mode])

    def reorder(self) -> None:
        """`_order` and the grid under the current `sort_by` (under the lock, quietly)."""
        w = self.w
        if w._rankings:
            with w.hold_sync():
                w._order = self.order()
                self.push_grid()

    def push_grid(self) -> None:
        w = self.w
        if w._features is not None:
            view = grid_view(w._features, w._order, w.num_features, w.layer, self.order_mode)
            with w.hold_sync():
                w._outbox.set("_grid", *view)

    def push_unit(self) -> None:
        w = self.w
        if w._features is not None:
            with w.hold_sync():
                w._outbox.set("_unit", *unit_view(w._features, w.channel, w.layer))
