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

import torch
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

from ..core.capture import preserved_model_state
from ..core.hooks import Hooks, StopForward, run_until_stopped
from .stage_reach import Box, Stage, crop_origin, crop_size, intersect, measure_reach

__all__ = ["Box", "IncrementalPlan", "build_plan"]

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
            raise StopForward

    with Hooks() as hooks:
        for name, module in model.named_modules():
            if not name:
                continue
            hooks.forward_pre_hook(
                module, lambda m, a, k, _n=name: before(_n, m, a, k), with_kwargs=True
            )
            hooks.forward_hook(
                module, lambda m, a, k, o, _n=name: after(_n, m, a, k, o), with_kwargs=True
            )
        try:
            run_until_stopped(model, image)
        except Exception:  # the caller's own forward reports real errors; no plan here
            return []
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
        stages: list[Stage],
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
        region = intersect(patch, self.needs[0])
        if region is None:
            return None
        trace = _Trace(region, [], [])
        for k, stage in enumerate(self.stages):
            # Changes outside `region` cannot reach the unit: the needed cone excludes them.
            wanted = intersect(stage.changed(region), self.needs[k + 1])
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
                size = crop_size([b - a for a, b in spans], stride, limit)
                sizes.append(size)
                origins.append([crop_origin(a, size, stride, limit) for a, _ in spans])
            crops = torch.cat(
                [source[:, :, y : y + sizes[0], x : x + sizes[1]] for y, x in zip(*origins)]
            )
            for i, (region, y, x) in enumerate(zip(regions, *origins)):
                # Recomputed values outside the crop are not needed by this stage.
                paste = intersect(region, ((y, y + sizes[0]), (x, x + sizes[1])))
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
            stage = measure_reach(call.module, before, call.shape[-2:])
            if stage is None:
                return None
            stages.append(stage)
        return IncrementalPlan(model, stages, clean, position)
