"""`FeatureExplorer`: the interactive notebook widget on top of `FeatureVisualizer`.

Traits are the source of truth (`traits`). Model work runs on one background thread, never
on the kernel's shell thread (`worker`): the view job (`view_job`: image and layer in, grid,
unit and statistics out, then the layer chart) and the panels' jobs (`panels`, the registry:
occlusion, "looks for", examples, class evidence, ...; the explorer lends them a `PanelHost`
and hands them the view as a `PanelView`); `JobStatus` (`job_status`) shows what runs.
Changing the sort mode, the channel or the number of maps only re-slices features the widget
already holds. Each payload is one trait, metadata and bytes together, in chunks when large
(`transfer`). `save_png`, the notebook's static picture (`static`) and `save_html`
(`saved_page`) save what the explorer shows.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
from .model_switch import ModelSwitch
from .panel_runner import PanelRunner
from .panels import PANELS, PanelHost, PanelView
from .panels.evidence import contribution_text
from .protocol import CORE_SORT_MODES, PAYLOADS, SORT_MODES, ExportView, Message
from .request import ViewRequest
from .saved_page import save_page
from .static import StaticPictures
from .traits import ExplorerTraits
from .transfer import Outbox, Uploads
from .view_job import ViewJob
from .worker import Worker

__all__ = ["FeatureExplorer"]

_HERE = Path(__file__).resolve().parents[1]  # the package folder
SAMPLE_IMAGE = _HERE / "sample.png"
# The panels' public traits: the constructor takes them too (set after the others: a panel
# checks them against what it knows then, e.g. the model's classes).
_PANEL_KWARGS = tuple(name for panel in PANELS for name in panel.traits if not name.startswith("_"))
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


class FeatureExplorer(ExplorerTraits):
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
        self._features: torch.Tensor | None = None
        self._features_layer = ""
        self._rankings: dict[str, list[int]] = {}
        self._shown: np.ndarray | None = None
        self._viewed = threading.Event()
        self._outbox = Outbox(self)
        self._uploads = Uploads(self._show_upload, self._set_error)
        self._status = JobStatus(self._lock, self._set_quietly)
        self._view_job = ViewJob(self, self._status, self._panel_ranking)
        self._model_switch = ModelSwitch(self, self._status, self._models, self._view_job)
        self._pictures = StaticPictures(self)
        channel = kwargs.pop("channel", None)
        self._source: ImageInput = read_now(image) if image is not None else SAMPLE_IMAGE
        self._shown_source: ImageInput = self._source
        self._batch_size = 1
        self._source_name = "sample.png" if image is None else image_name(image)
        self._worker = _weakly_owned_worker(self)
        host = PanelHost(
            lock=self._lock,
            worker=self._worker,
            status=self._status,
            current=self._panel_view,
            viewing=lambda: self._view_job.request is not None,
            pending=lambda: (
                None if self._view_job.request is None else self._view_job.request.asked
            ),
            publish=self._publish,
            payload=lambda trait: (self._outbox.data(trait), self._outbox.meta(trait)),
            show=lambda image, name: self._view_job.submit(image, name=name, relist=True),
            error=self._set_error,
            widget=self,
            set=self._set_quietly,
            reorder=lambda: self._view_job.reorder(),
            default_sort=SORT_MODES[0],
            quiet=self._quietly,
        )
        self._panels = PanelRunner(PANELS, host)
        self._view_job.on_shown.append(self._panels.refresh)
        self._view_job.on_submit.append(self._panels.pause)
        self._view_job.on_failed.append(self._panels.stay_paused)
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
        self._view_job.submit(
            self._source, layer=layer, compare=compare, relist=True, channel=channel
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
        return self._features

    @property
    def image(self) -> ImageInput:
        """The image shown (the last one that loaded). Assign any input the core accepts
        (PIL, ndarray, tensor, path, binary file object); a failure shows in `error` and keeps
        the old image."""
        return self._source

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
    def save_png(self, path: str | os.PathLike, view: str = ExportView.GRID.value) -> Path:
        """Save the current `view` ("grid", "channel", "occlusion", "examples", "looks_for",
        the picture of `run_looks_for`, "cam", the input under the Grad-CAM of the chosen
        class, "models", the model comparison with the current model's layer marked, or a
        panel's, e.g. "pca", the layer as colour) as a PNG file.

        Returns:
            The path written.
        """
        panel = view in self._panels.views
        fig = self._panels.figure(view) if panel else self._pictures.figure(view)
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
            modes = (mode for mode in SORT_MODES if mode not in CORE_SORT_MODES)
            known = {mode: self._panels.ranking(mode) for mode in modes}  # a panel's, if known
            rankings = {mode: ranking for mode, ranking in known.items() if ranking is not None}
        return save_page(
            self, path, layers=layers, payloads=payloads, rankings={self.layer: rankings}
        )

    def _static_png(self) -> bytes:
        return self._pictures.png()

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

    def _pending_request(self) -> ViewRequest | None:
        return self._view_job.request

    def _panel_view(self) -> PanelView | None:
        """The view shown, as the panels read it (under the lock); None before the first."""
        if self._features is None or self._shown is None:
            return None
        return PanelView(
            viz=self._viz,
            source=self._shown_source,
            shown=self._shown,
            layer=self._features_layer,
            weights_version=self._viz.features.model_version(),
            channel=self.channel,
            input=self._source,
            image_index=self.image_index,
            image_name=self._source_name,
            model_name=self._models.current,
            model_names=tuple(self._models.names),
            profiles=self._model_switch.profiles,
            layers=tuple(self.layers),
            all_layers=self.all_layers,
            restrict=None if self._restrict is None else tuple(self._restrict),
            traits={name: getattr(self, name) for panel in PANELS for name in panel.traits},
            map_size=tuple(self._features.shape[-2:]),
            position=tuple(self.position),
            asked=self._view_job.asked,
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

    def _panel_check(self, panel: str, name: str, value: Any) -> Any:
        """A panel's own trait `name` set to `value`, checked by that panel."""
        return self._panels.panels[panel].check(name, value)

    def _check_sort(self, mode: str) -> str:
        """`sort_by` = `mode`: a panel's mode is checked by that panel."""
        return self._panels.check_sort(mode)

    def _panel_ranking(self, mode: str) -> list[int] | None:
        return self._panels.ranking(mode)

    def _set_quietly(self, **values: Any) -> None:
        with self._quiet(), self.hold_sync():
            for name, value in values.items():
                setattr(self, name, value)

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        """The widget's own changes (no observer reacts), sent together (`PanelHost.quiet`)."""
        with self._lock, self._quiet(), self.hold_sync():
            yield

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
