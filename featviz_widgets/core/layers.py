"""Which layers to offer: the default layer list, the layer shown first, the comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

if TYPE_CHECKING:
    import torch

    from .features import FeatureStore

__all__ = [
    "LayerInfo",
    "default_compare",
    "default_layer",
    "is_default_layer",
    "probe_layers",
    "stage_layers",
]

MAX_COMPARE = 12
"""The most layers the explorer's default comparison chart shows."""
# Modules that only pass data through: left out of the default layer list.
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten)


@dataclass(frozen=True)
class LayerInfo:
    """A capturable layer: its name, module type, (C, H, W) map shape and source layout
    ("NCHW", "NHWC", "tokens", "pooled", or "unknown": read channels-first)."""

    name: str
    module_type: str
    shape: tuple[int, int, int]
    layout: str


def trunk_prefix(model: nn.Module) -> str:
    """A wrapper's backbone attribute (holding most parameters), else ''."""
    total = sum(p.numel() for p in model.parameters()) or 1
    for name, child in model.named_children():
        if sum(p.numel() for p in child.parameters()) > 0.8 * total and any(
            True for _ in child.children()
        ):
            return name
    return ""


def is_default_layer(name: str, module: nn.Module, trunk: str) -> bool:
    """A stage or block: a top-level module or a numbered child of a top-level container
    (below the wrapper's `trunk`, see `trunk_prefix`), and not a pass-through module."""
    if isinstance(module, _PASS_THROUGH):
        return False
    parts = name.split(".")
    if trunk and parts[0] == trunk:
        parts = parts[1:]
    return len(parts) == 1 or (len(parts) == 2 and parts[1].isdigit())


def probe_layers(features: FeatureStore, batch: torch.Tensor, include: str) -> list[LayerInfo]:
    """`FeatureVisualizer.list_layers`: the layers of `features`' model (every module for
    `include="all"`, else the default list) whose output `batch` shows as maps."""
    model = features.model
    trunk = trunk_prefix(model)
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if name and (include == "all" or is_default_layer(name, module, trunk))
    ]
    found = features.probe(batch, [name for name, _ in candidates])
    return [
        LayerInfo(name, type(module).__name__, tuple(f.maps.shape[1:]), f.layout.value)
        for name, module in candidates
        if (f := found.get(name)) is not None
    ]


def default_layer(layers: Sequence[LayerInfo]) -> str:
    """The deepest stage, in the list's (forward) order, whose maps are still >= 12 px on a
    side (`layer3` of a ResNet, `stages.2` of a ConvNeXt at 224 px), else the first layer.

    The stages are read from the names (see `stage_layers`), so a model whose stages are
    numbered children of a container (`stages.0`, `blocks.3`) is judged by those stages, and a
    ResNet stage by itself rather than by its blocks."""
    if not layers:
        raise ValueError("no layers to choose the default layer from.")
    spatial = [info.name for info in stage_layers(layers) if min(info.shape[1:]) >= 12]
    return spatial[-1] if spatial else layers[0].name


def stage_layers(layers: Sequence[LayerInfo]) -> list[LayerInfo]:
    """The stages among `layers`, in their order: the entries that no other entry contains
    (by name: `a` contains `a.b`), where an entry whose listed children have maps of more
    than one size is a container of stages (`stages` of a ConvNeXt, `blocks` of an
    EfficientNet, a wrapper's backbone) and stands for those children, in turn, while an
    entry whose children share one size is a stage and its children are its blocks."""
    names = {info.name for info in layers}

    def parent(name: str) -> str | None:
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            if (prefix := ".".join(parts[:cut])) in names:
                return prefix
        return None

    children: dict[str | None, list[LayerInfo]] = {}
    for info in layers:
        children.setdefault(parent(info.name), []).append(info)

    def expand(entries: list[LayerInfo]) -> list[LayerInfo]:
        stages: list[LayerInfo] = []
        for info in entries:
            inner = children.get(info.name, [])
            if len({child.shape[1:] for child in inner}) > 1:
                stages.extend(expand(inner))
            else:
                stages.append(info)
        return stages

    return expand(children.get(None, []))


def default_compare(layers: Sequence[LayerInfo]) -> list[str]:
    """Layers with spatial maps, shallowest first: the top-level stages when there are at
    least 4 of them, else one nesting level more, at most `MAX_COMPARE` spread evenly."""
    spatial = [info.name for info in layers if info.shape[1:] != (1, 1)] or [
        info.name for info in layers
    ]
    names: list[str] = []
    for depth in sorted({name.count(".") for name in spatial}):
        names = [name for name in spatial if name.count(".") <= depth]
        if len(names) >= 4:
            break
    return _spread(names, MAX_COMPARE)


def _spread(names: Sequence[str], count: int) -> list[str]:
    """At most `count` of `names`, evenly spaced, keeping the first and the last."""
    if len(names) <= count:
        return list(names)
    picks = np.linspace(0, len(names) - 1, count).round().astype(int)
    return [names[i] for i in dict.fromkeys(picks.tolist())]
