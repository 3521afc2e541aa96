"""Occlusion: which parts of the input the selected unit depends on. A sweep of
`FeatureVisualizer.occlusion` for the unit at `position` (on the layer's map; the centre when
none is chosen) runs on the explorer's worker and streams into the `_occlusion` payload as it
refines. Its painter and its "Run occlusion" button are js/src/panels/occlusion.js.

- **Started** by choosing a unit (`position`: a click or Enter on the channel view), by
  choosing the selected one again or pressing "Run occlusion" (the front end's `occlude`
  message), or by `FeatureExplorer.run_occlusion()`. A sweep asked for while a view is being
  computed runs once that view is shown, at its unit.
- **Every channel at once.** One sweep gives the map of every channel of its unit: choosing
  another channel shows that channel's map without work.
- **Cancel** stops it: the partial map stays, marked cancelled. A new view stops it and drops
  its map; a unit completed by a sweep becomes `position` (the centre, when none was chosen).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ...core.json_values import json_safe
from ...occlusion.engine import OcclusionResult
from ...plotting.figures import occlusion_figure, unit_centre
from ..payload import MapsMeta, encode_maps
from ..worker import Job, Throttle
from .base import Panel, PanelHost, ViewState

__all__ = ["OcclusionMeta", "OcclusionPanel", "occlusion_view"]


class OcclusionMeta(MapsMeta):
    """`_occlusion`'s metadata: a (partial) sensitivity map of `channel` at `position`, one
    uint8 map of h x w (`MapsMeta`: dequantised as ``lo[0] + q / 255 * (hi[0] - lo[0])``);
    `map_size` the layer's map the unit is on, `done` of `total` placements in."""

    layer: str
    channel: int
    position: list[int]
    map_size: list[int]
    done: int
    total: int
    complete: bool
    cancelled: bool


def occlusion_view(
    result: OcclusionResult,
    channel: int,
    map_size: tuple[int, int],
    done: int,
    total: int,
    cancelled: bool,
) -> tuple[bytes, dict]:
    """`_occlusion`: the (partial) sensitivity map of `channel` from `result`, `done` of
    `total` placements in, for the unit on a layer's map of `map_size` (H, W)."""
    data, maps = encode_maps(result.map(channel))
    meta = OcclusionMeta(
        **maps,
        layer=result.layer_name,
        channel=channel,
        position=list(result.position),
        map_size=[int(map_size[0]), int(map_size[1])],
        done=int(done),
        total=int(total),
        complete=bool(done >= total),
        cancelled=cancelled,
    )
    return data, json_safe(meta)


class OcclusionPanel(Panel):
    name = "occlusion"
    meta = OcclusionMeta
    status = "occlusion"
    cancellable = True
    messages = {"occlude": "on_occlude"}  # run it at the current unit (or the centre)
    observes = ("position",)  # a unit chosen by the person runs a sweep

    def __init__(self, host: PanelHost) -> None:
        super().__init__(host)
        self.result: OcclusionResult | None = None  # the last (possibly partial) sweep
        self.view: ViewState | None = None  # the view it is for
        self.done = (0, 0)  # its placements done, of its total
        self.cancelled = False  # the running sweep was cancelled: its map says so

    def same_view(self, view: ViewState) -> bool:
        """Whether `view` is the one its sweep belongs to (the same model, image and layer:
        each view prepares an image of its own), with perhaps another channel."""
        old = self.view
        if old is None:
            return False
        return old.viz is view.viz and old.source is view.source and old.layer == view.layer

    # ------------------------------------------------------------------ runs
    def changed(self, name: str, value: Any) -> None:
        """The person chose a unit (`position`): sweep for it, now or once the pending view
        is shown."""
        if value:
            self.submit(list(value))

    def on_occlude(self, content: dict) -> None:
        """The front end's `occlude` message: run it at the current unit (or the centre)."""
        try:
            self.submit()
        except ValueError as exc:
            self.host.error(str(exc))

    def run(self, position: list[int] | None) -> None:
        """`run_occlusion`: sweep for the unit at `position` (None: the current one, or the
        centre), selecting it; an unchanged unit (which notifies nobody) runs again."""
        widget = self.host.widget
        before = list(widget.position)
        if position is not None:
            widget.position = position  # checked; a change runs it (`changed`)
        if position is None or position == before:
            self.submit(position)

    def submit(self, position: list[int] | None = None) -> None:
        """Sweep at `position` (None: the current unit, else the centre) now, or once the
        pending view is shown."""
        with self.host.lock:
            self.host.error("")
            pending = self.host.pending()
            if pending is not None:  # the unit chosen for that view, or the one asked before
                pending[self.name] = position or pending.get(self.name) or []
                return
            view = self.host.current()
            if view is None:
                raise ValueError("the layer's features are not ready yet; try again shortly.")
            self.start(view)

    def start(self, view: ViewState) -> None:
        """Queue a sweep of `view`'s layer at its unit (under the lock)."""
        self.cancelled = False
        position = tuple(view.position) if view.position else None
        self.host.worker.submit(self.name, lambda job: self._run(job, view, position), self.report)

    def update(self, view: ViewState) -> None:
        """A new view drops the old sweep and runs the one asked for while it was computed
        (`view.asked`); a new channel shows its map of the current sweep."""
        if self.same_view(view):
            if self.result is not None:
                self.view = view
                self.push()
            return
        self.view, self.result = view, None
        if self.host.payload(self.trait)[1]:
            self.host.publish(self.trait, b"", {})
        asked = view.asked.get(self.name)
        if asked is None:
            return
        if asked and list(view.position) != asked:  # the view dropped it (and said why)
            return
        self.start(view)

    def pause(self) -> None:
        """A new view is being computed: the sweep of the old one stops."""
        self.host.worker.invalidate(self.name)

    def cancel(self) -> bool:
        """Stop a running sweep (its partial map stays, marked cancelled), and one asked for
        the pending view (with the unit chosen for it)."""
        with self.host.lock:
            pending = self.host.pending()
            if pending is not None and pending.pop(self.name, None) is not None:
                self.host.widget.position = []  # the pending view shows no unit
            running = super().cancel()
            if running:
                self.cancelled = True
                self.mark_cancelled()
            return running

    def push(self) -> None:
        """The `_occlusion` payload: the selected channel's map of the sweep (under the lock)."""
        view, result = self.view, self.result
        if view is None or result is None:
            return
        channel = self.host.widget.channel
        payload = occlusion_view(result, channel, view.map_size, *self.done, self.cancelled)
        self.host.publish(self.trait, *payload)

    def _run(self, job: Job, view: ViewState, position: tuple[int, int] | None) -> None:
        self.host.status.start(job, "occlusion…", 0.0)
        throttle = Throttle()

        def on_progress(done: int, total: int, partial: OcclusionResult) -> None:
            if not throttle.due(done, total):
                return
            self.host.status.start(job, f"occlusion {done}/{total}", done / total)
            with self.host.lock:
                if job.current:
                    self.result, self.done = partial, (done, total)
                    self.push()

        widget = self.host.widget
        result = view.viz.occlusion(
            view.source,
            view.layer,
            position,
            patch_size=widget.patch_size,
            stride=widget.stride,
            on_progress=on_progress,
            should_stop=job.stale,
            progress=False,  # the widget shows its own
        )
        with self.host.lock:
            if job.current:
                total = int(result.done.size)
                self.result, self.done = result, (total, total)
                with self.host.quiet():  # the unit swept: the one chosen, or the centre
                    widget.position = list(result.position)
                    self.push()

    # ------------------------------------------------------------------ results
    def occlusion_map(self, channel: int, signed: bool = False) -> np.ndarray:
        """The map (H_in, W_in) of `channel` of the last sweep."""
        if self.result is None:
            raise ValueError("no occlusion has run yet; set `position` or call `run_occlusion()`.")
        return self.result.map(channel, signed=signed)

    def picture(self, name: str) -> Figure:
        """`save_png(view="occlusion")`: the selected channel's map over the input, its unit
        marked."""
        with self.host.lock:
            view, result = self.host.current(), self.result
        if view is None:
            raise ValueError("nothing to save yet: the first result is still being computed.")
        if result is None or result.layer_name != view.layer:
            raise ValueError("no occlusion map for this layer yet; set `position` first.")
        sensitivity = result.map(view.channel)
        centre = unit_centre(result.position, view.map_size, sensitivity.shape)
        done = "" if result.complete else " (partial)"
        return occlusion_figure(
            view.shown,
            sensitivity,
            centre=centre,
            title=f"{view.layer}, channel {view.channel}, position {result.position}{done}",
        )
