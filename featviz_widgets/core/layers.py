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
    """The last of the shallowest-named layers whose maps are still >= 12 px on a side
    (`layer3` of a ResNet at 224 px), else the first layer."""
    spatial = [info.name for info in layers if min(info.shape[1:]) >= 12]
    if not spatial:
        return layers[0].name
    depth = min(name.count(".") for name in spatial)
    return [name for name in spatial if name.count(".") == depth][-1]


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
