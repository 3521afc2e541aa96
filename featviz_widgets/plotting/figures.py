"""Matplotlib figures of feature maps, layer comparisons and occlusion maps.

Figures are built with `matplotlib.figure.Figure`, not pyplot: pyplot never holds them, so
nothing leaks and Jupyter shows a returned figure exactly once.
"""

from __future__ import annotations

import math
import os
import sys
import warnings

import numpy as np
import torch
from matplotlib.figure import Figure

from ..core.stats import rank_channels
from ..core.validate import check_index

__all__ = [
    "MAX_FEATURE_MAPS",
    "feature_grid_figure",
    "grid_columns",
    "grid_shape",
    "layer_comparison_figure",
    "occlusion_figure",
    "show_figure",
    "top_maps_figure",
    "unit_centre",
]

MAX_FEATURE_MAPS = 256  # the most maps one grid shows (the widget's limit too)
MAX_FIGURE_WIDTH = 16.0  # inches: wider grids get smaller tiles
_TILE = 2.2  # inches per tile while the grid fits


def grid_columns(n: int) -> int:
    """Columns of an n-map grid: as square as it gets (figures, the live view, the static
    image: every grid is laid out by `grid_shape`)."""
    return max(1, math.ceil(math.sqrt(n)))


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of an n-map grid."""
    cols = grid_columns(n)
    return max(1, math.ceil(n / cols)), cols


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def show_figure(fig: Figure, show: bool | None) -> None:
    """Display `fig` if `show`, or, where `show` is None, when running in a notebook."""
    if show if show is not None else _in_notebook():
        from IPython.display import display

        display(fig)


def _finish(fig: Figure, save_path: str | os.PathLike | None) -> Figure:
    if save_path is not None:
        fig.savefig(save_path, dpi=120, bbox_inches="tight")
    return fig


def feature_grid_figure(
    maps: torch.Tensor,
    channels: list[int],
    *,
    title: str,
    shared_scale: bool = False,
    figsize: tuple[float, float] | None = None,
    cmap: str = "viridis",
    save_path: str | os.PathLike | None = None,
) -> Figure:
    """A square grid of the `channels` of one image's (C, H, W) `maps`, each titled with
    its channel index and mean activation; one colour scale and a colorbar if `shared_scale`.
    Tiles shrink (and their titles with them) to keep the figure `MAX_FIGURE_WIDTH` wide."""
    values = maps.detach().float().cpu()
    rows, cols = grid_shape(len(channels))
    colorbar = 0.8 if shared_scale else 0.0
    tile = min(_TILE, (MAX_FIGURE_WIDTH - colorbar) / cols)
    fontsize = max(4.0, 9.0 * tile / _TILE)
    fig = Figure(figsize=figsize or (tile * cols + colorbar, (tile + 0.1) * rows + 0.6))
    fig.suptitle(title, fontsize=11)
    axes = fig.subplots(rows, cols, squeeze=False)
    selected = values[channels]
    finite = selected[torch.isfinite(selected)]
    vmin = float(finite.min()) if shared_scale and finite.numel() else None
    vmax = float(finite.max()) if shared_scale and finite.numel() else None
    image = None
    for ax, channel in zip(axes.flat, channels):
        channel_map = values[channel].numpy()
        image = ax.imshow(channel_map, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        mean = float(np.nanmean(channel_map))
        ax.set_title(f"ch {channel}\nmean {mean:.3f}", fontsize=fontsize)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_size_inches()[1]))  # room for the title
    if shared_scale and image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="activation")
    return _finish(fig, save_path)


def top_maps_figure(
    maps: torch.Tensor,
    layer_name: str,
    num_features: int,
    sort_by: str,
    *,
    index: int,
    seed: int,
    shared_scale: bool,
    figsize: tuple[int, int] | None,
    cmap: str,
    save_path: str | os.PathLike | None,
) -> Figure:
    """`FeatureVisualizer.plot_feature_maps`: the grid of the `num_features` top channels of
    image `index` of `maps` (B, C, H, W) under `sort_by`, warning when fewer can be shown."""
    one = maps[check_index(index, maps.shape[0]) : index + 1]
    c, h, w = maps.shape[1:]
    shown = min(c, MAX_FEATURE_MAPS)
    if num_features > max(shown, 16):
        warnings.warn(
            f"`num_features`={num_features} is more than can be shown: {layer_name!r} has "
            f"{c} channels and a figure shows at most {MAX_FEATURE_MAPS} maps; showing "
            f"the top {shown}.",
            UserWarning,
            stacklevel=3,  # the caller of plot_feature_maps
        )
    channels = rank_channels(one, sort_by, seed)[: min(num_features, shown)]
    title = f"{layer_name}: top {len(channels)} of {c} channels by {sort_by} ({h}x{w})"
    if maps.shape[0] > 1:
        title += f", image {index} of {maps.shape[0]}"
    return feature_grid_figure(
        one[0],
        channels,
        title=title,
        shared_scale=shared_scale,
        figsize=figsize,
        cmap=cmap,
        save_path=save_path,
    )


def layer_comparison_figure(
    all_stats: dict[str, dict], *, save_path: str | os.PathLike | None = None
) -> Figure:
    """Four bar charts across layers: mean, std, sparsity and active channels."""
    names = list(all_stats)
    panels = [
        ("mean", "Mean activation"),
        ("std", "Standard deviation"),
        ("sparsity", "Sparsity (fraction of zeros)"),
        ("active_channels", "Active channels (mean > 0.01)"),
    ]
    fig = Figure(figsize=(max(9.0, 1.2 * len(names) + 5), 7.5))
    fig.suptitle("Layer comparison", fontsize=12)
    axes = fig.subplots(2, 2)
    positions = np.arange(len(names))
    for ax, (key, label) in zip(axes.flat, panels):
        values = [all_stats[name][key] for name in names]
        bars = ax.bar(positions, values, color="#4c72b0")
        if key == "active_channels":  # counts: "active/total", whole numbers
            totals = [all_stats[name]["num_channels"] for name in names]
            ax.bar(positions, totals, color="#4c72b0", alpha=0.2, label="channels")
            ax.legend(fontsize=8)
            ax.bar_label(bars, labels=[f"{a}/{t}" for a, t in zip(values, totals)], fontsize=8)
        else:
            ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
        ax.margins(y=0.15)
    fig.tight_layout()
    return _finish(fig, save_path)


def unit_centre(
    position: tuple[int, int], map_size: tuple[int, int], image_size: tuple[int, int]
) -> tuple[float, float]:
    """Input-pixel (y, x) at the centre of feature-map cell `position`."""
    return tuple(  # type: ignore[return-value]
        (p + 0.5) * image / size for p, size, image in zip(position, map_size, image_size)
    )


def occlusion_figure(
    image: np.ndarray,
    sensitivity: np.ndarray,
    *,
    centre: tuple[float, float],
    title: str,
    signed: bool = False,
    save_path: str | os.PathLike | None = None,
) -> Figure:
    """The input image, and the sensitivity map over it with a colorbar; both mark the unit."""
    fig = Figure(figsize=(10, 4.6))
    fig.suptitle(title, fontsize=11)
    left, right = fig.subplots(1, 2)
    left.imshow(image)
    left.set_title("Input (as the model sees it)", fontsize=10)
    right.imshow(image, alpha=0.45)
    if signed:
        limit = float(np.abs(sensitivity).max()) or 1.0
        heat = right.imshow(sensitivity, cmap="coolwarm", vmin=-limit, vmax=limit, alpha=0.7)
        label = "unit change when occluded (clean - occluded)"
    else:
        heat = right.imshow(sensitivity, cmap="hot", vmin=0.0, vmax=1.0, alpha=0.65)
        label = "sensitivity (|change| / max)"
    right.set_title("Occlusion sensitivity (hot = more influential)", fontsize=10)
    fig.colorbar(heat, ax=right, fraction=0.046, pad=0.04, label=label)
    for ax in (left, right):
        ax.plot(centre[1], centre[0], marker="+", color="cyan", markersize=14, mew=2.5)
        ax.axis("off")
    fig.tight_layout()
    return _finish(fig, save_path)
