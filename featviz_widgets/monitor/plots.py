"""Figures of a `FeatureMonitor`'s history, and its live PNG view."""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

__all__ = ["LiveView", "plot_histograms", "plot_history"]

_TITLES = {
    "mean": "mean",
    "std": "std",
    "sparsity": "sparsity (fraction = 0)",
    "max": "max",
    "min": "min",
    "active_channels": "active channels (mean > 0.01)",
}


def plot_history(history: Mapping[str, Mapping[str, np.ndarray]], statistics: Sequence[str]):
    """A grid of panels, one per statistic, with a line per layer against the step."""
    unknown = [s for s in statistics if s not in _TITLES]
    if unknown or not statistics:
        raise ValueError(f"`statistics` must be some of {tuple(_TITLES)}, got {statistics!r}.")
    cols = min(3, len(statistics))
    rows = math.ceil(len(statistics) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows))  # a fixed layout: constrained doubles the cost
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.1, top=0.93, wspace=0.25, hspace=0.45)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, key in zip(axes, statistics):
        for layer, entry in history.items():
            ax.plot(
                entry["step"],
                entry[key],
                label=layer,
                marker="." if len(entry["step"]) < 30 else None,
            )
        ax.set_title(_TITLES[key], fontsize=10)
        ax.set_xlabel("training step")
    for ax in axes[len(statistics) :]:
        ax.set_visible(False)
    if history:
        axes[0].legend(fontsize=8)
    return fig


def plot_histograms(entry: Mapping[str, np.ndarray], layer: str):
    """fastai's "colorful dimension": records on x, histogram bins on y, colour = log count."""
    counts, edges, steps = entry["histogram"], entry["bin_edges"], entry["step"]
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    if len(steps):
        extent = (steps[0], steps[-1] + max(1, steps[-1] - steps[0]) / max(1, len(steps) - 1))
        image = ax.imshow(
            counts.T + 1,  # +1: empty bins stay on the log scale
            origin="lower",
            aspect="auto",
            interpolation="nearest",
            extent=(*extent, edges[0], edges[-1]),
            norm=LogNorm(),
            cmap="viridis",
        )
        fig.colorbar(image, ax=ax, label="count + 1 (log)")
    ax.set_xlabel("training step")
    ax.set_ylabel("activation")
    ax.set_title(f"{layer}: activation histogram over training", fontsize=10)
    return fig


def png(fig: Figure) -> bytes:
    """`fig` as PNG bytes (Agg, no pyplot)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()


class LiveView:
    """An `ipywidgets.Image` of `plot()` (a monitor's figure), redrawn on a background thread.

    The training thread only sets an event (`mark_dirty`). The thread redraws at most every
    `interval` seconds, and waits 19 times as long as the last redraw took before the next, so
    drawing takes at most 5% of the wall time whatever the figure costs.
    """

    def __init__(self, plot: Callable[[], Figure], interval: float) -> None:
        import ipywidgets

        self.plot, self.interval = plot, float(interval)
        self.image = ipywidgets.Image(format="png", value=png(plot()))
        self.redraws, self.error = 0, None
        self._dirty, self._stopped = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        """Start the redrawing thread (a no-op while it runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopped.clear()
        self._thread = threading.Thread(target=self._run, name="FeatureMonitor-view", daemon=True)
        self._thread.start()

    def mark_dirty(self) -> None:
        """New records: redraw when the throttle allows."""
        self._dirty.set()

    def redraw(self) -> None:
        """Draw the current history into the image now."""
        self.image.value = png(self.plot())
        self.redraws += 1

    def _run(self) -> None:
        next_time = 0.0
        while True:
            self._dirty.wait()
            if self._stopped.wait(max(0.0, next_time - time.monotonic())):
                return
            self._dirty.clear()
            start = time.monotonic()
            try:
                self.redraw()
            except Exception as exc:  # kept for the user; the next record tries again
                self.error = exc
            cost = time.monotonic() - start
            next_time = time.monotonic() + max(self.interval, 19 * cost)

    def stop(self) -> None:
        """End the thread after a last redraw of what was recorded."""
        if self._thread is None or self._stopped.is_set():
            return
        self._stopped.set()
        self._dirty.set()
        self._thread.join(timeout=5)
        self.redraw()
