"""The explorer's layer dropdown: which layers it lists (their entries: `protocol.layer_entry`)."""

from __future__ import annotations

from ..core.inputs import ImageInput
from ..core.layers import LayerInfo
from ..visualizer import FeatureVisualizer

__all__ = ["explorer_layers"]


def explorer_layers(
    viz: FeatureVisualizer, source: ImageInput, all_layers: bool, restrict: list[str] | None
) -> list[LayerInfo]:
    """The explorer's dropdown: every module if `all_layers`, else the `restrict` names (in
    their order) or the default list."""
    include = "all" if all_layers or restrict is not None else "default"
    infos = viz.list_layers(source, include=include)
    if restrict is not None and not all_layers:
        by_name = {info.name: info for info in infos}
        infos = [by_name[n] for n in restrict if n in by_name]
    return infos
