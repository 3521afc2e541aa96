"""The unit's detail: the selected channel's map (the input image beside it is the view's
`_image`). Its painter is js/src/panels/unit.js."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import torch
from matplotlib.figure import Figure

from ...core.json_values import json_safe
from ...plotting.figures import feature_grid_figure
from ..payload import MapsMeta, encode_maps
from .base import Panel, PanelHost, ViewState

__all__ = ["UnitMeta", "UnitPanel", "unit_view"]


class UnitMeta(MapsMeta):
    """`_unit`'s metadata: the selected channel's map."""

    layer: str
    channel: int
    mean: float | None


def unit_view(features: torch.Tensor, channel: int, layer: str) -> tuple[bytes, dict]:
    """`_unit`: the map of `channel` of the first image, and its mean."""
    channel_map = features[0, channel].numpy()
    data, maps = encode_maps(channel_map)
    with np.errstate(all="ignore"):
        mean = float(np.nanmean(channel_map))
    return data, json_safe(UnitMeta(**maps, layer=layer, channel=channel, mean=mean))


class UnitPanel(Panel):
    """The selected channel's map of the view shown, sent at once when the channel changes."""

    name = "unit"
    meta = UnitMeta
    status = "unit"
    views = ("channel",)

    def __init__(self, host: PanelHost) -> None:
        super().__init__(host)
        self.published: Hashable = None

    def depends_on(self, view: ViewState) -> Hashable:
        """The layer's maps and the channel."""
        return (id(view.features), view.layer, view.channel)

    def update(self, view: ViewState) -> None:
        key = self.depends_on(view)
        if key == self.published:
            return
        self.published = key
        data, meta = unit_view(view.features, view.channel, view.layer)
        with self.host.quiet():
            self.host.publish(self.trait, data, meta)

    def picture(self, name: str) -> Figure:
        with self.host.lock:
            view = self.host.current()
        if view is None:
            raise ValueError("nothing to save yet: the first result is still being computed.")
        return feature_grid_figure(
            view.features[0],
            [view.channel],
            title=f"{view.layer}, channel {view.channel}",
            figsize=(4.5, 4.8),
        )
