"""Normalise a layer's output, in any layout timm produces, to (B, C, H, W).

A 4-D output's layout (channels first or last) is decided by what the module does, seen during
the forward: the operation it performs (a convolution writes channels first, a linear layer
writes them last, a norm says which axis it normalises), the layout of the tensor it was given
or returned, the channel counts of its parameters and children, and, last, which axes follow the
input's aspect ratio. Where none of these tells, the layout is `Format.UNKNOWN`: such maps are
read channels-first, PyTorch's convention, and the user is told so.
"""

from __future__ import annotations

import math
import weakref
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Format",
    "LayoutError",
    "LayoutTracker",
    "LayoutWarning",
    "ModelGeometry",
    "first_tensor",
    "to_nchw",
    "token_grid",
]

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
    nn.PixelUnshuffle,
)
# Modules that act on the last axis: their 4-D output is channels-last by construction.
_CHANNELS_LAST = (nn.Linear,)


class Format(str, Enum):
    """Where a layer's output came from, before normalisation."""

    NCHW = "NCHW"
    NHWC = "NHWC"
    TOKENS = "tokens"  # (B, N, C): optional prefix tokens, then an H x W patch grid
    POOLED = "pooled"  # (B, C): shown as C maps of 1 x 1
    UNKNOWN = "unknown"  # 4-D, but nothing tells which axis holds the channels


class LayoutError(ValueError):
    """A layer output whose layout cannot be mapped to (B, C, H, W)."""


class LayoutWarning(UserWarning):
    """A 4-D layer output whose channel axis nothing in the model reveals (read channels-first)."""


class ModelGeometry:
    """What a model tells about its token layout: prefix tokens and patch grid.

    Read from timm's attributes (`num_prefix_tokens`, `patch_embed.grid_size`) on the model or
    the first wrapped module that has them.
    """

    def __init__(self, model: nn.Module) -> None:
        self.num_prefix_tokens = 0
        self.grid_size: tuple[int, int] | None = None
        for module in model.modules():
            if self.num_prefix_tokens == 0 and isinstance(
                getattr(module, "num_prefix_tokens", None), int
            ):
                self.num_prefix_tokens = module.num_prefix_tokens
            grid = getattr(getattr(module, "patch_embed", None), "grid_size", None)
            if self.grid_size is None and grid is not None:
                self.grid_size = (int(grid[0]), int(grid[1]))


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


def _by_channel_count(shape: torch.Size, counts: set[int]) -> Format | None:
    """The layout whose channel axis is the one (of axes 1 and 3) with a size in `counts`."""
    first, last = shape[1] in counts, shape[3] in counts
    if first == last:
        return None
    return Format.NCHW if first else Format.NHWC


def _normalised_axis(module: nn.Module, x: torch.Tensor | None, out: torch.Tensor) -> Format | None:
    """The layout of a norm's output from the axis it normalises: by the size of that axis,
    or, where channels and width have the same size, by recomputing the norm both ways."""
    shape = getattr(module, "normalized_shape", None)
    if not isinstance(shape, (tuple, list)) or len(shape) != 1:
        return None
    by_size = _by_channel_count(out.shape, {int(shape[0])})
    if by_size is not None or out.shape[1] != shape[0] or x is None or x.shape != out.shape:
        return by_size
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    eps = getattr(module, "eps", 1e-5)
    with torch.no_grad():
        values, expected = x.detach().float(), out.detach().float()
        w = None if weight is None else weight.detach().float()
        b = None if bias is None else bias.detach().float()
        last = F.layer_norm(values, tuple(shape), w, b, eps)
        first = F.layer_norm(values.permute(0, 2, 3, 1), tuple(shape), w, b, eps)
        tolerance = {"rtol": 1e-3, "atol": 1e-3}
        if torch.allclose(last, expected, **tolerance):
            return Format.NHWC
        if torch.allclose(first.permute(0, 3, 1, 2), expected, **tolerance):
            return Format.NCHW
    return None


def _own_channel_counts(module: nn.Module) -> set[int]:
    """Sizes of the module's own 1-D parameters and buffers (per-channel scales, shifts)."""
    tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    return {int(t.shape[0]) for t in tensors if t.ndim == 1}


def _aspect_matches(h: int, w: int, input_hw: tuple[int, int]) -> bool:
    """Whether an (h, w) map could be the input downsampled by one factor in both axes."""
    return abs(h * input_hw[1] - w * input_hw[0]) <= max(input_hw)


def _by_aspect(shape: torch.Size, input_hw: tuple[int, int]) -> Format | None:
    """The layout whose spatial axes, and only those, follow the input's aspect ratio."""
    _, a, b, c = shape
    first, last = _aspect_matches(b, c, input_hw), _aspect_matches(a, b, input_hw)
    if first == last:
        return None
    return Format.NCHW if first else Format.NHWC


class _Undecided:
    """A module call whose output layout nothing has told yet; it keeps its tensors alive so
    that a later consumer or parent of known layout can still tell by identity."""

    def __init__(self, name: str | None, x: torch.Tensor | None, out: torch.Tensor) -> None:
        self.name, self.out = name, out
        self.x = x if x is not None and x.shape == out.shape else None


class LayoutTracker:
    """Decides the layout of every module's 4-D output during one forward.

    Call `observe` from a forward hook on every module (children run before their parents, a
    producer before its consumers), then read `formats`. A shape-preserving module passes its
    layout on in both directions: from the tensor it receives, and back to that tensor's
    producer once its own layout is known (an activation inside a norm, say). Only weak
    references are kept to tensors of known layout, so they do not outlive the forward.
    """

    def __init__(self, model_input: torch.Tensor) -> None:
        self.input_hw = (int(model_input.shape[-2]), int(model_input.shape[-1]))
        self.formats: dict[str, Format] = {}
        self._tensors: dict[int, tuple[weakref.ref, Format]] = {}
        self._outputs: dict[nn.Module, tuple[torch.Size, str]] = {}  # first call: shape, name
        self._undecided: list[_Undecided] = []
        self._remember(model_input, Format.NCHW)

    def _remember(self, tensor: torch.Tensor, fmt: Format) -> None:
        self._tensors[id(tensor)] = (weakref.ref(tensor), fmt)

    def _known(self, tensor: torch.Tensor | None) -> Format | None:
        entry = self._tensors.get(id(tensor)) if tensor is not None else None
        if entry is None or entry[0]() is not tensor:
            return None
        return entry[1]

    def observe(self, name: str, module: nn.Module, inputs: Any, output: Any) -> None:
        """Record the layout of `module`'s output (the first call of each module names it)."""
        out = first_tensor(output)
        if out is None or out.ndim != 4:
            return
        x = first_tensor(inputs)
        fmt = self._decide(module, x, out)
        first_call = module not in self._outputs
        if first_call:
            self._outputs[module] = (out.shape, name)
            self.formats[name] = fmt
        if fmt is Format.UNKNOWN:
            self._undecided.append(_Undecided(name if first_call else None, x, out))
            return
        self._settle(out, fmt)
        if x is not None and x.shape == out.shape:
            self._settle(x, fmt)

    def _settle(self, tensor: torch.Tensor, fmt: Format) -> None:
        """`tensor` has layout `fmt`: so do the undecided calls that produced it, and, through
        shape-preserving calls, the tensors those received."""
        self._remember(tensor, fmt)
        todo = [tensor]
        while todo:
            current = todo.pop()
            for call in [c for c in self._undecided if c.out is current]:
                self._undecided.remove(call)
                if call.name is not None:
                    self.formats[call.name] = fmt
                if call.x is not None:
                    self._remember(call.x, fmt)
                    todo.append(call.x)

    def _decide(self, module: nn.Module, x: torch.Tensor | None, out: torch.Tensor) -> Format:
        if isinstance(module, _CHANNELS_FIRST):
            return Format.NCHW
        if isinstance(module, _CHANNELS_LAST):
            return Format.NHWC
        evidence = (
            lambda: self._known(out),  # a container returning a child's output, in-place ops
            lambda: _normalised_axis(module, x, out),
            lambda: self._known(x) if x is not None and x.shape == out.shape else None,
            lambda: _by_channel_count(out.shape, _own_channel_counts(module)),
            lambda: self._children_agree(module, out.shape),
            lambda: _by_aspect(out.shape, self.input_hw),
        )
        for rule in evidence:
            fmt = rule()
            if fmt is not None:
                return fmt
        return Format.UNKNOWN

    def _children_agree(self, module: nn.Module, shape: torch.Size) -> Format | None:
        """The one layout of the children whose outputs have this shape, if they agree."""
        found = {
            self.formats[self._outputs[child][1]]
            for child in module.children()
            if child in self._outputs and self._outputs[child][0] == shape
        }
        found.discard(Format.UNKNOWN)
        return found.pop() if len(found) == 1 else None


def token_grid(
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
    layout: Format | None,
    geometry: ModelGeometry,
    batch_size: int,
    input_hw: tuple[int, int],
) -> tuple[torch.Tensor, Format]:
    """A layer's raw output as a contiguous (B, C, H, W) tensor and the layout it had.

    `layout` is what a `LayoutTracker` decided for a 4-D output (None: not observed; such an
    output, like an unknown one, is read channels-first and reported as `Format.UNKNOWN`). The
    result keeps whatever autograd graph the output had (none under `no_grad`)."""
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
        # Unknown: read channels first, PyTorch's convention; callers warn about it.
        fmt = layout if layout in (Format.NCHW, Format.NHWC) else Format.UNKNOWN
        maps = tensor.permute(0, 3, 1, 2) if fmt is Format.NHWC else tensor
    elif tensor.ndim == 3:
        grid = token_grid(tensor.shape[1], geometry, input_hw)
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
