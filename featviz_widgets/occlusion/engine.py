"""Occlusion sensitivity of one unit (layer, position), for every channel in one sweep."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.cancel import Cancelled
from ..core.precision import rounding_unit
from .incremental import Box, IncrementalPlan

__all__ = [
    "OcclusionCancelled",
    "OcclusionResult",
    "gradient_map",
    "occlusion_sweep",
    "patch_starts",
    "placements_per_batch",
]

LayerFn = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) -> (B, C, h, w)


class OcclusionCancelled(Cancelled):
    """`should_stop()` asked an occlusion sweep to stop."""


def patch_starts(size: int, patch: int, stride: int) -> list[int]:
    """Patch offsets along one axis with the given stride, the last one flush with the border."""
    if size <= patch:
        return [0]
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def placements_per_batch(
    per_image: int, available: int, limit: int | None = None, cap: int = 256
) -> int:
    """Occluded images per batch on a GPU: as many as fit in half the memory a batch may take
    (the other half is margin for cuDNN's workspaces and the allocator's rounding), at least
    1 and at most `cap`.

    Args:
        per_image: bytes one occluded image adds at its peak.
        available: bytes the device can still provide (free device memory plus what PyTorch's
            caching allocator holds unused).
        limit: bytes the allocator may still hand out under
            `torch.cuda.set_per_process_memory_fraction`; None where no fraction is set.
        cap: the most placements per batch.
    """
    room = available if limit is None else min(available, limit)
    return int(min(cap, max(1, room // 2 // max(per_image, 1))))


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
    incremental: bool = False  # computed by an `IncrementalPlan`, not full forwards
    precision: str = "float32"  # a reduced one makes the map an approximation

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


def _masked_batch(image: torch.Tensor, boxes: list[Box], value: float) -> torch.Tensor:
    """One copy of `image` per ((top, bottom), (left, right)) box, that box set to `value`.

    Channels-last: convolutions run far faster on CPU in that layout (same values).
    """
    batch = image.repeat(len(boxes), 1, 1, 1)
    for k, ((top, bottom), (left, right)) in enumerate(boxes):
        batch[k, :, top:bottom, left:right] = value
    return batch.contiguous(memory_format=torch.channels_last)


def _coarse_first(rows: int, cols: int) -> list[tuple[int, int]]:
    """Every placement, those on a coarse grid first, so partial maps cover the whole image."""

    def level(index: tuple[int, int]) -> tuple[int, int, int]:
        i, j = index
        return (0 if i % 4 == 0 and j % 4 == 0 else 1 if i % 2 == 0 and j % 2 == 0 else 2, i, j)

    return sorted(((i, j) for i in range(rows) for j in range(cols)), key=level)


def _plan_agrees(
    plan: IncrementalPlan,
    layer_fn: LayerFn,
    image: torch.Tensor,
    traces: dict,
    boxes: dict,
    fill: float,
    position: tuple[int, int],
    precision: str,
) -> bool:
    """Whether `plan` reproduces full forwards at a few placements that reach the unit, to
    the rounding of `precision` (crops may pick other convolution algorithms)."""
    reaching = [index for index, trace in traces.items() if trace is not None]
    samples = list(dict.fromkeys(reaching[:: max(1, len(reaching) // 3)]))[:4]
    if not samples:
        return True
    masked = _masked_batch(image, [boxes[index] for index in samples], fill)
    expected = layer_fn(masked)[:, :, position[0], position[1]]
    try:
        found = plan.run([traces[index] for index in samples], fill)
    except Exception:  # a module that cannot run on crops: no plan, full forwards
        return False
    tolerance = 100 * rounding_unit(precision) * (1.0 + float(expected.abs().max()))
    return found.shape == expected.shape and bool((found - expected).abs().max() <= tolerance)


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
    plan: IncrementalPlan | None = None,
    precision: str = "float32",
) -> OcclusionResult:
    """Slide a `fill`-valued square patch over `image` (1, C, H, W) and record the unit.

    Every pixel is covered by at least one placement, `batch_size` placements at a time.
    With a `plan` (see `incremental`), each placement recomputes only what it changes and
    the unit needs, and placements that cannot reach the unit are not evaluated (their
    change is exactly 0); without one, each occluded image runs through `layer_fn`, which
    should stop the forward at the layer. `precision` ("float32", "tf32", "float16",
    "bfloat16") is for labelling and the plan's check; the caller runs the sweep under
    `precision_context(precision, device)`.
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
        precision=precision,
    )
    order = _coarse_first(len(row_starts), len(col_starts))
    boxes = {
        (i, j): ((top, top + patch_size), (left, left + patch_size))
        for i, top in enumerate(row_starts)
        for j, left in enumerate(col_starts)
    }
    if plan is not None:
        traces = {index: plan.trace(boxes[index]) for index in order}
        agrees = _plan_agrees(plan, layer_fn, image, traces, boxes, fill, position, precision)
        plan = plan if agrees else None
    if plan is not None:
        result.incremental = True
        # Placements that provably cannot change the unit: their change is exactly 0.
        for index, trace in traces.items():
            result.done[index] = trace is None
        order = [index for index in order if traces[index] is not None]
    for first in range(0, len(order), batch_size):
        if should_stop is not None and should_stop():
            raise OcclusionCancelled(f"occlusion of {layer_name!r} cancelled")
        chunk = order[first : first + batch_size]
        if plan is not None:
            units = plan.run([traces[index] for index in chunk], fill)
        else:
            masked = _masked_batch(image, [boxes[index] for index in chunk], fill)
            units = layer_fn(masked)[:, :, h, w]
        units = units.double().cpu()
        for k, index in enumerate(chunk):
            result.deltas[index] = (baseline - units[k]).numpy()
            result.done[index] = True
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
