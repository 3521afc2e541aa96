"""Static pictures of the explorer's views: `save_png`'s figures and the PNG a notebook
keeps where the live widget cannot run (`StaticPictures`). Grids are laid out by
`plotting.figures.grid_shape`, as in `FeatureVisualizer`'s figures and the live view."""

from __future__ import annotations

import base64
import contextlib
import io
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from ..plotting.figures import feature_grid_figure, grid_shape
from .payload import decode_maps
from .protocol import EXPORT_VIEWS, SHARED_SCALE, ExportView
from .traits import ExplorerTraits

__all__ = [
    "ExplorerView",
    "StaticPictures",
    "export_figure",
    "grid_png",
]

# The first display waits this long at most for the first view (its static image).
_FIRST_VIEW_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ExplorerView:
    """What the explorer shows, taken at one moment."""

    features: torch.Tensor  # (B, C, H, W)
    shown: np.ndarray  # the input image as the model sees it, (H, W, 3)
    layer: str
    channels: list[int]  # the grid's
    channel: int
    sort_by: str
    shared_scale: bool


def export_figure(view: ExplorerView, kind: str) -> Figure:
    """The figure of view `kind` ("grid" or "channel"; the panels draw their own views)."""
    if kind not in EXPORT_VIEWS:
        raise ValueError(f"`view` must be one of {EXPORT_VIEWS}, got {kind!r}.")
    maps, layer, channel = view.features[0], view.layer, view.channel
    if kind == ExportView.GRID:
        return feature_grid_figure(
            maps,
            view.channels,
            title=f"{layer}: top {len(view.channels)} of {maps.shape[0]} by {view.sort_by}",
            shared_scale=view.shared_scale,
        )
    if kind == ExportView.CHANNEL:
        return feature_grid_figure(
            maps, [channel], title=f"{layer}, channel {channel}", figsize=(4.5, 4.8)
        )
    raise ValueError(f"view {kind!r} is a panel's: its panel draws it (`save_png`).")


STATIC_MIN_SIDE = 256
"""The least height of the static stand-in, in pixels."""


def grid_png(shown: np.ndarray, data: bytes, meta: dict, *, shared: bool) -> bytes:
    """PNG bytes of the input image `shown` (H, W, 3) beside the grid payload (`data`, `meta`)
    in viridis, laid out as the live view lays it out: the widget's static stand-in."""
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
    # so the stand-in is readable where widgets cannot run.
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


class StaticPictures:
    """`widget`'s static pictures: `save_png`'s figures, and the PNG its notebook output
    keeps beside the live widget (the first display waits for the first view)."""

    def __init__(self, widget: ExplorerTraits) -> None:
        self.w = widget
        self.displayed = False

    def figure(self, view: str) -> Figure:
        """The figure of `view` as shown now."""
        w = self.w
        with w._lock:
            features, shown = w._features, w._shown
            if features is None or shown is None:
                raise ValueError("nothing to save yet: the first result is still being computed.")
            snapshot = ExplorerView(
                features=features,
                shown=shown,
                layer=w.layer,
                channels=list(w._grid.get("channels", [])),
                channel=w.channel,
                sort_by=w.sort_by,
                shared_scale=w.color_scale == SHARED_SCALE,
            )
        return export_figure(snapshot, view)

    def png(self) -> bytes:
        """The input image beside the grid of the last complete view (viridis, as in the live
        view): the static stand-in where the widget cannot run."""
        w = self.w
        with w._lock:
            shown, meta, data = w._shown, w._outbox.meta("_grid"), w._outbox.data("_grid")
        if shown is None or not meta.get("n"):
            raise ValueError("nothing to show yet")
        return grid_png(shown, data, meta, shared=w.color_scale == SHARED_SCALE)

    def add_to(self, bundle: tuple[dict, dict] | None) -> tuple[dict, dict] | None:
        """The widget's mime bundle with the static PNG added (`_repr_mimebundle_`)."""
        if bundle is None:
            return None
        data, metadata = bundle
        if not self.displayed:  # one forward, so that an executed notebook keeps a picture;
            self.displayed = True  # never a panel's work, nor later displays
            self.w._viewed.wait(_FIRST_VIEW_TIMEOUT_S)
        with contextlib.suppress(Exception):  # the live widget works without the picture
            data["image/png"] = base64.b64encode(self.png()).decode("ascii")
        return data, metadata
