"""The exact input region each unit of a layer depends on (its receptive field, clipped to the
input), for every position of the layer's map at one input size.

Where `incremental` can split the model into a chain of local stages (convolutional layers,
NCHW), the cone it measures for occlusion is reused: each stage's `needed` box, from the unit
back to the input. Elsewhere (token layouts, arithmetic between modules), it is measured
directly: one probe per input row and one per input column, each a zero image with that row
or column set to NaN, run to the layer. NaN spreads through every arithmetic dependency, so a
unit's map value is NaN exactly when the unit depends on that row (column); the first and last
such rows and columns bound the region. Either way nothing is assumed about kernel sizes.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.features import FeatureStore
from ..core.layout import Format
from ..core.precision import exact_float32
from .incremental import build_plan

__all__ = ["receptive_boxes"]


def _from_plan(
    store: FeatureStore, probe: torch.Tensor, layer: str, hw: tuple[int, int]
) -> np.ndarray | None:
    """(4, h, w) boxes from `incremental`'s stage chain, or None where it has no plan."""
    plan = build_plan(store.model, probe, layer, (0, 0))
    if plan is None:
        return None
    height, width = hw
    rows = []
    for y in range(height):
        box = ((y, y + 1), (0, 1))
        for stage in reversed(plan.stages):
            box = stage.needed(box)
        rows.append(box[0])
    cols = []
    for x in range(width):
        box = ((0, 1), (x, x + 1))
        for stage in reversed(plan.stages):
            box = stage.needed(box)
        cols.append(box[1])
    boxes = np.zeros((4, height, width), dtype=np.int64)
    boxes[0], boxes[1] = (np.array([r[i] for r in rows])[:, None] for i in (0, 1))
    boxes[2], boxes[3] = (np.array([c[i] for c in cols])[None, :] for i in (0, 1))
    return boxes


def _bounds(hit: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last index along axis 0 where `hit` (N, h, w) is True; (0, 0) where
    never."""
    hit = hit.cpu().numpy()
    n = hit.shape[0]
    any_hit = hit.any(axis=0)
    first = np.where(any_hit, hit.argmax(axis=0), 0)
    last = np.where(any_hit, n - hit[::-1].argmax(axis=0), 0)
    return first, last


def _from_nan_probes(
    store: FeatureStore, probe: torch.Tensor, layer: str, batch_size: int
) -> np.ndarray:
    """(4, h, w) boxes measured with one NaN row or column per probe."""
    height, width = probe.shape[-2:]
    lines = [(0, r) for r in range(height)] + [(1, c) for c in range(width)]
    hits = []
    with exact_float32():
        for start in range(0, len(lines), batch_size):
            chunk = lines[start : start + batch_size]
            batch = probe.repeat(len(chunk), 1, 1, 1)
            for k, (axis, i) in enumerate(chunk):
                if axis == 0:
                    batch[k, :, i, :] = float("nan")
                else:
                    batch[k, :, :, i] = float("nan")
            maps = store.capture(batch, [layer])[layer].maps
            hits.append(torch.isnan(maps).any(dim=1).cpu())
    hit = torch.cat(hits)
    top, bottom = _bounds(hit[:height])
    left, right = _bounds(hit[height:])
    return np.stack([top, bottom, left, right]).astype(np.int64)


def receptive_boxes(
    store: FeatureStore,
    layer: str,
    input_shape: tuple[int, int, int],
    *,
    device: torch.device,
    dtype: torch.dtype,
    batch_size: int = 32,
    method: str = "auto",
) -> np.ndarray:
    """(4, h, w) int64: for the unit at (y, x) of `layer`'s maps, the input rows
    [top, bottom) and columns [left, right) it depends on, for inputs of `input_shape`
    (C, H, W). `method`: "plan" (`incremental`'s cone, None-safe only for NCHW chains),
    "nan" (row and column probes), or "auto" (the plan where there is one)."""
    probe = torch.zeros((1, *input_shape), device=device, dtype=dtype)
    with torch.no_grad():
        found = store.capture(probe, [layer])[layer]
    hw = tuple(found.maps.shape[-2:])
    if method in ("auto", "plan") and found.layout is Format.NCHW:
        with exact_float32():
            boxes = _from_plan(store, probe, layer, hw)
        if boxes is not None:
            return boxes
    if method == "plan":
        raise ValueError(f"no stage chain to {layer!r}: its cone cannot come from a plan.")
    return _from_nan_probes(store, probe, layer, batch_size)
