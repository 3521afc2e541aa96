"""The explorer's synced traits and what checks them.

`ExplorerTraits` is `FeatureExplorer`'s base: every synced trait with its documentation and
its validator, and the state the explorer's jobs share (annotated here, set by the
explorer), and one payload trait per panel of the registry (`panels`). The jobs observe the
traits they own (`view_job`; the panels theirs and those they observe); changes made
inside `_quiet()` do not trigger them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anywidget
import numpy as np
import torch
import traitlets as t
from torch import nn

from ..core.capture import resolve_layers
from ..core.inputs import ImageInput
from ..core.validate import channel_error, position_error
from ..visualizer import FeatureVisualizer
from .panels import PANELS, Panel
from .protocol import COLOR_SCALES, SORT_MODES, JobState, contract
from .request import ViewRequest

__all__ = ["ExplorerTraits"]


def _checked_by(panel: type[Panel], name: str) -> Any:
    """A validator of panel trait `name`: the panel's `check`, its ValueError a TraitError."""

    @t.validate(name)
    def check(self: Any, proposal: t.Bunch) -> Any:
        try:
            return self._panel_check(panel.name, name, proposal["value"])
        except ValueError as exc:
            raise t.TraitError(str(exc)) from exc

    return check


# each panel of the registry: its payload trait, `_<name>` (`Payload` metadata and bytes), and
# its own traits, each checked by the panel
_PanelTraits = type(
    "_PanelTraits",
    (anywidget.AnyWidget,),
    {
        **{panel.trait: t.Dict().tag(sync=True) for panel in PANELS},
        **{name: trait for panel in PANELS for name, trait in panel.traits.items()},
        **{f"_check_{name}": _checked_by(panel, name) for panel in PANELS for name in panel.traits},
    },
)


class ExplorerTraits(_PanelTraits):
    """`FeatureExplorer`'s synced traits and validators, and the state its jobs share."""

    _lock: threading.RLock  # guards everything below and the traits, across threads
    _tls: threading.local  # per thread: inside `_quiet()`?
    _model: nn.Module
    _transform: Any
    _cache_size: int
    _restrict: list[str] | None  # the `layers` the explorer was limited to
    _viz: FeatureVisualizer
    _source: ImageInput  # the input given (an image or a batch)
    _shown_source: ImageInput  # what every analysis reads: the input, or its image shown
    _batch_size: int  # how many images `_source` holds (1 until the first view)
    _source_name: str
    _shown: np.ndarray | None  # that image as the model sees it
    _features: torch.Tensor | None  # the shown layer's
    _features_layer: str
    _rankings: dict[str, list[int]]  # per sort mode
    _viewed: threading.Event  # set once a view is shown (or the first one failed)
    patch_size: int
    stride: int

    layer = t.Unicode("").tag(sync=True)
    """The module whose output is shown. Changing it runs one forward, stopped at the layer.

    - Type: `str` (a name from `model.named_modules()`)
    """
    sort_by = t.Enum(SORT_MODES, default_value=SORT_MODES[0]).tag(sync=True)
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

    _contract = t.Dict(default_value=contract()).tag(sync=True)  # enums and limits for the view
    # what the worker runs: a `JobState` or a panel's name
    _job = t.Enum(
        [*(job.value for job in JobState), *(panel.name for panel in PANELS)], JobState.IDLE.value
    ).tag(sync=True)
    _layers = t.List(t.Dict()).tag(sync=True)
    _devices = t.List(t.Unicode()).tag(sync=True)
    _order = t.List(t.Int()).tag(sync=True)
    # the payloads (`protocol.PAYLOADS`): each its metadata and bytes in one Dict (`Payload`)
    _image = t.Dict().tag(sync=True)  # `ImageMeta`: the input image as the model sees it
    _grid = t.Dict().tag(sync=True)  # `GridMeta`
    _unit = t.Dict().tag(sync=True)  # `UnitMeta`: the selected channel's map
    _model_names = t.List(t.Unicode()).tag(sync=True)  # the model menu's; [] for one model

    # ------------------------------------------------------------------ quiet changes
    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Trait changes made inside do not trigger this widget's observers (this thread)."""
        previous = getattr(self._tls, "quiet", False)
        self._tls.quiet = True
        try:
            yield
        finally:
            self._tls.quiet = previous

    def _is_quiet(self) -> bool:
        return getattr(self._tls, "quiet", False)

    def _check_sort(self, mode: str) -> str:
        """`sort_by` = `mode`, checked (the explorer asks the panel that adds it)."""
        return mode

    def _pending_request(self) -> ViewRequest | None:
        """The request of the view job that is computing, if any (the explorer's view job
        knows)."""
        return None

    @t.validate("layer")
    def _check_layer(self, proposal: t.Bunch) -> str:
        value = proposal["value"]
        if value == "" and self._features is None:
            return value
        try:
            resolve_layers(self._viz.model, [value])
        except (TypeError, ValueError) as exc:
            raise t.TraitError(str(exc)) from exc
        return value

    def _target(self) -> tuple[ViewRequest | None, str, tuple[int, ...] | None]:
        """The pending view's request (None for changes the widget makes itself), the layer a
        channel or unit chosen now applies to, and its (C, H, W) maps' shape if known."""
        request = None if self._is_quiet() else self._pending_request()
        layer = self._features_layer if request is None else request.layer or ""
        if self._features is not None and layer == self._features_layer:
            return request, layer, tuple(self._features.shape[1:])
        shapes = {entry["name"]: tuple(entry["shape"]) for entry in self._layers}
        return request, layer, shapes.get(layer)

    @t.validate("channel")
    def _check_channel(self, proposal: t.Bunch) -> int:
        value = proposal["value"]
        with self._lock:
            request, layer, shape = self._target()
            error = None if shape is None else channel_error(value, layer, shape[0])
            if error is not None:
                raise t.TraitError(error)
            if request is not None:  # for the layer being computed: it shows this channel
                request.channel = value
        return value

    image_index = t.Int(0).tag(sync=True)
    """Which image of a batch is shown (and analysed: grid, statistics, panels).

    - Type: `int`, 0 to the batch size - 1; the ◀ ▶ buttons and the arrow keys on the input
      image step through the batch. A new input starts at 0.
    """

    @t.validate("image_index")
    def _check_image_index(self, proposal: t.Bunch) -> int:
        value = proposal["value"]
        count = getattr(self, "_batch_size", 1)
        with self._lock:
            pending = None if self._is_quiet() else self._pending_request()
            if pending is not None and pending.source is not self._source and value >= 0:
                pending.image_index = value  # its batch size is not known yet: checked then
                return value
        if isinstance(value, bool) or not 0 <= value < count:
            raise t.TraitError(
                f"`image_index` {value!r} is out of range: the input holds {count} "
                f"image{'s' if count > 1 else ''} (0 to {count - 1})."
            )
        return value

    @t.validate("sort_by")
    def _check_sort_by(self, proposal: t.Bunch) -> str:
        try:  # a mode a panel adds is the panel's to allow
            return self._check_sort(proposal["value"])
        except ValueError as exc:
            raise t.TraitError(str(exc)) from exc

    @t.validate("num_features")
    def _check_num_features(self, proposal: t.Bunch) -> int:
        value = proposal["value"]
        if value < 1:
            raise t.TraitError(f"`num_features` must be at least 1, got {value}.")
        return value

    @t.validate("device")
    def _check_device(self, proposal: t.Bunch) -> str:
        value = proposal["value"]
        if self._devices and value not in self._devices:
            raise t.TraitError(f"`device` must be one of {self._devices}, got {value!r}.")
        return value

    @t.validate("position")
    def _check_position(self, proposal: t.Bunch) -> list[int]:
        value = list(proposal["value"])
        if value and len(value) != 2:
            raise t.TraitError(f"`position` must be [] or [h, w], got {value!r}.")
        with self._lock:
            request, layer, shape = self._target()
            if request is not None and request.relist:
                shape = None  # a new image may change the map size: checked when it is shown
            error = None if shape is None or not value else position_error(value, layer, shape[1:])
            if error is not None:
                raise t.TraitError(error)
            if request is not None:  # for the layer being computed: it shows this unit
                request.position = value
        return value

    @t.validate("compare")
    def _check_compare(self, proposal: t.Bunch) -> list[str]:
        value = list(proposal["value"])
        try:
            resolve_layers(self._viz.model, value)
        except (TypeError, ValueError) as exc:
            raise t.TraitError(str(exc)) from exc
        return value

    @t.validate("model_name")
    def _check_model_name(self, proposal: t.Bunch) -> str:
        value, names = proposal["value"], list(self._model_names)
        if not names and value:
            raise t.TraitError(
                f"`model_name` {value!r}: this explorer shows one model; pass a mapping of "
                "names to models, FeatureExplorer({'a': model_a, 'b': model_b}), to switch."
            )
        if names and value not in names:
            raise t.TraitError(f"`model_name` must be one of {names}, got {value!r}.")
        return value
