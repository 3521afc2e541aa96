"""The figure of a model comparison: mean activation and sparsity against relative depth."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from .figures import _finish

__all__ = ["depth_profile_figure"]


def depth_profile_figure(
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    *,
    save_path: str | os.PathLike | None = None,
) -> Figure:
    """Two axes, mean activation and sparsity against relative depth, with one line per
    model of `series` (name -> [(depth, mean, sparsity), ...], shallowest first)."""
    fig = Figure(figsize=(12, 4.6))
    fig.suptitle("Model comparison: features against relative depth", fontsize=12)
    mean_ax, sparsity_ax = fig.subplots(1, 2)
    for name, points in series.items():
        depths = [p[0] for p in points]
        mean_ax.plot(depths, [p[1] for p in points], marker="o", markersize=3, label=name)
        sparsity_ax.plot(depths, [p[2] for p in points], marker="o", markersize=3, label=name)
    for ax, label in ((mean_ax, "mean activation"), (sparsity_ax, "sparsity (fraction of 0s)")):
        ax.set_xlabel("relative depth (0 = first layer, 1 = last)")
        ax.set_ylabel(label)
        ax.set_xlim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    sparsity_ax.set_ylim(-0.02, 1.02)
    mean_ax.set_title("Mean activation", fontsize=10)
    sparsity_ax.set_title("Sparsity", fontsize=10)
    fig.tight_layout()
    return _finish(fig, save_path)
