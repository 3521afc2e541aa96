"""The explorer's synced traits, with their documentation, and the checks of their values.

`explorer_traits(panels)` makes `FeatureExplorer`'s base class for a panel registry: the core's
traits (`CoreTraits`), and each panel's payload trait, `_<name>`, and own traits. The checks
(`CHECKS`) are functions of the value and of what the explorer shows (`CheckFacts`): they read
no explorer attribute, the explorer hands them the facts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anywidget
import traitlets as t
from torch import nn

from ..core.capture import resolve_layers
from ..core.inputs import ImageInput
from ..core.validate import channel_error, position_error
from .protocol import COLOR_SCALES, JobState, PanelParts, contract, sort_modes
from .request import ViewRequest

__all__ = ["CHECKS", "CheckFacts", "CoreTraits", "explorer_traits"]


class CoreTraits(anywidget.AnyWidget):
    """`FeatureExplorer`'s own synced traits (the panels add theirs: `explorer_traits`)."""

    layer = t.Unicode("").tag(sync=True)
    """The module whose output is shown. Changing it runs one forward, stopped at the layer.

    - Type: `str` (a name from `model.named_modules()`)
    """
    sort_by = t.Unicode("activation").tag(sync=True)
    """The grid's channel order: "activation", "variance", "random" (seed 0), or a mode a panel
    adds: "class contribution" (each channel's contribution to `target_class`, which turns the
    class panel on; not for models without a classifier).

    - Default: `"activation"`
    """
    channel = t.Int(0).tag(sync=True)
    """The selected channel, shown enlarged and analysed by the panels. Set while a layer
    is being computed, it is checked against that layer and shown with it.

    - Default: the first channel of the ranking after each layer change
    """
    num_features = t.Int(16).tag(sync=True)
    """How many maps the grid shows (at most the layer's channel count, and 256).

    - Default: `16`
    """
    color_scale = t.Enum(COLOR_SCALES, default_value=COLOR_SCALES[0]).tag(sync=True)
    """"per-tile" (each map stretched over its own range) or "shared" (one range for all).

    - Default: `"per-tile"`
    """
    all_layers = t.Bool(False).tag(sync=True)
    """List every module in the layer dropdown, not just the stages and blocks.

    - Default: `False`
    """
    device = t.Unicode("cpu").tag(sync=True)
    """The device the model runs on; one of the options in `devices`.

    - Default: CUDA when available and `use_cuda`, else `"cpu"`
    """
    position = t.List(t.Int(), default_value=[], maxlen=2).tag(sync=True)
    """The selected unit's (h, w) on the layer's map, marked on the channel and the input
    image; the panels that analyse one unit follow it. Set while a layer is being computed, it
    is checked against that layer's map and shown with it.

    - Type: `[]` (not chosen yet: the panels use the map's centre) or `[h, w]`
    """
    compare = t.List(t.Unicode()).tag(sync=True)
    """The layers in the layer chart ("Compare layers"); their statistics are in
    `compare_statistics`.

    - Default: up to 12 of the default layer list
    """
    statistics = t.Dict().tag(sync=True)
    """The current layer's statistics (mean, std, sparsity, max, min, active_channels,
    num_channels, spatial_size, non_finite). Read-only.
    """
    compare_statistics = t.Dict().tag(sync=True)
    """Statistics of every layer in `compare`, keyed by layer name. Read-only."""
    busy = t.Bool(False).tag(sync=True)
    """True while model work is queued or running. Read-only."""
    progress = t.Float(0.0).tag(sync=True)
    """Progress of the running job in [0, 1], or -1 while it cannot be measured. Read-only."""
    status = t.Unicode("").tag(sync=True)
    """What the worker is doing, in words. Read-only."""
    error = t.Unicode("").tag(sync=True)
    """The last error (an exception in the model, an unreadable upload, ...), or "". """
    model_name = t.Unicode("").tag(sync=True)
    """The model shown, when the explorer was given a mapping of names to models (one of
    `model_names`); setting it switches the grid, layer list and statistics to that model, at
    the layer nearest in relative depth to the current one.

    - Default: the mapping's first name; `""` for a single model
    """

    _layers = t.List(t.Dict()).tag(sync=True)
    _devices = t.List(t.Unicode()).tag(sync=True)
    # every channel of the layer shown, best first under `sort_by`: the channel menu (the grid
    # panel ranks them)
    _order = t.List(t.Int()).tag(sync=True)
    # the payload no panel owns (each its metadata and bytes in one Dict, `Payload`)
    _image = t.Dict().tag(sync=True)  # `ImageMeta`: the input image as the model sees it
    _model_names = t.List(t.Unicode()).tag(sync=True)  # the model menu's; [] for one model

    image_index = t.Int(0).tag(sync=True)
    """Which image of a batch is shown (and analysed: grid, statistics, panels).

    - Type: `int`, 0 to the batch size - 1; the ◀ ▶ buttons and the arrow keys on the input
      image step through the batch. A new input starts at 0.
    """


def explorer_traits(panels: Sequence[PanelParts]) -> type[CoreTraits]:
    """`FeatureExplorer`'s base for the registry `panels`: the core's traits, the sort modes,
    job kinds and contract the panels add, and each panel's payload trait and own traits."""
    modes = sort_modes(panels)
    return type(
        "ExplorerTraits",
        (CoreTraits,),
        {
            "__doc__": CoreTraits.__doc__,
            "sort_by": t.Enum(modes, default_value=modes[0]).tag(sync=True),
            # what the worker runs: a `JobState` or a panel's name
            "_job": t.Enum(
                [*(job.value for job in JobState), *(panel.name for panel in panels)],
                JobState.IDLE.value,
            ).tag(sync=True),
            "_contract": t.Dict(default_value=contract(panels)).tag(sync=True),
            **{panel.trait: t.Dict().tag(sync=True) for panel in panels},
            **{name: trait for panel in panels for name, trait in panel.traits.items()},
        },
    )


@dataclass(frozen=True)
class CheckFacts:
    """What the checks of a value need to know of the explorer, at the moment of the check."""

    model: nn.Module  # the model shown (its layers)
    shown: bool  # whether a view is shown yet
    request: ViewRequest | None  # the pending view's (None for the widget's own changes)
    layer: str  # the layer a channel or unit chosen now applies to ...
    shape: tuple[int, ...] | None  # ... and its maps' (C, H, W), if known
    source: ImageInput  # the input shown ...
    batch_size: int  # ... and how many images it holds
    devices: Sequence[str]
    model_names: Sequence[str]
    check_sort: Callable[[str], str]  # a sort mode, checked by the panel that adds it


def _layer(value: str, facts: CheckFacts) -> str:
    if value == "" and not facts.shown:
        return value
    try:
        resolve_layers(facts.model, [value])
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
    return value


def _channel(value: int, facts: CheckFacts) -> int:
    shape, request = facts.shape, facts.request
    error = None if shape is None else channel_error(value, facts.layer, shape[0])
    if error is not None:
        raise ValueError(error)
    if request is not None:  # for the layer being computed: it shows this channel
        request.channel = value
    return value


def _image_index(value: int, facts: CheckFacts) -> int:
    pending, count = facts.request, facts.batch_size
    if pending is not None and pending.source is not facts.source and value >= 0:
        pending.image_index = value  # its batch size is not known yet: checked then
        return value
    if isinstance(value, bool) or not 0 <= value < count:
        raise ValueError(
            f"`image_index` {value!r} is out of range: the input holds {count} "
            f"image{'s' if count > 1 else ''} (0 to {count - 1})."
        )
    return value


def _num_features(value: int, facts: CheckFacts) -> int:
    if value < 1:
        raise ValueError(f"`num_features` must be at least 1, got {value}.")
    return value


def _device(value: str, facts: CheckFacts) -> str:
    if facts.devices and value not in facts.devices:
        raise ValueError(f"`device` must be one of {list(facts.devices)}, got {value!r}.")
    return value


def _position(value: list[int], facts: CheckFacts) -> list[int]:
    value = list(value)
    if value and len(value) != 2:
        raise ValueError(f"`position` must be [] or [h, w], got {value!r}.")
    request, shape = facts.request, facts.shape
    if request is not None and request.relist:
        shape = None  # a new image may change the map size: checked when it is shown
    error = None if shape is None or not value else position_error(value, facts.layer, shape[1:])
    if error is not None:
        raise ValueError(error)
    if request is not None:  # for the layer being computed: it shows this unit
        request.position = value
    return value


def _compare(value: list[str], facts: CheckFacts) -> list[str]:
    value = list(value)
    try:
        resolve_layers(facts.model, value)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
    return value


def _model_name(value: str, facts: CheckFacts) -> str:
    names = list(facts.model_names)
    if not names and value:
        raise ValueError(
            f"`model_name` {value!r}: this explorer shows one model; pass a mapping of "
            "names to models, FeatureExplorer({'a': model_a, 'b': model_b}), to switch."
        )
    if names and value not in names:
        raise ValueError(f"`model_name` must be one of {names}, got {value!r}.")
    return value


CHECKS: dict[str, Callable[[Any, CheckFacts], Any]] = {
    "layer": _layer,
    "channel": _channel,
    "image_index": _image_index,
    "sort_by": lambda value, facts: facts.check_sort(value),
    "num_features": _num_features,
    "device": _device,
    "position": _position,
    "compare": _compare,
    "model_name": _model_name,
}
"""The check of each core trait's value: the value to set, or a ValueError that says why not."""
