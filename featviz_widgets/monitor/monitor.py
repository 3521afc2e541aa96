"""`FeatureMonitor`: layer statistics recorded during training, in bounded device memory."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..core.capture import resolve_layers
from ..core.hooks import Hooks
from ..core.layout import Format, LayoutTracker, ModelGeometry, first_tensor, to_nchw, token_grid
from ..core.stats import ACTIVE_THRESHOLD
from ..core.validate import check_positive_int
from . import plots

__all__ = ["STATISTICS", "FeatureMonitor"]

# The keys of `get_feature_statistics` that vary during training, in the order stored.
STATISTICS = ("mean", "std", "sparsity", "max", "min", "active_channels")


class _Ring:
    """`history` records of one layer: statistics (and histograms) on the layer's device, steps
    on the host; slot `count % history` is written next."""

    def __init__(self, history: int, device: torch.device | str, bins: int | None) -> None:
        dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
        self.stats = torch.zeros(history, len(STATISTICS), dtype=dtype, device=device)
        self.hist = None if bins is None else torch.zeros(history, bins, device=device)
        self.steps = np.zeros(history, dtype=np.int64)
        self.count = 0

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor | None]:
        """Slot indices oldest first, and copies of steps, statistics and histograms."""
        size = len(self.steps)
        order = (
            np.arange(self.count) if self.count <= size else (np.arange(size) + self.count) % size
        )
        hist = None if self.hist is None else self.hist.clone()
        return order, self.steps.copy(), self.stats.clone(), hist


class FeatureMonitor:
    """Records the statistics of `get_feature_statistics` for `layers` while a model trains.

    Every `every`-th forward of `model` in training mode (`model.training` True) each layer's
    mean, std (unbiased), sparsity (fraction exactly 0), max, min and active_channels (channels
    whose mean over batch and space > 0.01) are computed on the model's device, with no host
    sync, and written into a ring buffer of the last `history` records. Eval-mode forwards are
    neither recorded nor counted: `step` is the 0-based index of a training forward, and steps
    0, every, 2 * every, ... are recorded. Layer outputs in any timm layout (NCHW, NHWC, ViT
    tokens, pooled) are read over their channel axis, as `get_feature_statistics` reads them;
    layouts are decided once, during the first training forward. NaN or inf activations
    propagate into that record (`get_feature_statistics` leaves them out instead).

    Args:
        model: the model that is trained; its own forward calls are counted.
        layers: module names, e.g. ["layer1", "layer4"] or ["blocks.6"].
        every: record one training forward in `every`.
        history: records kept per layer; older ones are overwritten.
        histogram: also record a histogram of each layer's activations per record.
        bins: histogram bins.
        range: (low, high) of the histogram; values outside it are not counted.

    Example:
        >>> with FeatureMonitor(model, ["layer1", "layer4"], every=10) as monitor:
        ...     train(model)
        >>> monitor.history["layer4"]["sparsity"]  # numpy, oldest record first
        >>> monitor.plot()
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        every: int = 10,
        history: int = 1000,
        histogram: bool = False,
        *,
        bins: int = 40,
        range: tuple[float, float] = (0.0, 10.0),  # noqa: A002 (torch.histc's name)
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        for name, value in (("every", every), ("history", history), ("bins", bins)):
            check_positive_int(name, value)
        if not (len(range) == 2 and float(range[0]) < float(range[1])):
            raise ValueError(f"`range` must be (low, high) with low < high, got {range!r}.")
        self.model = getattr(model, "_orig_mod", model)  # torch.compile: hook the originals
        self.layers = list(dict.fromkeys(layers if not isinstance(layers, str) else [layers]))
        self._modules = resolve_layers(self.model, self.layers)
        self.every, self.size = every, history
        self.bins = bins if histogram else None
        self.range = (float(range[0]), float(range[1]))
        self.steps_seen = 0  # training forwards counted so far
        self.layouts: dict[str, Format] = {}
        self._rings: dict[str, _Ring] = {}
        self._hooks, self._tracker_hooks = Hooks(), Hooks()  # ours; the layout tracker's
        self._tracker: LayoutTracker | None = None
        self._pending: dict[str, torch.Tensor] = {}
        self._views: dict[str, tuple[int, tuple[int, ...]]] = {}  # prefix tokens, reduce dims
        self._recording: int | None = None  # the step being recorded, or None
        self._done: set[str] = set()
        self._warned_outside = False
        self._live: plots.LiveView | None = None
        self._lock = threading.Lock()  # between the hook's writes and reads of `history`

    # ------------------------------------------------------------------ hooks
    def attach(self) -> FeatureMonitor:
        """Register the hooks (again a no-op while attached)."""
        if self._hooks:
            return self
        try:
            self._hooks.forward_pre_hook(self.model, self._before)
            self._hooks.forward_hook(self.model, self._after)
            for name, module in self._modules.items():
                self._hooks.forward_hook(module, lambda m, i, o, _n=name: self._record(_n, o))
        except Exception:
            self.detach()
            raise
        if self._live is not None:
            self._live.start()
        return self

    def detach(self) -> None:
        """Remove every hook (and stop the live view); history stays readable. Idempotent."""
        try:
            self._hooks.remove()
        finally:
            self._recording = None
            self._drop_tracker()
            if self._live is not None:
                self._live.stop()

    def __enter__(self) -> FeatureMonitor:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def _before(self, _model: nn.Module, args: Any) -> None:
        """Count a training forward and decide whether it is recorded."""
        self._drop_tracker()  # left over from a first forward that raised
        if not self.model.training:
            self._recording = None
            return
        step, self.steps_seen = self.steps_seen, self.steps_seen + 1
        self._recording = step if step % self.every == 0 else None
        self._done.clear()
        batch = first_tensor(args)
        if self._recording is not None and len(self._views) < len(self.layers):
            if batch is None or batch.ndim != 4:  # no image: 4-D outputs read channels first
                self._input_hw = (1, 1)
                return
            self._input_hw = (int(batch.shape[-2]), int(batch.shape[-1]))
            self._tracker = LayoutTracker(batch)
            for name, module in self.model.named_modules():
                if name:  # the root's own hooks are registered already
                    observe = lambda m, i, o, _n=name: self._tracker.observe(_n, m, i, o)  # noqa: E731
                    self._tracker_hooks.forward_hook(module, observe)

    def _after(self, *_: object) -> None:
        """After the first recorded forward: layouts are decided, summarise what waited."""
        formats = {} if self._tracker is None else self._tracker.formats
        pending, self._pending = self._pending, {}
        self._drop_tracker()
        for name, output in pending.items():
            self._decide_view(name, output, formats.get(name))
            self._summarise(name, output)
        if self._recording is not None and self._live is not None:
            self._live.mark_dirty()

    def _drop_tracker(self) -> None:  # and forget the outputs that waited for its layouts
        self._tracker_hooks.remove()
        self._tracker = None
        self._pending.clear()

    def _record(self, name: str, output: Any) -> None:
        if self._recording is None or name in self._done:
            if self.steps_seen == 0 and self.model.training and not self._warned_outside:
                self._warned_outside = True  # a layer ran before any counted call of the model
                warnings.warn(
                    f"FeatureMonitor: {name!r} ran outside a call of the monitored model (for "
                    "example model.forward_features(x)); only training calls of the model "
                    "itself, model(x), are counted and recorded. Call the model, or monitor "
                    "the module you call.",
                    UserWarning,
                    stacklevel=2,
                )
            return  # not a recorded step, or a module called twice: the first call counts
        self._done.add(name)
        tensor = first_tensor(output)
        if tensor is None:
            return
        tensor = tensor.detach()
        if name not in self._views:
            self._pending[name] = tensor  # summarised once the forward has decided its layout
        else:
            self._summarise(name, tensor)

    def _decide_view(self, name: str, output: torch.Tensor, layout: Format | None) -> None:
        """How to read `name`'s output over its channel axis, decided once (see `to_nchw`)."""
        geometry, hw = ModelGeometry(self.model), self._input_hw
        _, fmt = to_nchw(
            output[:1], layer_name=name, layout=layout, geometry=geometry, batch_size=1, input_hw=hw
        )
        self.layouts[name] = fmt
        if fmt is Format.TOKENS:  # (B, N, C): prefix tokens left out, as `to_nchw` does
            self._views[name] = (token_grid(output.shape[1], geometry, hw)[0], (0, 1))
        else:  # NHWC; NCHW or unknown (read channels first); pooled (B, C)
            dims = (0, 1, 2) if fmt is Format.NHWC else (0, 2, 3) if output.ndim == 4 else (0,)
            self._views[name] = (0, dims)

    @torch.no_grad()
    def _summarise(self, name: str, x: torch.Tensor) -> None:
        """Write one record of `x`, on its device: a few reductions, no host sync."""
        prefix, dims = self._views[name]
        if prefix:
            x = x[:, prefix:]
        ring = self._rings.get(name)
        if ring is None:
            ring = self._rings[name] = _Ring(self.size, x.device, self.bins)
        acc = ring.stats.dtype
        n = x.numel()
        wide = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else None  # no overflow
        per_channel = x.sum(dim=dims, dtype=wide).to(acc)
        total = per_channel.sum()
        squares = torch.linalg.vector_norm(x, dtype=wide).to(acc).square()
        mean = total / n
        var = (squares - total * mean) / max(n - 1, 1)
        low, high = torch.aminmax(x)
        active = (per_channel / (n // per_channel.numel()) > ACTIVE_THRESHOLD).sum()
        zeros = n - torch.count_nonzero(x)
        values = (mean, var.clamp(min=0).sqrt(), zeros / n, high, low, active)
        stats = torch.stack([v.to(acc) for v in values])
        hist = None if ring.hist is None else torch.histc(x.float(), self.bins, *self.range)
        with self._lock:
            slot = ring.count % self.size
            ring.stats[slot] = stats
            if hist is not None:
                ring.hist[slot] = hist
            ring.steps[slot] = self._recording
            ring.count += 1

    # ------------------------------------------------------------------ reading
    @property
    def history(self) -> dict[str, dict[str, np.ndarray]]:
        """Per layer: "step" (int64) and each of `STATISTICS` (float64, active_channels int64),
        arrays of the records kept, oldest first; with `histogram`, "histogram" (records, bins)
        and "bin_edges" (bins + 1). Reading copies from the device (one sync per layer)."""
        with self._lock:  # copies on the device: the hook never waits on a transfer
            kept = {name: ring.snapshot() for name, ring in self._rings.items()}
        found = {}
        for name in self.layers:
            order, steps, stats, hist = kept.get(name) or _Ring(0, "cpu", self.bins).snapshot()
            stats = stats.cpu().numpy().astype(np.float64)[order]
            entry = {"step": steps[order], **{k: stats[:, i] for i, k in enumerate(STATISTICS)}}
            entry["active_channels"] = entry["active_channels"].astype(np.int64)
            if hist is not None:
                entry["histogram"] = hist.cpu().numpy()[order]
                entry["bin_edges"] = np.linspace(*self.range, self.bins + 1)
            found[name] = entry
        return found

    def save(self, path: str | os.PathLike) -> None:
        """Write `history` to `path` (numpy adds ".npz" to a name without it), arrays keyed
        "layer/statistic"; `load` reads it back."""
        arrays = {f"{layer}/{key}": v for layer, d in self.history.items() for key, v in d.items()}
        np.savez(path, **arrays)

    @staticmethod
    def load(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
        """A history written by `save`, in the structure of `history`."""
        found: dict[str, dict[str, np.ndarray]] = {}
        with np.load(path) as data:
            for key in data.files:
                layer, _, stat = key.rpartition("/")
                found.setdefault(layer, {})[stat] = data[key]
        return found

    # ------------------------------------------------------------------ views
    def plot(self, statistics: Sequence[str] = STATISTICS) -> Figure:
        """One figure: a panel per statistic, a line per layer, against the training step."""
        return plots.plot_history(self.history, statistics)

    def plot_histograms(self, layer: str) -> Figure:
        """The "colorful dimension" of `layer`: step on x, histogram bin on y, log counts."""
        if self.bins is None:
            raise ValueError("no histograms recorded: create the monitor with `histogram=True`.")
        if layer not in self.layers:
            raise ValueError(f"`layer` must be one of {self.layers}, got {layer!r}.")
        return plots.plot_histograms(self.history[layer], layer)

    def widget(self, interval: float = 0.5):
        """An `ipywidgets.Image` showing `plot()` as a PNG, redrawn from a background thread
        after new records, at most every `interval` seconds and at most 5% of the time."""
        if self._live is None:
            self._live = plots.LiveView(self.plot, interval)
        self._live.interval = float(interval)
        if self._hooks:
            self._live.start()
        return self._live.image
