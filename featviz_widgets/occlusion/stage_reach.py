"""Where each input position of a locally connected stage reaches in its output, measured
with NaN probes (NaN spreads through every arithmetic dependency), and the box arithmetic
on it that the incremental occlusion plan (`incremental`) needs: what a changed input box
can change, what an output box needs, and stride-aligned crops that pad like the full map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["Box", "Stage", "crop_origin", "crop_size", "intersect", "measure_reach"]

Interval = tuple[int, int]  # half-open [start, stop) along one axis
Box = tuple[Interval, Interval]


@dataclass
class Stage:
    """One module of the chain, with where each input row/column reaches in its output."""

    module: nn.Module
    strides: tuple[int, int]
    # reach[axis][0][i] .. reach[axis][1][i]: output indices (inclusive) input index i changes
    reach: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

    def changed(self, box: Box) -> Box:
        """Output box that inputs changed in `box` can change."""
        return tuple(  # type: ignore[return-value]
            (int(low[a:b].min()), int(high[a:b].max()) + 1)
            for (a, b), (low, high) in zip(box, self.reach)
        )

    def needed(self, box: Box) -> Box:
        """Input box that the outputs in `box` depend on."""
        result = []
        for (a, b), (low, high) in zip(box, self.reach):
            hits = np.flatnonzero((low < b) & (high >= a))
            result.append((int(hits[0]), int(hits[-1]) + 1))
        return tuple(result)  # type: ignore[return-value]


_PROBE_WINDOW = 48  # input positions per axis that NaN probes run on (at least 8 strides)


def _axis_reach(
    spans: list[list[tuple[int, int] | None]],
    stride: int,
    window: tuple[int, int],
    full: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray] | None:
    """Reach arrays of one axis, over the full map, from probe spans `spans[group][residue]`
    measured on a stride-aligned window; groups at the window's start, middle and end.
    `window` and `full` are (input size, output size). None if the spans contradict shift
    invariance.

    A span touching the window's output border may be clipped; that side is then taken from
    the other groups, or, if every group touches it, assumed to reach the border from
    anywhere (never too small: an unneeded recomputation costs time, a missed one exactness).
    """
    (size, out), (full_size, full_out) = window, full
    firsts = [0, size // 2 // stride * stride, (size // stride - 1) * stride]
    low, high = [], []
    for residue in range(stride):
        seen = [(g[residue], first // stride) for g, first in zip(spans, firsts)]
        if all(span is None for span, _ in seen):
            low.append(full_out)  # an input no output reads (a strided 1x1 convolution's gaps)
            high.append(-1)
            continue
        if any(span is None for span, _ in seen):
            return None
        lows = {span[0] - step for span, step in seen if span[0] > 0}
        highs = {span[1] - step for span, step in seen if span[1] < out - 1}
        if len(lows) > 1 or len(highs) > 1:
            return None
        low.append(lows.pop() if lows else -full_size)
        high.append(highs.pop() if highs else 2 * full_size)
    # Both offsets are relative to (input index // stride), so they hold on the full map.
    steps, residues = np.divmod(np.arange(full_size), stride)
    return (
        np.clip(np.array(low)[residues] + steps, 0, full_out),
        np.clip(np.array(high)[residues] + steps, -1, full_out - 1),
    )


def measure_reach(module: nn.Module, clean: torch.Tensor, out_hw: tuple[int, int]) -> Stage | None:
    """Measure a stage's reach with NaN probes; None if it is not local and shift-invariant.

    The probes run on a stride-aligned window of the clean input, so a 1024 px image costs
    no more than a small one; a reach wider than the window is taken as global (exact, slow).
    """
    in_hw = tuple(clean.shape[-2:])
    strides, windows = [], []
    for size, out in zip(in_hw, out_hw):
        if out > size or out < 1:
            return None
        stride = max(1, round(size / out))
        # size - length a multiple of the stride, like every crop: size-dependent ("same")
        # padding then pads the window as it pads the full map.
        length = crop_size([max(_PROBE_WINDOW, 8 * stride)], stride, size)
        start = (size - length) // 2 // stride * stride
        strides.append(stride)
        windows.append(slice(start, start + length))
    crop = clean[:, :, windows[0], windows[1]]
    lengths = crop.shape[-2:]
    # One NaN point per probe serves both axes (the footprint's row band and column band):
    # 3 groups (start, middle, end of the window) x every residue modulo the stride.
    firsts = [
        [0, size // 2 // stride * stride, (size // stride - 1) * stride]
        for size, stride in zip(lengths, strides)
    ]
    probes = [(g, r) for g in range(3) for r in range(max(strides))]
    batch = crop.repeat(len(probes), 1, 1, 1)
    for k, (g, r) in enumerate(probes):
        batch[k, :, firsts[0][g] + r % strides[0], firsts[1][g] + r % strides[1]] = float("nan")
    try:
        output = module(batch)
    except Exception:  # a module that cannot run on a batch of probes: not for this plan
        return None
    whole = tuple(lengths) == in_hw
    if not isinstance(output, torch.Tensor) or output.ndim != 4 or min(output.shape[-2:]) < 1:
        return None
    if whole and tuple(output.shape[-2:]) != out_hw:
        return None
    footprint = ~torch.isfinite(output).flatten(1, -3).all(dim=1)  # (probes, h, w)
    reach = []
    for axis in (0, 1):
        stride = strides[axis]
        groups: list[list[tuple[int, int] | None]] = [[], [], []]
        for k, (g, r) in enumerate(probes):
            if r >= stride:
                continue  # the same residue again, probed for the other axis' stride
            hit = torch.nonzero(footprint[k].any(dim=1 - axis)).flatten().tolist()
            if hit and len(hit) != hit[-1] - hit[0] + 1:
                return None  # not one band: not a local operation
            groups[g].append((hit[0], hit[-1]) if hit else None)
        window = (lengths[axis], output.shape[2 + axis])
        found = _axis_reach(groups, stride, window, (in_hw[axis], out_hw[axis]))
        if found is None:
            return None
        reach.append(found)
    return Stage(module, tuple(strides), tuple(reach))  # type: ignore[arg-type]


def intersect(a: Box, b: Box) -> Box | None:
    box = tuple((max(x[0], y[0]), min(x[1], y[1])) for x, y in zip(a, b))
    return None if any(start >= stop for start, stop in box) else box  # type: ignore[return-value]


def crop_size(sizes: list[int], stride: int, limit: int) -> int:
    """One crop length that fits every sample's needed span at a stride-aligned origin.

    `limit - length` is a multiple of `stride`, so padding that depends on the input size
    (TensorFlow "same", ceil-mode pooling) pads a crop as it pads the whole map.
    """
    size = max(sizes) + stride - 1
    if size >= limit:
        return limit
    return limit - (limit - size) // stride * stride  # limit - size: a multiple of stride


def crop_origin(start: int, size: int, stride: int, limit: int) -> int:
    """A stride-aligned crop start whose crop of `size` (from `_crop_size`) holds the span
    beginning at `start`."""
    return min(start // stride * stride, limit - size)
