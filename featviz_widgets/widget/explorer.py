"""`FeatureExplorer`: the interactive notebook widget on top of `FeatureVisualizer`, and the
composition root of `widget/`.

The explorer holds one immutable `ViewState` (the model, the image, the layer's maps, every
control's value); a control's change replaces it, and a new view (`view_job`, on the worker)
makes a new one. The panels (`panels`, the registry: the grid, the unit, occlusion, "looks
for", examples, class evidence, ...) get each state and publish their payloads, doing their
model work on one background thread, never on the kernel's shell thread (`worker`);
`JobStatus` (`job_status`) shows what runs. Each part gets what it needs of the explorer as a
host (`ViewHost`, `SwitchHost`, `PanelHost`, `CheckFacts`): only this module reads or writes
the explorer's private attributes. Each payload is one trait, metadata and bytes together, in
chunks when large (`transfer`). `save_png`, the notebook's static picture (`static`) and
`save_html` (`saved_page`) save what the explorer shows.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import traitlets as t
from PIL import Image
from torch import nn

from ..compare import ModelComparison
from ..core.capture import resolve_layers
from ..core.inputs import ImageInput, image_name, read_now
from ..core.validate import check_patch
from ..dataset import DatasetExamples
from ..evidence import ClassEvidence
from ..occlusion.engine import OcclusionResult
from ..optimize.optimizer import OptimizationResult
from ..visualizer import FeatureVisualizer
from .job_status import JobStatus
from .model_set import ModelSet
from .model_switch import ModelSwitch, SwitchHost
from .panel_runner import PanelRunner
from .panels import EXPORT_VIEWS, PANELS, PAYLOADS, SORT_MODES, PanelHost, ViewState
from .panels.evidence import contribution_text
from .protocol import CORE_SORT_MODES, Message
from .request import ViewRequest
from .saved_page import save_page
from .static import StaticPictures
from .traits import CHECKS, CheckFacts, explorer_traits
from .transfer import Outbox, Uploads
from .view_job import Computed, ViewHost, ViewJob
from .worker import Worker

__all__ = ["FeatureExplorer"]

_HERE = Path(__file__).resolve().parents[1]  # the package folder
SAMPLE_IMAGE = _HERE / "sample.png"
# The panels' public traits: the constructor takes them too (set after the others: a panel
# checks them against what it knows then, e.g. the model's classes).
_PANEL_KWARGS = tuple(name for panel in PANELS for name in panel.traits if not name.startswith("_"))
# Whose trait is each panel's own trait (its `check` checks it).
_PANEL_OF = {name: panel.name for panel in PANELS for name in panel.traits}
# The controls whose value the view state holds: a change makes a new one (the layer, the image
# and the layer list make a new view instead).
_STATE_TRAITS = ("channel", "position", "sort_by", "num_features", "color_scale", *_PANEL_KWARGS)
# Traits and ipywidgets options the constructor takes besides its named arguments.
_EXTRA_KWARGS = (
    "channel",
    "color_scale",
    "all_layers",
    "layout",
    "tabbable",
    "tooltip",
    "model_name",
    *_PANEL_KWARGS,
)


def _asset(name: str) -> Path:
    """A front-end file: the bundle `npm run build` makes from js/src (committed, shipped)."""
    return _HERE / "static" / name


class FeatureExplorer(explorer_traits(PANELS)):  # type: ignore[misc]
    """Explore a vision model's feature maps, statistics and occlusion maps with the mouse.

    Every control has a Python counterpart: set `layer`, `sort_by`, `channel`,
    `num_features`, `color_scale`, `all_layers`, `device`, `position` (which starts an
    occlusion sweep), `compare`, `target_class` or `show_cam` (class evidence: Grad-CAM and
    channel contributions), `model_name` (several models), assign `image`, call
    `run_looks_for()` (the picture the channel looks for), and read `features`, `statistics`,
    `comparison`, `busy`, `progress` and `error`.
    Model work runs on one background thread; call `wait()` to block until it is done.

    Args:
        model: any `torch.nn.Module` (timm models get their own preprocessing), or a mapping
            of names to models: a model menu (`model_name`) switches between them, and a
            comparison chart shows every model's mean activation and sparsity against
            relative depth (`comparison`).
        image: what to look at (PIL image, array, tensor, path); a bundled sample if None.
        layers: restrict the layer dropdown to these module names (default: the model's
            stages and blocks; the "all modules" toggle reaches every module); with several
            models, a mapping of model names to their lists.
        layer: the layer shown first (default: the deepest one whose maps are >= 12 px).
        device: explicit device ("cpu", "cuda", ...); overrides `use_cuda`.
        use_cuda: use CUDA when available.
        num_features: how many maps the grid shows.
        sort_by: "activation", "variance", "random" or "class contribution".
        transform: PIL image -> (C, H, W) tensor; default: the model's timm eval transform.
        patch_size, stride: the occlusion patch and its step, in input pixels.
        cache_size: how many (image, layer) feature tensors the visualizer keeps.
        compare: layers for the comparison chart (default: up to 12 of the layer list).
        dataset: a collection to scan in the background for the top images of every channel
            (a folder, a list of paths or images, a Dataset, a DataLoader; see `dataset`).
        **kwargs: other traits (e.g. `color_scale="shared"`, `target_class=207`,
            `show_cam=True`) or ipywidgets options (`layout`).

    Example:
        >>> model = timm.create_model("resnet18", pretrained=False)
        >>> explorer = FeatureExplorer(model, layer="layer2")
        >>> explorer  # shows the widget
        >>> explorer.sort_by = "variance"; explorer.channel = 7; explorer.position = (4, 4)
    """

    # Text, not paths: anywidget watches a path through a callback that keeps every widget alive.
    _esm = _asset("widget.js").read_text(encoding="utf-8")
    _css = _asset("widget.css").read_text(encoding="utf-8")

    def __init__(
        self,
        model: nn.Module | Mapping[str, nn.Module],
        image: ImageInput | None = None,
        *,
        layers: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        layer: str | None = None,
        device: str | torch.device | None = None,
        use_cuda: bool = True,
        num_features: int = 16,
        sort_by: str = SORT_MODES[0],
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        patch_size: int = 16,
        stride: int = 8,
        cache_size: int = 8,
        compare: Sequence[str] | None = None,
        dataset: Any = None,
        **kwargs: Any,
    ) -> None:
        for name in kwargs:
            if name not in _EXTRA_KWARGS:
                raise TypeError(
                    f"Unexpected keyword argument {name!r}. Check the spelling of your "
                    "parameters; see help(FeatureExplorer)."
                )
        check_patch(patch_size, stride)
        self._models = ModelSet.from_argument(model, layers, kwargs.pop("model_name", None))
        model = self._models.models[self._models.current]
        layers = self._models.restrict[self._models.current]
        self._lock = threading.RLock()
        self._tls = threading.local()
        self._model = model
        self._transform = transform
        self._cache_size = cache_size
        self.patch_size = patch_size
        self.stride = stride
        if device is None:
            device = "cuda" if use_cuda and torch.cuda.is_available() else "cpu"
        # The work runs on the model's twin: what the user does with the model meanwhile is safe.
        self._viz = self._models.visualizer(self._models.current, device, transform, cache_size)
        if layers is not None:
            layers = list(layers)
            if not layers:
                raise ValueError("`layers` is empty; pass None for the default layer list.")
            resolve_layers(self._viz.model, layers)
        if layer is not None:
            resolve_layers(self._viz.model, [layer])
        if compare is not None:
            compare = list(compare)
            resolve_layers(self._viz.model, compare)
        self._restrict = layers
        self._state: ViewState | None = None  # the view shown (None before the first)
        self._input: ImageInput = read_now(image) if image is not None else SAMPLE_IMAGE
        self._viewed = threading.Event()
        self.observe(self._on_state_trait, names=list(_STATE_TRAITS))  # before the others
        self._outbox = Outbox(self, PAYLOADS, self._write_payload)
        self._uploads = Uploads(self._show_upload, self._set_error)
        self._status = JobStatus(self._lock, self._set_quietly)
        self._worker = _weakly_owned_worker(self)
        self._view_job = ViewJob(self._view_host())
        self._model_switch = ModelSwitch(self._switch_host(), self._models)
        self._panels = PanelRunner(PANELS, self._panel_host())
        self._pictures = StaticPictures(self._panels.stand_in, self._viewed)
        channel = kwargs.pop("channel", None)
        self.observe(self._on_channel, names=["channel"])
        for panel in PANELS:
            for name in (*panel.traits, *panel.observes):
                self.observe(lambda change, p=panel.name: self._on_panel_trait(p, change), name)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        if self._viz.device.type not in devices:
            devices.append(self._viz.device.type)
        own = {name: kwargs.pop(name) for name in _PANEL_KWARGS if name in kwargs}
        with self._quiet():
            super().__init__(
                num_features=num_features,
                _devices=devices,
                device=self._viz.device.type,
                _model_names=self._models.names,
                model_name=self._models.current,
                **self._panels.initial(),
                **kwargs,
            )
            # checked by the panels (a class against the model's classes), so set after
            self.sort_by = sort_by
            for name, value in own.items():
                setattr(self, name, value)
            for panel in self._panels.panels.values():
                panel.begin()
        self.on_msg(self._handle_message)
        # the channel is checked once the layer's channel count is known
        name = "sample.png" if image is None else image_name(image)
        self._view_job.submit(
            self._input, name=name, layer=layer, compare=compare, relist=True, channel=channel
        )
        if dataset is not None:  # after the first view: it scans that view's layer list
            self.scan_dataset(dataset)

    # ------------------------------------------------------------------ public Python API
    @property
    def model(self) -> nn.Module:
        """The model shown (`model_name`'s), as given: the explorer never changes it."""
        return self._model

    @property
    def visualizer(self) -> FeatureVisualizer:
        """The `FeatureVisualizer` doing the work (for its seed API: plots, statistics...): the
        current model's (`model_name`). Its `model` is the explorer's twin of `model`: the
        same weights, module objects of its own (see the README, "Using the model while the
        explorer works")."""
        return self._viz

    @property
    def model_names(self) -> list[str]:
        """The names `model_name` can be set to ([] for an explorer of one model)."""
        return self._models.names

    @property
    def comparison(self) -> ModelComparison | None:
        """Every model's layers profiled on the image shown (`compare_models`: mean
        activation and sparsity against relative depth), computed in the background for each
        new image and cached per image; None until it is complete, and for a single model."""
        with self._lock:
            return self._panels.panels["comparison"].complete

    @property
    def features(self) -> torch.Tensor | None:
        """The current layer's features, (B, C, H, W) float32 on the CPU (None before the
        first result)."""
        with self._lock:
            return None if self._state is None else self._state.features

    @property
    def image(self) -> ImageInput:
        """The image shown (the last one that loaded). Assign any input the core accepts
        (PIL, ndarray, tensor, path, binary file object); a failure shows in `error` and keeps
        the old image."""
        with self._lock:
            return self._input if self._state is None else self._state.input

    @image.setter
    def image(self, value: ImageInput | None) -> None:
        if value is None:
            self._view_job.submit(SAMPLE_IMAGE, name="sample.png", relist=True)
        else:
            self._view_job.submit(read_now(value), name=image_name(value), relist=True)

    @property
    def layers(self) -> list[str]:
        """The layer names the dropdown offers (see `all_layers`)."""
        return [entry["name"] for entry in self._layers]

    @property
    def ranking(self) -> list[int]:
        """Every channel of the current layer, best first under `sort_by`; the grid shows
        the first `num_features`."""
        return list(self._order)

    @property
    def devices(self) -> list[str]:
        """The device types `device` can be set to."""
        return list(self._devices)

    # ------------------------------------------------------------------ occlusion
    @property
    def occlusion_result(self) -> OcclusionResult | None:
        """The last (possibly partial) occlusion sweep, for every channel of its unit."""
        return self._panels.panels["occlusion"].result

    def occlusion_map(self, channel: int | None = None, signed: bool = False) -> np.ndarray:
        """The occlusion map (H_in, W_in) of `channel` (default: the selected one)."""
        return self._panels.panels["occlusion"].occlusion_map(
            self.channel if channel is None else channel, signed
        )

    def run_occlusion(self, position: Sequence[int] | None = None) -> None:
        """Start an occlusion sweep for the unit at `position` (default: the current one, or
        the centre of the map) in the background; results stream into the widget."""
        self._panels.panels["occlusion"].run(None if position is None else list(position))

    # ------------------------------------------------------------------ looks for
    def run_looks_for(self, channel: int | None = None) -> None:
        """What does the channel look for? Optimise a picture that excites `channel` (default:
        the selected one; given, it is selected) of the layer shown, in the background, with
        `FeatureVisualizer.optimize`: it refines live in the view and `cancel()` stops it.
        On CUDA the full recipe (512 steps), elsewhere a 128-step preview at
        `model_size=128`; `looks_for_steps` and `looks_for_options` change that. A picture
        made before for the same layer, channel and settings is shown at once, without work.
        Selecting another channel while it runs runs that channel's instead."""
        if channel is not None and channel != self.channel:
            self.channel = channel  # checked
        self._panels.panels["looks_for"].submit()

    @property
    def looks_for_result(self) -> OptimizationResult | None:
        """The "looks for" result shown (`.images[0]`, possibly partial: `.complete`), or
        None."""
        return self._panels.panels["looks_for"].shown

    # ------------------------------------------------------------------ class evidence
    @property
    def class_names(self) -> list[str]:
        """The model's class names, by index (ImageNet's for 1000 classes, else "class i");
        empty for a model without a classifier or one that does not say its class count."""
        return list(self._classes.get("names", []))

    @property
    def class_evidence_result(self) -> ClassEvidence | None:
        """The `ClassEvidence` (`FeatureVisualizer.class_evidence`) of the image and layer
        shown for `target_class`, or None (`class_evidence` off, not computed yet, or no
        classifier: `_evidence`'s `note` says why)."""
        with self._lock:
            return self._panels.panels["evidence"].shown

    def channel_contribution(self, channel: int | None = None) -> dict | None:
        """What `channel` (default: the selected one) contributes to the chosen class:
        `value` (gradient x activation summed over positions), `rank` (1-based, of `of`
        channels), `target`, `name` and the `text` the channel view shows, e.g.
        "contribution to 'tabby cat': +0.123 (rank 3 of 256)". None without class evidence."""
        with self._lock:
            meta = self._outbox.meta("_evidence")
        channel = self.channel if channel is None else channel
        values = meta.get("contributions") or []
        if not 0 <= channel < len(values):
            return None
        return {
            "value": values[channel],
            "rank": meta["ranks"][channel],
            "of": len(values),
            "target": meta["target"],
            "name": meta["target_name"],
            "text": contribution_text(meta, channel),
        }

    # ------------------------------------------------------------------ dataset examples
    @property
    def dataset(self) -> Any:
        """The collection whose top images per channel the explorer shows beside the channel
        (None: none). Assigning one (a folder, a list of paths or images, a Dataset, a
        DataLoader) scans it in the background with `scan_dataset`'s defaults; None hides
        the examples."""
        return self._panels.panels["examples"].data

    @dataset.setter
    def dataset(self, value: Any) -> None:
        if value is None:
            self._panels.panels["examples"].clear()
        else:
            self.scan_dataset(value)

    @property
    def dataset_examples(self) -> DatasetExamples | None:
        """The last finished dataset scan (None before one finishes)."""
        return self._panels.panels["examples"].result

    def scan_dataset(
        self,
        data: Any,
        layers: Sequence[str] | None = None,
        *,
        k: int = 9,
        batch_size: int = 32,
    ) -> None:
        """Scan `data` in the background (progress in `progress`, stopped by `cancel()`) for
        the top `k` images of every channel of `layers` (default: the layer list, and the
        current layer), in one pass; then the view shows the selected channel's, each cut to
        what its unit sees, and follows the layer and channel without scanning again.
        Errors show in `error`."""
        if layers is not None:
            resolve_layers(self._viz.model, list(layers))
        self._panels.panels["examples"].submit_scan(data, layers, k=k, batch_size=batch_size)

    def show_dataset_image(self, index: int) -> None:
        """Make image `index` of the scanned dataset the explorer's image (what a click on
        one of its examples does)."""
        self._panels.panels["examples"].show(index)

    # ------------------------------------------------------------------ pictures
    def save_png(self, path: str | os.PathLike, view: str = EXPORT_VIEWS[0]) -> Path:
        """Save the current `view` ("grid", "channel", "occlusion", "examples", "looks_for",
        the picture of `run_looks_for`, "cam", the input under the Grad-CAM of the chosen
        class, "models", the model comparison with the current model's layer marked, or a
        panel's, e.g. "pca", the layer as colour) as a PNG file.

        Returns:
            The path written.
        """
        if view not in self._panels.views:
            raise ValueError(f"`view` must be one of {EXPORT_VIEWS}, got {view!r}.")
        fig = self._panels.figure(view)
        path = Path(path)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        return path

    def save_html(self, path: str | os.PathLike, *, layers: Sequence[str] | None = None) -> Path:
        """Save the explorer as one HTML file that works offline, from `file://`, with no
        network request: its own front end, its state and what was computed so far (occlusion,
        "looks for", class evidence, examples...), and every layer of the menu (or `layers`)
        for the image shown, so the layer, sort and channel controls work without a kernel.

        Returns:
            The path written.

        Raises:
            FileNotFoundError: the folder of `path` does not exist (nothing is written).
            LayerNotFoundError: a name in `layers` is not a layer (the closest are listed).
        """
        self.wait()
        with self._lock:
            outbox = self._outbox
            payloads = {name: (outbox.data(name), outbox.meta(name)) for name in PAYLOADS}
            modes = [mode for mode in SORT_MODES if mode not in CORE_SORT_MODES]
            state, rankings = self._state, {}
            for mode in modes if state is not None else ():
                ranking = self._panels.ranking(mode, state)  # a panel's, if known
                if ranking is not None:
                    rankings[mode] = ranking
        return save_page(
            self, path, layers=layers, payloads=payloads, rankings={self.layer: rankings}
        )

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict:
        """The synced state; with `drop_defaults` (ipywidgets' embedding, e.g.
        `embed_minimal_html`) still all of it: the front end is found by the model module
        names and runs from `_esm`, which equal their defaults and would be dropped."""
        return super().get_state(key=key, drop_defaults=False)

    def __panel__(self) -> Any:
        """What `pn.panel(explorer)` shows under Panel: the explorer, or, where Panel cannot
        show ipywidgets (no `ipywidgets_bokeh`), a note on the page that says what to install
        (not a blank page with the reason in the server's log only)."""
        import panel as pn

        try:
            import ipywidgets_bokeh  # noqa: F401 - Panel shows ipywidgets through it
        except ImportError:
            return pn.pane.Alert(PANEL_NEEDS, alert_type="warning")
        return pn.pane.IPyWidget(self)

    def _repr_mimebundle_(self, **kwargs: Any):
        return self._pictures.add_to(super()._repr_mimebundle_(**kwargs))

    def cancel(self) -> None:
        """Stop a running occlusion sweep or "looks for" optimization (the partial map or
        picture stays, marked cancelled), a class evidence run, a dataset scan (the examples
        of an earlier scan stay) and a panel's work (the model comparison: the models
        profiled so far stay): every panel's work that Cancel stops."""
        self._panels.cancel()

    def wait(self, timeout: float | None = None) -> FeatureExplorer:
        """Block until the background work is done (not from the worker itself), however
        long it takes unless a `timeout` in seconds is given.

        Raises:
            TimeoutError: if it is still busy after `timeout` seconds.
        """
        if not self._worker.wait(timeout):
            raise TimeoutError(f"the explorer was still busy after {timeout} s ({self.status}).")
        return self

    def close(self) -> None:
        """Stop the worker and close the widget and its views (an explorer that is garbage
        collected stops its worker too)."""
        worker = getattr(self, "_worker", None)  # absent if __init__ failed early
        if worker is not None:
            worker.shutdown()
        super().close()

    # ------------------------------------------------------------------ front-end messages
    def set_state(self, sync_data: dict) -> None:
        """A front end's change. A value Python rejects (a unit clicked on the map shown while
        a smaller layer computes, ...) is reported in `error`, and the view gets Python's."""
        try:
            super().set_state(sync_data)
        except t.TraitError as exc:
            self.error = str(exc)
            self.send_state([name for name in sync_data if name in self.keys])

    def _handle_message(self, _widget: Any, content: Any, buffers: list) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        handler = self._message_handlers().get(kind)  # type: ignore[arg-type]
        if handler is not None:
            handler(content, buffers)
        elif (answer := self._panels.handlers().get(kind)) is not None:  # type: ignore[arg-type]
            answer(content)

    def _message_handlers(self) -> dict[Message, Callable[[dict, list], None]]:
        """What each kind of front-end message does (one entry per `Message`)."""
        return {
            Message.CANCEL: lambda content, buffers: self.cancel(),
            Message.UPLOAD: lambda content, buffers: self._uploads.receive(content, buffers),
            Message.PULL: lambda content, buffers: self._answer_pull(content.get("names")),
        }

    # ------------------------------------------------------------------ the view state
    def _make_state(
        self, *, name: str | None, layers: tuple[str, ...] | None, **computed: Any
    ) -> ViewState:
        """A new view state: the view job's `computed` parts (under the lock), the controls'
        values, the model's, and the image's `name` and the layer menu's `layers` (None: the
        view shown's)."""
        shown = self._state
        return ViewState(
            **computed,
            weights_version=computed["viz"].features.model_version(),
            channel=self.channel,
            position=tuple(self.position),
            sort_by=self.sort_by,
            num_features=self.num_features,
            color_scale=self.color_scale,
            image_name=name if name is not None or shown is None else shown.image_name,
            model_name=self._models.current,
            model_names=tuple(self._models.names),
            profiles=self._model_switch.profiles,
            layers=layers if layers is not None or shown is None else shown.layers,
            all_layers=self.all_layers,
            restrict=None if self._restrict is None else tuple(self._restrict),
            traits={name: getattr(self, name) for name in _PANEL_KWARGS},
        )

    def _show_view(self, computed: Computed) -> None:
        """Show the view the view job computed (under the lock): the new state, the traits
        that follow it, then every panel's payload for it."""
        state = computed.state
        with self._quiet(), self.hold_sync():
            # the panels get what they asked of it with their first update only
            self._state = replace(state, asked=computed.asked)
            if self.image_index != state.image_index:
                self.image_index = state.image_index
            if computed.image is not None:
                self._outbox.set("_image", *computed.image)
            if computed.menu is not None:
                self._layers = computed.menu
            if state.viz.device.type != self.device:
                self.device = state.viz.device.type
            self.layer = state.layer
            self.channel = state.channel
            self.position = list(state.position)
            if computed.problems:
                self.error = " ".join(computed.problems)
            self._panels.refresh()
            self._state = replace(self._state, asked={})
        self._viewed.set()

    def _restore_view(self, request: ViewRequest | None) -> None:
        """A view failed (under the lock, quietly): the controls go back to the view shown."""
        self._panels.stay_paused()
        self._viewed.set()
        state = self._state
        if state is not None and self.layer != state.layer:
            self.layer = state.layer
        if self.device != self._viz.device.type:
            self.device = self._viz.device.type
        if state is not None and self.channel != state.channel:
            self.channel = state.channel
        if request is not None and self.position != request.unit_shown:
            self.position = list(request.unit_shown)

    def _on_state_trait(self, change: Any) -> None:
        """A control the view state holds changed: a new state, unless a new view is being
        computed (it takes the controls' values when it is shown)."""
        name, value = change["name"], change["new"]
        with self._lock:
            state = self._state
            if state is None or self._view_job.request is not None:
                return
            if name in _PANEL_KWARGS:
                if state.traits.get(name) != value:
                    self._state = replace(state, traits={**state.traits, name: value})
            elif name == "position":
                if state.position != tuple(value):
                    self._state = replace(state, position=tuple(value))
            elif getattr(state, name) != value:
                self._state = replace(state, **{name: value})

    def _view_visualizer(self, device: str | None) -> FeatureVisualizer:
        """The model shown's visualizer for a new view, on `device` (None: its own), remade
        when a device is given; used from then on."""
        with self._lock:
            current = self._viz
        viz = self._models.visualizer(
            self._models.current,
            current.device if device is None else device,
            self._transform,
            self._cache_size,
            remake=device is not None,
        )
        with self._lock:
            self._viz = viz
        return viz

    def _model_visualizer(self, name: str) -> FeatureVisualizer:
        """Model `name`'s visualizer on the explorer's device (the one in use for the model
        shown)."""
        with self._lock:
            if name == self._models.current:
                return self._viz
            device = self.device
        return self._models.visualizer(name, device, self._transform, self._cache_size)

    def _use_model(self, name: str, viz: FeatureVisualizer) -> None:
        """Make model `name` the one shown, with `viz` (under the lock)."""
        models = self._models
        models.visualizers[models.current] = self._viz  # the one in use (a device change)
        models.current = name
        self._model, self._viz, self._restrict = models.models[name], viz, models.restrict[name]

    def _show_model(self, layer: str | None) -> None:
        """A view of the model just switched to, at `layer`, with its layer menu."""
        if self._view_job.request is not None:
            self._view_job.request.compare = None  # the old model's layers
        self._view_job.submit(layer=layer, relist=True)

    # ------------------------------------------------------------------ hosts
    def _lent(self) -> dict[str, Any]:
        """What every host lends: the lock, the worker, the job status, the view shown, the
        explorer (for its public traits) and the widget's own changes."""
        return dict(
            lock=self._lock,
            worker=self._worker,
            status=self._status,
            current=lambda: self._state,
            widget=self,
            quiet=self._quietly,
        )

    def _view_host(self) -> ViewHost:
        return ViewHost(
            **self._lent(),
            own=self._is_quiet,
            input=lambda: self._input if self._state is None else self._state.input,
            visualizer=self._view_visualizer,
            restrict=lambda: self._restrict,
            make=self._make_state,
            order=lambda state: self._panels.ranked(state),
            show=self._show_view,
            restore=self._restore_view,
            pause=lambda: self._panels.pause(),
        )

    def _switch_host(self) -> SwitchHost:
        return SwitchHost(
            **self._lent(),
            own=self._is_quiet,
            visualizer=self._model_visualizer,
            use=self._use_model,
            show=self._show_model,
        )

    def _panel_host(self) -> PanelHost:
        return PanelHost(
            **self._lent(),
            viewing=lambda: self._view_job.request is not None,
            pending=lambda: (
                None if self._view_job.request is None else self._view_job.request.asked
            ),
            publish=self._publish,
            payload=lambda trait: (self._outbox.data(trait), self._outbox.meta(trait)),
            show=lambda image, name: self._view_job.submit(image, name=name, relist=True),
            error=self._set_error,
            set=self._set_quietly,
            reorder=lambda: self._panels.reorder(),
            ranking=lambda mode, view: self._panels.ranking(mode, view),
            default_sort=SORT_MODES[0],
        )

    # ------------------------------------------------------------------ checks
    @t.validate(*CHECKS)
    def _check_core_trait(self, proposal: t.Bunch) -> Any:
        name = proposal["trait"].name
        with self._lock:
            try:
                return CHECKS[name](proposal["value"], self._facts())
            except ValueError as exc:
                raise t.TraitError(str(exc)) from exc

    @t.validate(*_PANEL_OF)
    def _check_panel_trait(self, proposal: t.Bunch) -> Any:
        name = proposal["trait"].name
        try:
            return self._panels.panels[_PANEL_OF[name]].check(name, proposal["value"])
        except ValueError as exc:
            raise t.TraitError(str(exc)) from exc

    def _facts(self) -> CheckFacts:
        """What the checks need (under the lock): the layer a channel or unit chosen now
        applies to (the pending view's, unless the widget itself sets it), its maps' shape."""
        request = None if self._is_quiet() else self._view_job.request
        state = self._state
        shown = "" if state is None else state.layer
        layer = shown if request is None else request.layer or ""
        if state is not None and layer == state.layer:
            shape: tuple[int, ...] | None = tuple(state.features.shape[1:])
        else:
            shape = {entry["name"]: tuple(entry["shape"]) for entry in self._layers}.get(layer)
        return CheckFacts(
            model=self._viz.model,
            shown=state is not None,
            request=request,
            layer=layer,
            shape=shape,
            source=self._input if state is None else state.input,
            batch_size=1 if state is None else state.batch_size,
            devices=list(self._devices),
            model_names=list(self._model_names),
            check_sort=self._panels.check_sort,
        )

    def _on_channel(self, change: Any) -> None:
        """A channel the person chose (not one a view sets): the panels get the view."""
        with self._lock:
            if not self._is_quiet() and self._view_job.request is None:
                self._panels.refresh()

    def _on_panel_trait(self, panel: str, change: Any) -> None:
        """A trait `panel` owns or observes changed (not by the widget itself)."""
        if self._is_quiet():
            return
        with self._lock:
            self._panels.changed(panel, change["name"], change["new"])

    def _set_quietly(self, **values: Any) -> None:
        with self._quiet(), self.hold_sync():
            for name, value in values.items():
                setattr(self, name, value)

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        """The widget's own changes (no observer reacts), sent together (`PanelHost.quiet`)."""
        with self._lock, self._quiet(), self.hold_sync():
            yield

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Trait changes made inside are the widget's own (this thread): its observers do not
        react to them, and its checks hold them to the view shown, not to a pending one."""
        previous = getattr(self._tls, "quiet", False)
        self._tls.quiet = True
        try:
            yield
        finally:
            self._tls.quiet = previous

    def _is_quiet(self) -> bool:
        return getattr(self._tls, "quiet", False)

    def _write_payload(self, name: str, value: dict) -> None:
        setattr(self, name, value)

    def _publish(self, trait: str, data: bytes, meta: dict) -> None:
        with self._quiet(), self.hold_sync():
            self._outbox.set(trait, data, meta)

    def _show_upload(self, name: str, picture: Image.Image) -> None:
        self._view_job.submit(picture, name=name, relist=True)

    def _set_error(self, message: str) -> None:
        self.error = message

    def _answer_pull(self, names: Any) -> None:
        with self._lock:  # the state of one moment: the worker publishes under the lock
            self._outbox.answer(names)


PANEL_NEEDS = (
    "FeatureExplorer needs the `ipywidgets_bokeh` package to show under Panel: "
    "`pip install ipywidgets_bokeh`, then start `panel serve` again."
)


def _weakly_owned_worker(explorer: FeatureExplorer) -> Worker:
    """The explorer's worker, whose thread holds the explorer only weakly (through its
    callbacks), and which stops once the explorer is collected: a dropped explorer takes
    its thread and caches with it."""
    owner = weakref.ref(explorer)

    def on_busy(busy: bool) -> None:
        if (alive := owner()) is not None:
            alive._status.set_busy(busy)

    def on_fault(fault: BaseException) -> None:
        if (alive := owner()) is not None:
            alive._status.fault(fault)

    worker = Worker(explorer._lock, on_busy, on_fault)
    weakref.finalize(explorer, worker.shutdown)
    return worker
