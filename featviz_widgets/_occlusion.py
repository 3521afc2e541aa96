"""Occlusion sensitivity of one unit (layer, position), for every channel in one sweep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "OcclusionCancelled",
    "OcclusionResult",
    "gradient_map",
    "occlusion_sweep",
    "patch_starts",
]

LayerFn = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) -> (B, C, h, w)


class OcclusionCancelled(Exception):
    """`should_stop()` asked an occlusion sweep to stop."""


def patch_starts(size: int, patch: int, stride: int) -> list[int]:
    """Patch offsets along one axis with the given stride, the last one flush with the border."""
    if size <= patch:
        return [0]
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def _cover(starts: list[int], patch: int, size: int) -> np.ndarray:
    """(len(starts), size) 0/1 matrix: which pixels each patch offset covers."""
    cover = np.zeros((len(starts), size), dtype=np.float64)
    for index, start in enumerate(starts):
        cover[index, start : start + patch] = 1.0
    return cover


def _average_over_patches(
    patch_values: np.ndarray, weights: np.ndarray, row_cover: np.ndarray, col_cover: np.ndarray
) -> np.ndarray:
    """(H, W) map: each pixel the weighted mean of the values of the patches covering it."""
    total = row_cover.T @ (patch_values * weights) @ col_cover
    count = row_cover.T @ weights @ col_cover
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def _absolute(signed_map: np.ndarray) -> np.ndarray:
    """|map| / max|map| (all zeros stay zeros), as float32."""
    result = np.abs(signed_map)
    peak = result.max()
    return (result / peak if peak > 0 else result).astype(np.float32)


@dataclass
class OcclusionResult:
    """The change of a unit's every channel for each patch placement.

    `deltas[i, j, c]` is `unit[c]` on the clean image minus `unit[c]` with the patch at
    (row_starts[i], col_starts[j]): positive where hiding the region lowers the unit.
    """

    layer_name: str
    position: tuple[int, int]
    patch_size: int
    stride: int
    baseline: np.ndarray  # (C,) unit values on the clean image
    deltas: np.ndarray  # (rows, cols, C)
    done: np.ndarray  # (rows, cols) bool: placements evaluated so far
    row_cover: np.ndarray = field(repr=False)  # (rows, H)
    col_cover: np.ndarray = field(repr=False)  # (cols, W)

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    @property
    def num_channels(self) -> int:
        return self.deltas.shape[2]

    def map(self, channel: int, signed: bool = False) -> np.ndarray:
        """(H, W) map of `channel`: overlapping patches averaged, over placements done so far.

        `signed=False` gives |map| / max|map| (the reference's convention), `signed=True` the
        raw signed change of the unit (positive: the region supports the activation).
        """
        if not 0 <= channel < self.num_channels:
            raise ValueError(f"`channel` {channel} is out of range (0 to {self.num_channels - 1}).")
        signed_map = _average_over_patches(
            self.deltas[:, :, channel], self.done.astype(np.float64), self.row_cover, self.col_cover
        )
        return signed_map.astype(np.float32) if signed else _absolute(signed_map)


def _masked_batch(
    image: torch.Tensor, regions: list[tuple[slice, slice]], value: float
) -> torch.Tensor:
    """One copy of `image` per (rows, cols) region, that region set to `value`.

    Channels-last: convolutions run far faster on CPU in that layout (same values).
    """
    batch = image.repeat(len(regions), 1, 1, 1)
    for k, (rows, cols) in enumerate(regions):
        batch[k, :, rows, cols] = value
    return batch.contiguous(memory_format=torch.channels_last)


def _coarse_first(rows: int, cols: int) -> list[tuple[int, int]]:
    """Every placement, those on a coarse grid first, so partial maps cover the whole image."""

    def level(index: tuple[int, int]) -> tuple[int, int, int]:
        i, j = index
        return (0 if i % 4 == 0 and j % 4 == 0 else 1 if i % 2 == 0 and j % 2 == 0 else 2, i, j)

    return sorted(((i, j) for i in range(rows) for j in range(cols)), key=level)


def _reaching_bands(
    layer_fn: LayerFn,
    image: torch.Tensor,
    position: tuple[int, int],
    row_starts: list[int],
    col_starts: list[int],
    patch: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Which patch rows and columns can change the unit at `position`, in any channel.

    A band of NaN across the whole image at a patch's rows (or columns) is a superset of
    the patch; NaN spreads through every arithmetic op, so a band that leaves the unit finite
    proves that no patch in it can change the unit. Global operations (squeeze-excitation,
    attention, pooling) spread the NaN everywhere, and then nothing is skipped.
    """
    h, w = position
    bands = [(True, top) for top in row_starts] + [(False, left) for left in col_starts]
    # Cheap first look: if even the outermost bands reach the unit, skipping cannot pay.
    outermost = [bands[0], bands[len(row_starts) - 1], bands[len(row_starts)], bands[-1]]

    def reached(selected: list[tuple[bool, int]]) -> list[bool]:
        flags: list[bool] = []
        for first in range(0, len(selected), batch_size):
            chunk = selected[first : first + batch_size]
            everything = slice(None)
            regions = [
                (slice(start, start + patch), everything)
                if is_row
                else (everything, slice(start, start + patch))
                for is_row, start in chunk
            ]
            units = layer_fn(_masked_batch(image, regions, float("nan")))[:, :, h, w]
            flags.extend((~torch.isfinite(units)).any(dim=1).tolist())
        return flags

    if all(reached(outermost)):
        return np.ones(len(row_starts), dtype=bool), np.ones(len(col_starts), dtype=bool)
    flags = np.array(reached(bands))
    return flags[: len(row_starts)], flags[len(row_starts) :]


def occlusion_sweep(
    layer_fn: LayerFn,
    image: torch.Tensor,
    *,
    layer_name: str,
    position: tuple[int, int],
    patch_size: int = 16,
    stride: int = 8,
    fill: float = 0.0,
    batch_size: int = 8,
    on_progress: Callable[[int, int, OcclusionResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    skip_unreachable: bool = True,
) -> OcclusionResult:
    """Slide a `fill`-valued square patch over `image` (1, C, H, W) and record the unit.

    Every pixel is covered by at least one placement. Occluded images are evaluated
    `batch_size` at a time through `layer_fn`, which should stop the forward at the layer.
    With `skip_unreachable`, placements outside the unit's receptive field (proved by NaN
    propagation, see `_reaching_bands`) are not evaluated: their change is exactly 0.
    """
    height, width = image.shape[-2:]
    row_starts = patch_starts(height, patch_size, stride)
    col_starts = patch_starts(width, patch_size, stride)
    h, w = position
    baseline = layer_fn(image)[0, :, h, w].double().cpu()
    result = OcclusionResult(
        layer_name=layer_name,
        position=position,
        patch_size=patch_size,
        stride=stride,
        baseline=baseline.numpy(),
        deltas=np.zeros((len(row_starts), len(col_starts), baseline.numel())),
        done=np.zeros((len(row_starts), len(col_starts)), dtype=bool),
        row_cover=_cover(row_starts, patch_size, height),
        col_cover=_cover(col_starts, patch_size, width),
    )
    order = _coarse_first(len(row_starts), len(col_starts))
    if skip_unreachable:
        rows, cols = _reaching_bands(
            layer_fn, image, position, row_starts, col_starts, patch_size, batch_size
        )
        # Placements that provably cannot change the unit: their change is exactly 0.
        result.done[~rows[:, None] | ~cols[None, :]] = True
        order = [(i, j) for i, j in order if rows[i] and cols[j]]
    for first in range(0, len(order), batch_size):
        if should_stop is not None and should_stop():
            raise OcclusionCancelled(f"occlusion of {layer_name!r} cancelled")
        chunk = order[first : first + batch_size]
        regions = [
            (
                slice(row_starts[i], row_starts[i] + patch_size),
                slice(col_starts[j], col_starts[j] + patch_size),
            )
            for i, j in chunk
        ]
        batch = _masked_batch(image, regions, fill)
        units = layer_fn(batch)[:, :, h, w].double().cpu()
        for k, (i, j) in enumerate(chunk):
            result.deltas[i, j] = (baseline - units[k]).numpy()
            result.done[i, j] = True
        if on_progress is not None:
            on_progress(first + len(chunk), len(order), result)
    if not order and on_progress is not None:
        on_progress(0, 0, result)
    return result


def gradient_map(
    layer_fn: LayerFn,
    image: torch.Tensor,
    *,
    channel: int,
    position: tuple[int, int],
    patch_size: int = 16,
    stride: int = 8,
    fill: float = 0.0,
    signed: bool = False,
) -> np.ndarray:
    """A fast approximation of one channel's occlusion map: one forward and one backward.

    To first order, hiding a patch changes the unit by the sum over the patch of
    gradient x (pixel - fill); those patch sums are averaged over overlaps like the exact map.
    Exact for models linear in the input, an approximation otherwise. `layer_fn` must keep
    the autograd graph to its input.
    """
    pixels = image.detach().clone().requires_grad_(True)
    h, w = position
    unit = layer_fn(pixels)[0, channel, h, w]
    if unit.requires_grad:
        (grad,) = torch.autograd.grad(unit, pixels, allow_unused=True, materialize_grads=True)
    else:  # the unit does not depend on the input at all
        grad = torch.zeros_like(pixels)
    contribution = (grad * (pixels.detach() - fill)).sum(dim=1)[0].double().cpu().numpy()
    height, width = image.shape[-2:]
    row_cover = _cover(patch_starts(height, patch_size, stride), patch_size, height)
    col_cover = _cover(patch_starts(width, patch_size, stride), patch_size, width)
    patch_sums = row_cover @ contribution @ col_cover.T
    signed_map = _average_over_patches(patch_sums, np.ones_like(patch_sums), row_cover, col_cover)
    return signed_map.astype(np.float32) if signed else _absolute(signed_map)
