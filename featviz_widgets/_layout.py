"""Normalise a layer's output, in any layout timm produces, to (B, C, H, W)."""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import torch
from torch import nn

__all__ = ["Format", "LayoutError", "ModelGeometry", "to_nchw"]

# Modules whose 4-D output is channels-first by construction.
_CHANNELS_FIRST = (
    nn.Conv2d,
    nn.ConvTranspose2d,
    nn.BatchNorm2d,
    nn.InstanceNorm2d,
    nn.GroupNorm,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Upsample,
    nn.PixelShuffle,
)


class Format(str, Enum):
    """Where a layer's output came from, before normalisation."""

    NCHW = "NCHW"
    NHWC = "NHWC"
    TOKENS = "tokens"  # (B, N, C): optional prefix tokens, then an H x W patch grid
    POOLED = "pooled"  # (B, C): shown as C maps of 1 x 1


class LayoutError(ValueError):
    """A layer output whose layout cannot be mapped to (B, C, H, W)."""


class ModelGeometry:
    """What a model tells about its token layout: prefix tokens and patch grid.

    Read from timm's attributes (`num_prefix_tokens`, `patch_embed.grid_size`, `output_fmt`)
    on the model or the first wrapped module that has them.
    """

    def __init__(self, model: nn.Module) -> None:
        self.num_prefix_tokens = 0
        self.grid_size: tuple[int, int] | None = None
        self.output_fmt: str | None = None
        for module in model.modules():
            if self.num_prefix_tokens == 0 and isinstance(
                getattr(module, "num_prefix_tokens", None), int
            ):
                self.num_prefix_tokens = module.num_prefix_tokens
            grid = getattr(getattr(module, "patch_embed", None), "grid_size", None)
            if self.grid_size is None and grid is not None:
                self.grid_size = (int(grid[0]), int(grid[1]))
            fmt = getattr(module, "output_fmt", None)
            if self.output_fmt is None and fmt is not None:
                self.output_fmt = str(getattr(fmt, "value", fmt))


def first_tensor(output: Any) -> torch.Tensor | None:
    """The output itself, or the first tensor inside a tuple, list or dict output."""
    if isinstance(output, torch.Tensor):
        return output
    values = output.values() if isinstance(output, dict) else output
    if isinstance(values, (tuple, list)) or isinstance(output, dict):
        for item in values:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def _aspect_matches(h: int, w: int, input_hw: tuple[int, int]) -> bool:
    """Whether an (h, w) map could be the input downsampled by one factor in both axes."""
    return abs(h * input_hw[1] - w * input_hw[0]) <= max(input_hw)


def _guess_4d(
    out: torch.Tensor, module: nn.Module, geometry: ModelGeometry, input_hw: tuple[int, int]
) -> Format:
    if isinstance(module, _CHANNELS_FIRST):
        return Format.NCHW
    if isinstance(module, nn.LayerNorm):
        return Format.NHWC
    _, a, b, c = out.shape
    first = _aspect_matches(b, c, input_hw) and a != b
    last = _aspect_matches(a, b, input_hw) and c != b
    if first != last:
        return Format.NCHW if first else Format.NHWC
    return Format.NHWC if geometry.output_fmt == "NHWC" else Format.NCHW


def _token_grid(
    n_tokens: int, geometry: ModelGeometry, input_hw: tuple[int, int]
) -> tuple[int, int, int] | None:
    """(prefix, h, w) such that n_tokens = prefix + h * w, or None.

    The model's own patch grid wins; without one, the factorisation closest to the input's
    aspect ratio, trying the model's prefix count, then none, then one class token.
    """
    prefixes = list(dict.fromkeys((geometry.num_prefix_tokens, 0, 1)))
    if geometry.grid_size:
        grid_h, grid_w = geometry.grid_size
        for prefix in prefixes:
            if n_tokens - prefix == grid_h * grid_w:
                return prefix, grid_h, grid_w
    ratio = input_hw[0] / input_hw[1]
    best = None
    for prefix in prefixes:
        patches = n_tokens - prefix
        for h in range(1, math.isqrt(max(patches, 0)) + 1):
            if patches % h:
                continue
            for hh, ww in ((h, patches // h), (patches // h, h)):
                score = abs(math.log(hh / ww / ratio))
                if best is None or score < best[0] - 1e-9:
                    best = (score, prefix, hh, ww)
    if best is not None and best[0] < 0.2:
        return best[1], best[2], best[3]
    return None


def to_nchw(
    output: Any,
    *,
    layer_name: str,
    module: nn.Module,
    geometry: ModelGeometry,
    batch_size: int,
    input_hw: tuple[int, int],
) -> tuple[torch.Tensor, Format]:
    """A layer's raw output as a contiguous (B, C, H, W) tensor and the layout it had.

    The result keeps whatever autograd graph the output had (none under `no_grad`)."""
    tensor = first_tensor(output)
    if tensor is None:
        raise LayoutError(
            f"layer {layer_name!r} returned {type(output).__name__} with no tensor in it; "
            "pick a layer that outputs a feature tensor."
        )
    shape = tuple(tensor.shape)
    if tensor.ndim < 2 or tensor.shape[0] != batch_size:
        raise LayoutError(
            f"layer {layer_name!r} outputs shape {shape}, whose first axis is not the batch "
            f"of {batch_size}; it cannot be shown as (B, C, H, W) maps (windowed attention "
            "and reshaped internals do this). Pick the enclosing block instead."
        )
    if tensor.ndim == 4:
        fmt = _guess_4d(tensor, module, geometry, input_hw)
        maps = tensor if fmt is Format.NCHW else tensor.permute(0, 3, 1, 2)
    elif tensor.ndim == 3:
        grid = _token_grid(tensor.shape[1], geometry, input_hw)
        if grid is None:
            raise LayoutError(
                f"layer {layer_name!r} outputs shape {shape}: {tensor.shape[1]} tokens do not "
                f"form a patch grid (after {geometry.num_prefix_tokens} prefix tokens)."
            )
        prefix, h, w = grid
        fmt = Format.TOKENS
        maps = tensor[:, prefix:].reshape(batch_size, h, w, -1).permute(0, 3, 1, 2)
    elif tensor.ndim == 2:
        fmt = Format.POOLED
        maps = tensor[:, :, None, None]
    else:
        raise LayoutError(
            f"layer {layer_name!r} outputs shape {shape}; only 2-D (B, C), 3-D tokens and "
            "4-D NCHW / NHWC outputs can be shown as maps."
        )
    return maps.contiguous(), fmt
