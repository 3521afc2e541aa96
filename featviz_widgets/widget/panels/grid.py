"""The grid: the layer's maps of the first `num_features` channels under `sort_by`, each with
its mean, the layer's statistics (`statistics`) and the channel menu's ranking (`_order`). Its
painter is js/src/panels/grid.js."""

from __future__ import annotations

import io
from collections.abc import Hashable

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from ...core.json_values import json_safe
from ...plotting.figures import MAX_FEATURE_MAPS, feature_grid_figure, grid_columns, grid_shape
from ..payload import MapsMeta, decode_maps, encode_maps
from ..protocol import CORE_SORT_MODES, SHARED_SCALE
from .base import Panel, PanelHost, ViewState

__all__ = ["GridMeta", "GridPanel", "grid_png", "grid_view"]

STATIC_MIN_SIDE = 256
"""The least height of the notebook's static picture, in pixels."""


class GridMeta(MapsMeta):
    """`_grid`'s metadata: the grid's maps, laid out `cols` to a row."""

    layer: str
    sort_by: str
    channels: list[int]
    means: list[float | None]
    cols: int


def grid_view(
    features: torch.Tensor, order: list[int], num_features: int, layer: str, sort_by: str
) -> tuple[bytes, dict]:
    """`_grid`: the first `num_features` channels of `order` (at most `MAX_FEATURE_MAPS`)
    of the first image's maps in (B, C, H, W) `features`, with their means."""
    channels = order[: min(max(1, num_features), MAX_FEATURE_MAPS)]
    selected = features[0][channels].numpy()
    data, maps = encode_maps(selected)
    with np.errstate(all="ignore"):
        means = np.nanmean(selected.reshape(len(channels), -1), axis=1).tolist()
    meta = GridMeta(
        **maps,
        layer=layer,
        sort_by=sort_by,
        channels=channels,
        means=means,
        cols=grid_columns(len(channels)),
    )
    return data, json_safe(meta)


class GridPanel(Panel):
    """The grid of the view shown, sorted again when `sort_by` or `num_features` changes or a
    panel's ranking comes (`refresh`): at once, on the caller's thread, from the view's maps."""

    name = "grid"
    meta = GridMeta
    status = "grid"
    observes = ("sort_by", "num_features")
    sorts = True

    def __init__(self, host: PanelHost) -> None:
        super().__init__(host)
        self.published: Hashable = None
        self.maps: torch.Tensor | None = None  # the maps of the view it shows
        self.channels: list[int] = []

    def order(self, view: ViewState) -> tuple[str, list[int]]:
        """The sort mode the grid follows and every channel under it: a panel's mode ("class
        contribution") by activation until that panel's ranking is known."""
        mode = view.sort_by
        if mode not in CORE_SORT_MODES:
            ranking = self.host.ranking(mode, view)
            if ranking is not None:
                return mode, list(ranking)
            mode = CORE_SORT_MODES[0]
        return mode, list(view.rankings[mode])

    def ranked(self, view: ViewState) -> list[int]:
        return self.order(view)[1]

    def depends_on(self, view: ViewState) -> Hashable:
        """The layer's maps, the order they are shown in (a panel's ranking when it comes) and
        how many."""
        return _key(view, *self.order(view))

    def update(self, view: ViewState) -> None:
        mode, order = self.order(view)  # once: a panel's ranking sorts every channel
        key = _key(view, mode, order)
        if key == self.published:
            return
        self.published = key
        data, meta = grid_view(view.features, order, view.num_features, view.layer, mode)
        self.channels = meta["channels"]
        with self.host.quiet():
            if self.maps is not view.features:  # a new view: its layer's statistics
                self.maps = view.features
                self.host.widget.statistics = dict(view.statistics)
            self.host.set(_order=order)
            self.host.publish(self.trait, data, meta)

    def picture(self, name: str) -> Figure:
        with self.host.lock:
            view, channels = self.host.current(), list(self.channels)
        if view is None:
            raise ValueError("nothing to save yet: the first result is still being computed.")
        maps = view.features[0]
        return feature_grid_figure(
            maps,
            channels,
            title=f"{view.layer}: top {len(channels)} of {maps.shape[0]} by {view.sort_by}",
            shared_scale=view.color_scale == SHARED_SCALE,
        )

    def stand_in(self) -> bytes:
        """The input image beside the grid shown."""
        with self.host.lock:
            view = self.host.current()
            data, meta = self.host.payload(self.trait)
        if view is None or not meta.get("n"):
            raise ValueError("nothing to show yet")
        return grid_png(view.shown, data, meta, shared=view.color_scale == SHARED_SCALE)


def _key(view: ViewState, mode: str, order: list[int]) -> Hashable:
    """What the grid of `view` shows: its maps, their order under `mode`, and how many."""
    return (id(view.features), view.layer, mode, tuple(order), view.num_features)


def grid_png(shown: np.ndarray, data: bytes, meta: dict, *, shared: bool) -> bytes:
    """PNG bytes of the input image `shown` (H, W, 3) beside the grid payload (`data`, `meta`)
    in viridis, laid out as the live view lays it out."""
    maps = decode_maps(data, meta)
    lo, hi = np.asarray(meta["lo"]), np.asarray(meta["hi"])
    if shared and hi.max() > lo.min():
        unit = (maps - lo.min()) / (hi.max() - lo.min())
    else:
        span = np.where(hi > lo, hi - lo, 1.0)
        unit = (maps - lo[:, None, None]) / span[:, None, None]
    colours = matplotlib.colormaps["viridis"](np.clip(unit, 0, 1), bytes=True)[..., :3]
    n = meta["n"]
    rows, cols = grid_shape(n)
    # Small inputs (a 32 px training image) are enlarged by a whole factor, pixels kept sharp,
    # so the picture is readable.
    factor = -(-STATIC_MIN_SIDE // shown.shape[0])
    if factor > 1:
        shown = shown.repeat(factor, axis=0).repeat(factor, axis=1)
    side = shown.shape[0]
    tile = max(8, (side - 4 * (rows - 1)) // rows)
    canvas = Image.new("RGB", (shown.shape[1] + 12 + cols * (tile + 4) - 4, side), "white")
    canvas.paste(Image.fromarray(shown), (0, 0))
    left = shown.shape[1] + 12
    for i in range(n):
        picture = Image.fromarray(colours[i]).resize((tile, tile), Image.NEAREST)
        canvas.paste(picture, (left + (i % cols) * (tile + 4), (i // cols) * (tile + 4)))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
