"""Exact incremental occlusion: recompute only what a patch changes and the unit needs.

A patch changes a small region of the input; each locally connected stage of the network
grows that region by its kernel's reach, and the unit at the target layer needs only a cone
of positions in each earlier stage. Between the two, most of every activation map is the
clean image's, so each stage runs on a small crop of its input (clean values with the
recomputed region pasted in) and only the intersection of "changed" and "needed" is kept.
This is the idea of Krypton (Nakandala et al., SIGMOD 2019), specialised to one unit.

The network is split into a chain of modules, each fed exactly the previous one's output,
discovered from one hooked forward. Each stage's reach is measured by NaN probes (NaN spreads
through every arithmetic dependency), and a plan is only used after it reproduced full
forwards on sample placements. Global operations (squeeze-excitation) measure as reaching
everywhere and are recomputed whole; token layouts (attention), arithmetic between modules
and anything the check rejects get `None`, and the caller keeps the full-forward sweep.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

from ._capture import _StopForward, preserved_model_state

__all__ = ["IncrementalPlan", "build_plan"]

Interval = tuple[int, int]  # half-open [start, stop) along one axis
Box = tuple[Interval, Interval]


Identity = tuple[int, int]  # (serial number of the tensor object, its version)


@dataclass
class _Call:
    """One module call. Tensors are identified by object and version: an in-place op (a
    residual `x += shortcut`, an in-place ReLU) keeps the object but bumps its version."""

    name: str
    module: nn.Module
    input: Identity | None  # the single positional tensor argument
    output: Identity | None = None
    shape: tuple[int, ...] = ()  # the output's


class _Identities:
    """Serial numbers for tensor objects, held weakly: no activation is kept alive, and a
    new tensor that reuses a dead one's `id` gets a new number."""

    def __init__(self) -> None:
        self._serials = WeakIdKeyDictionary()
        self._next = itertools.count()

    def __call__(self, value: object) -> Identity | None:
        if not isinstance(value, torch.Tensor):
            return None
        if value not in self._serials:
            self._serials[value] = next(self._next)
        return (self._serials[value], value._version)


def _record_calls(
    model: nn.Module, image: torch.Tensor, target: str, identity: _Identities
) -> list[_Call]:
    """Every module call of one forward, in call order, up to the target layer's output."""
    calls: list[_Call] = []
    pending: dict[int, list[_Call]] = {}
    handles = []
    owner = threading.get_ident()  # a forward on another thread meanwhile is not ours

    def before(name, module, args, kwargs):
        if threading.get_ident() != owner:
            return
        call = _Call(name, module, identity(args[0]) if len(args) == 1 and not kwargs else None)
        calls.append(call)
        pending.setdefault(id(module), []).append(call)

    def after(name, module, args, kwargs, output):
        if threading.get_ident() != owner:
            return
        call = pending[id(module)].pop()
        call.output = identity(output)
        if call.output is not None:
            call.shape = tuple(output.shape)
        if name == target:
            raise _StopForward

    try:
        for name, module in model.named_modules():
            if not name:
                continue
            handles.append(
                module.register_forward_pre_hook(
                    lambda m, a, k, _n=name: before(_n, m, a, k), with_kwargs=True
                )
            )
            handles.append(
                module.register_forward_hook(
                    lambda m, a, k, o, _n=name: after(_n, m, a, k, o), with_kwargs=True
                )
            )
        try:
            model(image)
        except _StopForward:
            pass
        except Exception:  # the caller's own forward reports real errors; no plan here
            return []
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _children(calls: list[_Call], parent: str) -> list[_Call]:
    depth = parent.count(".") + 1 if parent else 0
    prefix = parent + "." if parent else ""
    return [c for c in calls if c.name.startswith(prefix) and c.name.count(".") == depth]


def _split(calls: list[_Call], call: _Call) -> list[_Call]:
    """`call` as the finest chain of its children that reproduces it, or itself."""
    children = _children(calls, call.name)
    current = call.input
    for child in children:
        if child.input is None or child.input != current:
            return [call]
        current = child.output
    if not children or current != call.output:
        return [call]
    return [piece for child in children for piece in _split(calls, child)]


def _chain_to(
    calls: list[_Call], parent: str, current: Identity | None, target: str
) -> list[_Call]:
    """Module calls that, applied in turn to `current`, give the target's output; or []."""
    chain: list[_Call] = []
    for child in _children(calls, parent):
        if child.input is None or child.input != current:
            return []
        if child.name == target:
            return [*chain, *_split(calls, child)]
        if target.startswith(child.name + "."):
            inner = _chain_to(calls, child.name, current, target)
            return [*chain, *inner] if inner else []
        chain.extend(_split(calls, child))
        current = child.output
    return []


@dataclass
class _Stage:
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


def _reach(module: nn.Module, clean: torch.Tensor, out_hw: tuple[int, int]) -> _Stage | None:
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
        length = _crop_size([max(_PROBE_WINDOW, 8 * stride)], stride, size)
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
    return _Stage(module, tuple(strides), tuple(reach))  # type: ignore[arg-type]


def _intersect(a: Box, b: Box) -> Box | None:
    box = tuple((max(x[0], y[0]), min(x[1], y[1])) for x, y in zip(a, b))
    return None if any(start >= stop for start, stop in box) else box  # type: ignore[return-value]


def _crop_size(sizes: list[int], stride: int, limit: int) -> int:
    """One crop length that fits every sample's needed span at a stride-aligned origin.

    `limit - length` is a multiple of `stride`, so padding that depends on the input size
    (TensorFlow "same", ceil-mode pooling) pads a crop as it pads the whole map.
    """
    size = max(sizes) + stride - 1
    if size >= limit:
        return limit
    return limit - (limit - size) // stride * stride  # limit - size: a multiple of stride


def _origin(start: int, size: int, stride: int, limit: int) -> int:
    """A stride-aligned crop start whose crop of `size` (from `_crop_size`) holds the span
    beginning at `start`."""
    return min(start // stride * stride, limit - size)


@dataclass
class _Trace:
    """One placement's path: the input region it fills, then per stage the needed input
    span and the output region that is both changed and needed (absolute indices)."""

    filled: Box
    needed: list[Box]
    wanted: list[Box]


class IncrementalPlan:
    """Recomputes one unit (every channel) under patches from crops of clean activations."""

    def __init__(
        self,
        model: nn.Module,
        stages: list[_Stage],
        clean: list[torch.Tensor],
        position: tuple[int, int],
    ):
        self.model = model
        self.stages = stages
        # clean[k]: input of stage k. Channels-last: small convolutions run faster on CPU.
        self.clean = [c.contiguous(memory_format=torch.channels_last) for c in clean[:-1]]
        h, w = position
        self.needs: list[Box] = [((h, h + 1), (w, w + 1))]
        for stage in reversed(stages):
            self.needs.insert(0, stage.needed(self.needs[0]))

    def trace(self, patch: Box) -> _Trace | None:
        """The work `patch` needs; None when it provably cannot change the unit."""
        region = _intersect(patch, self.needs[0])
        if region is None:
            return None
        trace = _Trace(region, [], [])
        for k, stage in enumerate(self.stages):
            # Changes outside `region` cannot reach the unit: the needed cone excludes them.
            wanted = _intersect(stage.changed(region), self.needs[k + 1])
            if wanted is None:
                return None
            trace.needed.append(stage.needed(wanted))
            trace.wanted.append(wanted)
            region = wanted
        return trace

    def run(self, traces: list[_Trace], fill: float) -> torch.Tensor:
        """(B, C) unit values, one row per traced placement, from one batch per stage."""
        with preserved_model_state(self.model), torch.no_grad():
            return self._run(traces, fill)

    def _run(self, traces: list[_Trace], fill: float) -> torch.Tensor:
        values = [
            self.clean[0].new_full((*self.clean[0].shape[:2], b - a, d - c), fill)
            for (a, b), (c, d) in (t.filled for t in traces)
        ]
        regions = [t.filled for t in traces]
        for k, stage in enumerate(self.stages):
            source = self.clean[k]
            sizes, origins = [], []
            for axis in (0, 1):
                stride, limit = stage.strides[axis], source.shape[2 + axis]
                spans = [t.needed[k][axis] for t in traces]
                size = _crop_size([b - a for a, b in spans], stride, limit)
                sizes.append(size)
                origins.append([_origin(a, size, stride, limit) for a, _ in spans])
            crops = torch.cat(
                [source[:, :, y : y + sizes[0], x : x + sizes[1]] for y, x in zip(*origins)]
            )
            for i, (region, y, x) in enumerate(zip(regions, *origins)):
                # Recomputed values outside the crop are not needed by this stage.
                paste = _intersect(region, ((y, y + sizes[0]), (x, x + sizes[1])))
                if paste is not None:
                    (a, b), (c, d) = paste
                    (top, _), (left, _) = region
                    crops[i, :, a - y : b - y, c - x : d - x] = values[i][
                        0, :, a - top : b - top, c - left : d - left
                    ]
            output = stage.module(crops)
            sh, sw = stage.strides
            values = []
            for i, (trace, y, x) in enumerate(zip(traces, *origins)):
                (a, b), (c, d) = trace.wanted[k]
                oy, ox = y // sh, x // sw
                values.append(output[i : i + 1, :, a - oy : b - oy, c - ox : d - ox])
            regions = [t.wanted[k] for t in traces]
        return torch.cat(values)[:, :, 0, 0]


def build_plan(
    model: nn.Module,
    image: torch.Tensor,
    layer_name: str,
    position: tuple[int, int],
) -> IncrementalPlan | None:
    """A plan for the unit at `position` of `layer_name` (NCHW output) of `image` (1, C, H, W),
    or None where the model is not a chain of modules with measurable reach. Check a plan
    against full forwards (`occlusion_sweep` does) before trusting it."""
    with preserved_model_state(model), torch.no_grad():
        identity = _Identities()
        start = identity(image)
        calls = _record_calls(model, image, layer_name, identity)
        chain = _chain_to(calls, "", start, layer_name)
        if not chain or not all(len(call.shape) == 4 for call in chain):
            return None
        # The chain's activations, by running it: the recording kept none (memory).
        clean = [image]
        for call in chain:
            try:
                output = call.module(clean[-1].clone())  # a copy: in-place modules overwrite
            except Exception:  # a module that needs more than its recorded input
                return None
            if not isinstance(output, torch.Tensor) or tuple(output.shape) != call.shape:
                return None
            clean.append(output)
        stages = []
        for call, before in zip(chain, clean):
            stage = _reach(call.module, before, call.shape[-2:])
            if stage is None:
                return None
            stages.append(stage)
        return IncrementalPlan(model, stages, clean, position)
