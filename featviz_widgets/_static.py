"""Static pictures of the explorer's views: `save_png`'s figures and the PNG a notebook
keeps where the live widget cannot run. Grids are laid out by `_plotting.grid_shape`, as
in `FeatureVisualizer`'s figures and the live view."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from ._looks_for import looks_for_figure
from ._occlusion import OcclusionResult
from ._optimize import OptimizationResult
from ._payload import decode_maps
from ._plotting import feature_grid_figure, grid_shape, occlusion_figure, unit_centre
from ._protocol import EXPORT_VIEWS, ExportView

__all__ = ["ExplorerView", "examples_figure", "export_figure", "grid_png"]


@dataclass(frozen=True)
class ExplorerView:
    """What the explorer shows, taken at one moment."""

    features: torch.Tensor  # (B, C, H, W)
    shown: np.ndarray  # the input image as the model sees it, (H, W, 3)
    occlusion: OcclusionResult | None
    layer: str
    channels: list[int]  # the grid's
    channel: int
    sort_by: str
    shared_scale: bool
    examples: tuple[bytes, dict] | None = None  # the `_examples` payload and its metadata
    looks_for: OptimizationResult | None = None  # the "looks for" picture shown


def export_figure(view: ExplorerView, kind: str) -> Figure:
    """The figure of view `kind` ("grid", "channel", "occlusion", "examples" or "looks_for")."""
    if kind not in EXPORT_VIEWS:
        raise ValueError(f"`view` must be one of {EXPORT_VIEWS}, got {kind!r}.")
    if kind == ExportView.EXAMPLES:
        return examples_figure(*(view.examples or (b"", {})))
    if kind == ExportView.LOOKS_FOR:
        return looks_for_figure(view.looks_for, view.layer, view.channel)
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
    result = view.occlusion
    if result is None or result.layer_name != layer:
        raise ValueError("no occlusion map for this layer yet; set `position` first.")
    sensitivity = result.map(channel)
    centre = unit_centre(result.position, tuple(maps.shape[-2:]), sensitivity.shape)
    done = "" if result.complete else " (partial)"
    return occlusion_figure(
        view.shown,
        sensitivity,
        centre=centre,
        title=f"{layer}, channel {channel}, position {result.position}{done}",
    )


def examples_figure(data: bytes, meta: dict) -> Figure:
    """The dataset examples payload (`_views.examples_view`): each thumbnail titled with its
    rank, score and image, laid out as the live view lays it out."""
    n = int(meta.get("n", 0))
    if not n:
        raise ValueError(
            meta.get("note") or "no dataset examples yet; set `dataset` to scan a collection."
        )
    size = meta["size"]
    thumbs = np.frombuffer(data, dtype=np.uint8).reshape(n, size, size, 3)
    rows, cols = grid_shape(n)
    fig = Figure(figsize=(1.9 * cols, 2.1 * rows + 0.4))
    fig.suptitle(f"{meta['layer']}, channel {meta['channel']}: top {n} of {meta['images']} images")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(thumbs[i])
            score = meta["scores"][i]
            score_text = "–" if score is None else f"{score:.3g}"
            ax.set_title(f"#{i + 1}  {score_text}\n{meta['names'][i][:18]}", fontsize=8)
    return fig


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
