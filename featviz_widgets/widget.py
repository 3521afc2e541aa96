"""`FeatureExplorer`: the interactive notebook widget on top of `FeatureVisualizer`.

Traits are the source of truth. Model work (forwards, occlusion sweeps) runs on one
background thread, never on the kernel's shell thread; changing the sort mode, the channel or
the number of maps only re-slices features the widget already holds. Feature maps travel to
the browser as uint8 tiles with per-tile scale metadata (see `_payload`), set inside
`hold_sync()` so the view never sees a payload without its metadata.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import torch
import traitlets as t
from PIL import Image
from torch import nn

from ._capture import resolve_layers
from ._inputs import ImageInput, to_pil
from ._layers import LayerInfo, default_compare, default_layer, explorer_layers, layer_entry
from ._occlusion import OcclusionCancelled, OcclusionResult
from ._payload import decode_upload, encode_maps, encode_png, grid_png
from ._plotting import feature_grid_figure, occlusion_figure, unit_centre
from ._protocol import (
    CHUNK_BYTES,
    COLOR_SCALES,
    EXPORT_VIEWS,
    INLINE_PAYLOAD_BYTES,
    MAX_FEATURE_MAPS,
    MAX_UPLOAD_BYTES,
    SHARED_SCALE,
    SORT_MODES,
    ExportView,
    GridMeta,
    ImageMeta,
    JobState,
    Message,
    OcclusionMeta,
    Push,
    UnitMeta,
    contract,
    grid_columns,
    json_safe,
)
from ._validate import channel_error, check_patch, position_error
from ._worker import Job, Worker
from .visualizer import FeatureVisualizer

__all__ = ["FeatureExplorer"]

_HERE = Path(__file__).parent
SAMPLE_IMAGE = _HERE / "sample.png"
# Traits and ipywidgets options the constructor takes besides its named arguments.
_EXTRA_KWARGS = ("channel", "color_scale", "all_layers", "layout", "tabbable", "tooltip")
_PROGRESS_INTERVAL_S = 0.2
# The first display waits this long at most for the first view (its static image).
_FIRST_VIEW_TIMEOUT_S = 30.0
# The Bytes traits whose data travel in chunks when larger than `INLINE_PAYLOAD_BYTES`.
_PAYLOADS = ("_image", "_grid", "_unit", "_occlusion")


@dataclass
class _Upload:
    """An upload whose chunks are arriving (`Message.UPLOAD`)."""

    id: Any
    name: str
    count: int
    size: int
    parts: list[bytes]


def _asset(name: str) -> Path:
    """A front-end file: the wheel's `static/` copy, else the repository's `js/` source."""
    packaged = _HERE / "static" / name
    return packaged if packaged.is_file() else _HERE.parent / "js" / name


def _image_name(image: ImageInput) -> str:
    """The file name of a path or named file object, else ""."""
    name = getattr(image, "name", None) if callable(getattr(image, "read", None)) else image
    return os.path.basename(os.fspath(name)) if isinstance(name, (str, os.PathLike)) else ""


def _read_now(image: ImageInput) -> ImageInput:
    """A file object's image, read at once: jobs re-read their source later (a new device, a
    new comparison), when the caller may have closed the file. Other inputs as they are; an
    unreadable file is left for the job to report in `error`."""
    if not callable(getattr(image, "read", None)):
        return image
    try:
        return to_pil(image)  # type: ignore[arg-type]
    except ValueError:
        return image


@dataclass
class _ViewRequest:
    """What the pending view job shows, and what was chosen for it while it computes."""

    source: ImageInput
    name: str | None
    layer: str | None  # None: the default layer, decided by the job
    compare: list[str] | None
    relist: bool
    rebuild_device: str | None
    channel: int | None = None
    position: list[int] | None = None  # an occlusion to run once shown ([]: the centre)


class FeatureExplorer(anywidget.AnyWidget):
    """Explore a vision model's feature maps, statistics and occlusion maps with the mouse.

    Every control has a Python counterpart: set `layer`, `sort_by`, `channel`,
    `num_features`, `color_scale`, `all_layers`, `device`, `position` (which starts an
    occlusion sweep) or `compare`, assign `image`, and read `features`, `statistics`,
    `busy`, `progress` and `error`. Model work runs on one background thread; call `wait()`
    to block until it is done.

    Args:
        model: any `torch.nn.Module` (timm models get their own preprocessing).
        image: what to look at (PIL image, array, tensor, path); a bundled sample if None.
        layers: restrict the layer dropdown to these module names (default: the model's
            stages and blocks; the "all modules" toggle reaches every module).
        layer: the layer shown first (default: the deepest one whose maps are >= 12 px).
        device: explicit device ("cpu", "cuda", ...); overrides `use_cuda`.
        use_cuda: use CUDA when available.
        num_features: how many maps the grid shows.
        sort_by: "activation", "variance" or "random".
        transform: PIL image -> (C, H, W) tensor; default: the model's timm eval transform.
        patch_size, stride: the occlusion patch and its step, in input pixels.
        cache_size: how many (image, layer) feature tensors the visualizer keeps.
        compare: layers for the comparison chart (default: up to 12 of the layer list).
        **kwargs: other traits (e.g. `color_scale="shared"`) or ipywidgets options (`layout`).

    Example:
        >>> model = timm.create_model("resnet18", pretrained=False)
        >>> explorer = FeatureExplorer(model, layer="layer2")
        >>> explorer  # shows the widget
        >>> explorer.sort_by = "variance"; explorer.channel = 7; explorer.position = (4, 4)
    """

    _esm = _asset("widget.js")
    _css = _asset("widget.css")

    layer = t.Unicode("").tag(sync=True)
    """The module whose output is shown. Changing it runs one forward, stopped at the layer.

    - Type: `str` (a name from `model.named_modules()`)
    """
    sort_by = t.Enum(SORT_MODES, default_value=SORT_MODES[0]).tag(sync=True)
    """The grid's channel order: "activation", "variance" or "random" (seed 0).

    - Default: `"activation"`
    """
    channel = t.Int(0).tag(sync=True)
    """The selected channel, shown enlarged and used for the occlusion map. Set while a layer
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
    """The selected unit's (h, w) on the layer's map; setting it starts an occlusion sweep
    (set while a layer is being computed: on that layer's map, once it is shown).

    - Type: `[]` (not chosen yet; occlusion uses the centre) or `[h, w]`
    """
    compare = t.List(t.Unicode()).tag(sync=True)
    """The layers in the comparison chart; their statistics are in `compare_statistics`.

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

    _contract = t.Dict(default_value=contract()).tag(sync=True)  # enums and limits for the view
    _job = t.Enum([job.value for job in JobState], JobState.IDLE.value).tag(sync=True)
    _layers = t.List(t.Dict()).tag(sync=True)
    _devices = t.List(t.Unicode()).tag(sync=True)
    _order = t.List(t.Int()).tag(sync=True)
    _image = t.Bytes(b"").tag(sync=True)
    _image_meta = t.Dict().tag(sync=True)
    _grid = t.Bytes(b"").tag(sync=True)
    _grid_meta = t.Dict().tag(sync=True)
    _unit = t.Bytes(b"").tag(sync=True)
    _unit_meta = t.Dict().tag(sync=True)
    _occlusion = t.Bytes(b"").tag(sync=True)
    _occlusion_meta = t.Dict().tag(sync=True)

    def __init__(
        self,
        model: nn.Module,
        image: ImageInput | None = None,
        *,
        layers: Sequence[str] | None = None,
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
        **kwargs: Any,
    ) -> None:
        for name in kwargs:
            if name not in _EXTRA_KWARGS:
                raise TypeError(
                    f"Unexpected keyword argument {name!r}. Check the spelling of your "
                    "parameters; see help(FeatureExplorer)."
                )
        check_patch(patch_size, stride)
        self._lock = threading.RLock()
        self._tls = threading.local()
        self._model = model
        self._transform = transform
        self._cache_size = cache_size
        self.patch_size = patch_size
        self.stride = stride
        self._viz = FeatureVisualizer(
            model, use_cuda, device=device, transform=transform, cache_size=cache_size
        )
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
        self._occ_result: OcclusionResult | None = None
        self._occ_cancelled = False
        self._request: _ViewRequest | None = None  # the pending view job's
        self._viewed = threading.Event()  # set once a view is shown (or the first one failed)
        self._displayed = False
        self._outbox: dict[str, tuple[int, bytes]] = {}  # chunked payloads: (id, data)
        self._payload_id = 0
        self._upload: _Upload | None = None
        channel = kwargs.pop("channel", None)
        self._source: ImageInput = _read_now(image) if image is not None else SAMPLE_IMAGE
        self._source_name = "sample.png" if image is None else _image_name(image)
        self._worker = Worker(self._lock, self._set_busy)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        if self._viz.device.type not in devices:
            devices.append(self._viz.device.type)
        with self._quiet():
            super().__init__(
                num_features=num_features,
                sort_by=sort_by,
                _devices=devices,
                device=self._viz.device.type,
                **kwargs,
            )
        self.on_msg(self._handle_message)
        self._submit_view(self._source, layer=layer, compare=compare, relist=True)
        if channel is not None:  # checked once the layer's channel count is known
            self._request.channel = channel  # type: ignore[union-attr]

    # ------------------------------------------------------------------ public Python API
    @property
    def visualizer(self) -> FeatureVisualizer:
        """The `FeatureVisualizer` doing the work (for its seed API: plots, statistics...)."""
        return self._viz

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
            self._submit_view(SAMPLE_IMAGE, name="sample.png", relist=True)
        else:
            self._submit_view(_read_now(value), name=_image_name(value), relist=True)

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

    @property
    def occlusion_result(self) -> OcclusionResult | None:
        """The last (possibly partial) occlusion sweep, for every channel of its unit."""
        return self._occ_result

    def occlusion_map(self, channel: int | None = None, signed: bool = False) -> np.ndarray:
        """The occlusion map (H_in, W_in) of `channel` (default: the selected one)."""
        if self._occ_result is None:
            raise ValueError("no occlusion has run yet; set `position` or call `run_occlusion()`.")
        return self._occ_result.map(self.channel if channel is None else channel, signed=signed)

    def run_occlusion(self, position: Sequence[int] | None = None) -> None:
        """Start an occlusion sweep for the unit at `position` (default: the current one, or
        the centre of the map) in the background; results stream into the widget."""
        if position is not None and list(position) != self.position:
            self.position = list(position)  # checked; the observer starts the sweep
        else:  # an equal value notifies nobody: start it here
            self._submit_occlusion(None if position is None else list(position))

    def cancel(self) -> None:
        """Stop a running occlusion sweep (the partial map stays, marked cancelled)."""
        with self._lock:
            if self._request is not None:  # not to be run once the pending view is shown
                self._request.position = None
            running = self._worker.pending(JobState.OCCLUSION)
            self._worker.invalidate(JobState.OCCLUSION)
            if running:
                self._occ_cancelled = True
                meta = self._occlusion_meta
                if meta and not meta.get("complete"):
                    with self._quiet():
                        self._occlusion_meta = {**meta, "cancelled": True}

    def wait(self, timeout: float | None = None) -> FeatureExplorer:
        """Block until the background work is done (not from the worker itself), however
        long it takes unless a `timeout` in seconds is given.

        Raises:
            TimeoutError: if it is still busy after `timeout` seconds.
        """
        if not self._worker.wait(timeout):
            raise TimeoutError(f"the explorer was still busy after {timeout} s ({self.status}).")
        return self

    def save_png(self, path: str | os.PathLike, view: str = ExportView.GRID.value) -> Path:
        """Save the current `view` ("grid", "channel" or "occlusion") as a PNG file.

        Returns:
            The path written.
        """
        fig = self._figure(view)
        path = Path(path)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        return path

    def close(self) -> None:
        """Stop the worker and close the widget and its views."""
        worker = getattr(self, "_worker", None)  # absent if __init__ failed early
        if worker is not None:
            worker.shutdown()
        super().close()

    # ------------------------------------------------------------------ static fallback
    def _figure(self, view: str):
        if view not in EXPORT_VIEWS:
            raise ValueError(f"`view` must be one of {EXPORT_VIEWS}, got {view!r}.")
        with self._lock:
            features, shown, result = self._features, self._shown, self._occ_result
            channels = list(self._grid_meta.get("channels", []))
            channel, layer = self.channel, self.layer
        if features is None or shown is None:
            raise ValueError("nothing to save yet: the first result is still being computed.")
        maps = features[0]
        if view == ExportView.GRID:
            return feature_grid_figure(
                maps,
                channels,
                title=f"{layer}: top {len(channels)} of {maps.shape[0]} by {self.sort_by}",
                shared_scale=self.color_scale == SHARED_SCALE,
            )
        if view == ExportView.CHANNEL:
            return feature_grid_figure(
                maps, [channel], title=f"{layer}, channel {channel}", figsize=(4.5, 4.8)
            )
        if result is None or result.layer_name != layer:
            raise ValueError("no occlusion map for this layer yet; set `position` first.")
        sensitivity = result.map(channel)
        centre = unit_centre(result.position, tuple(maps.shape[-2:]), sensitivity.shape)
        done = "" if result.complete else " (partial)"
        return occlusion_figure(
            shown,
            sensitivity,
            centre=centre,
            title=f"{layer}, channel {channel}, position {result.position}{done}",
        )

    def _static_png(self) -> bytes:
        """The input image beside the grid of the last complete view (viridis, as in the live
        view): the static stand-in where the widget cannot run."""
        with self._lock:
            shown, meta, data = self._shown, dict(self._grid_meta), self._payload_bytes("_grid")
        if shown is None or not meta.get("n"):
            raise ValueError("nothing to show yet")
        return grid_png(shown, data, meta, shared=self.color_scale == SHARED_SCALE)

    def _repr_mimebundle_(self, **kwargs: Any):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        if not self._displayed:  # one forward, so that an executed notebook keeps a picture;
            self._displayed = True  # never the comparison or an occlusion, nor later displays
            self._viewed.wait(_FIRST_VIEW_TIMEOUT_S)
        with contextlib.suppress(Exception):  # the live widget works without the picture
            data["image/png"] = base64.b64encode(self._static_png()).decode("ascii")
        return data, metadata

    # ------------------------------------------------------------------ worker plumbing
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

    def _set_busy(self, busy: bool) -> None:
        with self._quiet():
            self.busy = busy
            if not busy:
                self.progress = 0.0
                self.status = ""
                self._job = JobState.IDLE.value

    def _report(self, job: Job, exc: BaseException) -> None:
        with self._lock:
            if not job.current:
                return
            with self._quiet(), self.hold_sync():
                if isinstance(exc, OcclusionCancelled):  # `cancel()` has said so already
                    return
                if job.kind == JobState.VIEW:  # the controls go back to what is shown
                    self._request = None
                    self._viewed.set()
                    if self._features_layer and self.layer != self._features_layer:
                        self.layer = self._features_layer
                    if self.device != self._viz.device.type:
                        self.device = self._viz.device.type
                    channel = self._unit_meta.get("channel", self.channel)
                    if self.channel != channel:
                        self.channel = channel
                    self.position = list(self._occlusion_meta.get("position", []))
                cause = exc.__cause__ if isinstance(exc, RuntimeError) and exc.__cause__ else None
                text = f"{type(exc).__name__}: {exc}"
                if cause is not None and str(cause) not in text:
                    text += f" ({type(cause).__name__}: {cause})"
                self.error = text

    def _start(self, job: Job, status: str, progress: float = -1.0) -> None:
        with self._lock:
            if job.current:
                with self._quiet(), self.hold_sync():
                    self._job = JobState(job.kind).value
                    self.status = status
                    self.progress = progress

    def _submit_view(
        self,
        source: ImageInput | None = None,
        *,
        layer: str | None = None,
        name: str | None = None,
        compare: Sequence[str] | None = None,
        relist: bool = False,
        rebuild_device: str | None = None,
    ) -> None:
        """Queue the image/layer job: (new visualizer), (layer list), features, statistics,
        rankings; then the comparison. Any running occlusion is cancelled. A job that replaces
        a pending one also does what that one was asked (image, layer list, device,
        comparison); the channel and unit chosen meanwhile carry over only to the same layer
        of the same image."""
        with self._lock:
            old = self._request
            if old is not None:
                if source is None:
                    source, name = old.source, old.name
                layer = layer or old.layer
                relist = relist or old.relist
                rebuild_device = rebuild_device or old.rebuild_device
                compare = old.compare if compare is None else compare
            request = _ViewRequest(
                self._source if source is None else source,
                name,
                layer or self.layer or None,
                None if compare is None else list(compare),
                relist,
                rebuild_device,
            )
            if old is not None and (old.source, old.layer) == (request.source, request.layer):
                request.channel, request.position = old.channel, old.position
            self._request = request
            self._worker.invalidate(JobState.OCCLUSION)
            with self._quiet():
                self.error = ""
            self._worker.submit(
                JobState.VIEW, lambda job: self._run_view(job, request), self._report
            )

    def _run_view(self, job: Job, request: _ViewRequest) -> None:
        self._start(job, f"computing {request.layer or 'layers'}…")
        viz, source = self._viz, request.source
        if request.rebuild_device is not None:
            viz = FeatureVisualizer(
                self._model,
                device=request.rebuild_device,
                transform=self._transform,
                cache_size=self._cache_size,
            )
            with self._lock:  # the model has moved: later jobs must use this one
                self._viz = viz
        relist = request.relist or not self._layers
        fresh = relist or request.rebuild_device is not None or self._shown is None
        shown = viz.display_image(source) if fresh else self._shown
        infos = None
        if relist:
            infos = self._list_layers(viz, source)
            if not infos:
                raise ValueError(
                    "the model has no layer whose output can be shown as maps for this image."
                )
        current = request.layer or self.layer or default_layer(infos or [])
        features = viz.get_features(source, current).detach().float().cpu()
        stats = viz.get_feature_statistics(source, current)
        rankings = {mode: viz.rank_channels(source, current, mode, index=0) for mode in SORT_MODES}
        with self._lock:
            if not job.current:
                return
            self._publish_view(request, shown, infos, current, features, stats, rankings)
            if request.position is not None:
                self._queue_occlusion()
        names = self._compare_names(request.compare, infos)
        if names is not None:
            self._submit_compare(names, source)

    def _list_layers(self, viz: FeatureVisualizer, source: ImageInput) -> list[LayerInfo]:
        return explorer_layers(viz, source, self.all_layers, self._restrict)

    def _compare_names(
        self, requested: Sequence[str] | None, infos: list[LayerInfo] | None
    ) -> list[str] | None:
        """The layers to compare after a view job: requested, current, or a default."""
        if requested is not None:
            return list(requested)
        if self.compare:
            return list(self.compare) if infos is not None else None
        if infos is None:
            return None
        return default_compare(infos)

    def _publish_view(
        self,
        request: _ViewRequest,
        shown: np.ndarray | None,
        infos: list[LayerInfo] | None,
        layer: str,
        features: torch.Tensor,
        stats: dict,
        rankings: dict[str, list[int]],
    ) -> None:
        new_layer = layer != self._features_layer
        self._request = None
        self._source = request.source
        if request.name is not None:
            self._source_name = request.name
        self._features = features
        self._features_layer = layer
        self._rankings = rankings
        self._occ_result = None
        with self._quiet(), self.hold_sync():
            if shown is not None and shown is not self._shown:
                self._shown = shown
                height, width = shown.shape[:2]
                meta = ImageMeta(h=height, w=width, name=self._source_name, batch=features.shape[0])
                self._set_payload("_image", encode_png(shown), dict(meta))
            if infos is not None:
                self._layers = [layer_entry(info) for info in infos]
            if self._viz.device.type != self.device:
                self.device = self._viz.device.type
            self.layer = layer
            self.statistics = json_safe(stats)
            self._order = rankings[self.sort_by]
            problems = []
            wanted, count = request.channel, features.shape[1]
            shown_channel = -1 if new_layer else self._unit_meta.get("channel", -1)
            if wanted is not None and 0 <= wanted < count:
                self.channel = wanted
            else:  # the one shown (a channel chosen for a replaced request is not), or the top
                self.channel = (
                    shown_channel if 0 <= shown_channel < count else rankings[self.sort_by][0]
                )
                if wanted is not None:  # its channel count was not known when it was set
                    problems.append(channel_error(wanted, layer, count))
            unit = request.position
            off_map = position_error(unit, layer, features.shape[2:]) if unit else None
            if off_map is not None:
                problems.append(off_map)
                request.position = unit = None
            self.position = unit or []
            if problems:
                self.error = " ".join(problems)
            self._set_payload("_occlusion", b"", {})
            self._push_grid()
            self._push_unit()
        self._viewed.set()

    def _submit_compare(self, names: list[str], source: ImageInput | None = None) -> None:
        source = self._source if source is None else source

        def run(job: Job) -> None:
            self._start(job, "comparing layers…")
            stats = self._viz.compare_layers(source, names, plot=False)
            with self._lock:
                if job.current:
                    with self._quiet(), self.hold_sync():
                        self.compare = list(names)
                        self.compare_statistics = json_safe(stats)

        with self._lock:
            self._worker.submit(JobState.COMPARE, run, self._report)

    def _submit_occlusion(self, position: list[int] | None = None) -> None:
        """Run an occlusion sweep at `position` (None: the current unit, else the centre) now,
        or once the pending view is shown."""
        with self._lock:
            with self._quiet():
                self.error = ""
            request = self._request
            if request is not None:
                request.position = position or request.position or []
            elif self._features is None:
                raise ValueError("the layer's features are not ready yet; try again shortly.")
            else:
                self._queue_occlusion()

    def _queue_occlusion(self) -> None:
        layer, source = self._features_layer, self._source
        position = tuple(self.position) if self.position else None
        self._occ_cancelled = False
        self._worker.submit(
            JobState.OCCLUSION,
            lambda job: self._run_occlusion(job, source, layer, position),
            self._report,
        )

    def _run_occlusion(
        self, job: Job, source: ImageInput, layer: str, position: tuple[int, int] | None
    ) -> None:
        self._start(job, "occlusion…", 0.0)
        last = [0.0]

        def on_progress(done: int, total: int, partial: OcclusionResult) -> None:
            now = time.monotonic()
            if now - last[0] < _PROGRESS_INTERVAL_S and done < total:
                return
            last[0] = now
            with self._lock:
                if job.current:
                    self._occ_result = partial
                    with self._quiet(), self.hold_sync():
                        self.progress = done / total
                        self.status = f"occlusion {done}/{total}"
                        self._push_occlusion(done, total)

        result = self._viz.occlusion(
            source,
            layer,
            position,
            patch_size=self.patch_size,
            stride=self.stride,
            on_progress=on_progress,
            should_stop=job.stale,
            progress=False,  # the widget shows its own
        )
        with self._lock:
            if job.current:
                self._occ_result = result
                total = int(result.done.size)
                with self._quiet(), self.hold_sync():
                    self.position = list(result.position)
                    self._push_occlusion(total, total)

    # ------------------------------------------------------------------ payloads
    def _push_grid(self) -> None:
        features = self._features
        if features is None:
            return
        maps = features[0]
        channels = self._order[: min(max(1, self.num_features), MAX_FEATURE_MAPS)]
        selected = maps[channels].numpy()
        data, maps = encode_maps(selected)
        with np.errstate(all="ignore"):
            means = np.nanmean(selected.reshape(len(channels), -1), axis=1).tolist()
        cols = grid_columns(len(channels))
        meta = GridMeta(
            **maps,
            layer=self.layer,
            sort_by=self.sort_by,
            channels=channels,
            means=means,
            cols=cols,
        )
        with self.hold_sync():
            self._set_payload("_grid", data, json_safe(meta))

    def _push_unit(self) -> None:
        features = self._features
        if features is None:
            return
        channel_map = features[0, self.channel].numpy()
        data, maps = encode_maps(channel_map)
        with np.errstate(all="ignore"):
            mean = float(np.nanmean(channel_map))
        meta = UnitMeta(**maps, layer=self.layer, channel=self.channel, mean=mean)
        with self.hold_sync():
            self._set_payload("_unit", data, json_safe(meta))

    def _push_occlusion(self, done: int, total: int) -> None:
        result = self._occ_result
        if result is None or result.layer_name != self.layer:
            return
        sensitivity = result.map(self.channel)
        data, maps = encode_maps(sensitivity)
        height, width = self._features.shape[-2:] if self._features is not None else (1, 1)
        meta = OcclusionMeta(
            **maps,
            layer=result.layer_name,
            channel=self.channel,
            position=list(result.position),
            map_size=[int(height), int(width)],
            done=int(done),
            total=int(total),
            complete=bool(done >= total),
            cancelled=self._occ_cancelled,
        )
        with self.hold_sync():
            self._set_payload("_occlusion", data, json_safe(meta))

    def _set_payload(self, name: str, data: bytes, meta: dict) -> None:
        """Set payload trait `name` and its `<name>_meta` (inside `hold_sync()`). Data over
        `INLINE_PAYLOAD_BYTES` go in `Push.CHUNK` messages instead, and the metadata say so
        (`chunked`): no single message carries more than `MAX_MESSAGE_BYTES`."""
        if len(data) <= INLINE_PAYLOAD_BYTES:
            self._outbox.pop(name, None)
            setattr(self, name, data)
            setattr(self, f"{name}_meta", meta)
            return
        self._payload_id += 1
        self._outbox[name] = (self._payload_id, data)
        count = -(-len(data) // CHUNK_BYTES)
        chunked = {"id": self._payload_id, "size": len(data), "count": count}
        self._send_chunks(name)  # before the metadata: the view paints once both are there
        setattr(self, name, b"")
        setattr(self, f"{name}_meta", {**meta, "chunked": chunked})

    def _send_chunks(self, name: str) -> None:
        """Send chunked payload `name` (if there is one) in `Push.CHUNK` messages."""
        if name not in self._outbox:
            return
        ident, data = self._outbox[name]
        count = -(-len(data) // CHUNK_BYTES)
        for index in range(count):
            piece = data[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES]
            header = {"name": name, "id": ident, "index": index, "count": count}
            self.send({"type": Push.CHUNK.value, **header, "size": len(data)}, [piece])

    def _payload_bytes(self, name: str) -> bytes:
        """The data of payload trait `name`, inline or chunked."""
        return self._outbox[name][1] if name in self._outbox else getattr(self, name)

    # ------------------------------------------------------------------ validation
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

    def _target(self) -> tuple[_ViewRequest | None, str, tuple[int, ...] | None]:
        """The pending view's request (None for changes the widget makes itself), the layer a
        channel or unit chosen now applies to, and its (C, H, W) maps' shape if known."""
        request = None if self._is_quiet() else self._request
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
        if not value:
            return value
        if len(value) != 2:
            raise t.TraitError(f"`position` must be [] or [h, w], got {value!r}.")
        with self._lock:
            request, layer, shape = self._target()
            if request is not None and request.relist:
                shape = None  # a new image may change the map size: checked when it is shown
            error = None if shape is None else position_error(value, layer, shape[1:])
            if error is not None:
                raise t.TraitError(error)
        return value

    @t.validate("compare")
    def _check_compare(self, proposal: t.Bunch) -> list[str]:
        value = list(proposal["value"])
        try:
            resolve_layers(self._viz.model, value)
        except (TypeError, ValueError) as exc:
            raise t.TraitError(str(exc)) from exc
        return value

    # ------------------------------------------------------------------ observers
    @t.observe("layer")
    def _on_layer(self, change: t.Bunch) -> None:
        if not self._is_quiet():
            self._submit_view(layer=change["new"])

    @t.observe("all_layers")
    def _on_all_layers(self, change: t.Bunch) -> None:
        if not self._is_quiet():
            self._submit_view(layer=self.layer, relist=True)

    @t.observe("device")
    def _on_device(self, change: t.Bunch) -> None:
        if not self._is_quiet():
            self._submit_view(layer=self.layer, rebuild_device=change["new"])

    @t.observe("sort_by", "num_features")
    def _on_order(self, change: t.Bunch) -> None:
        if self._is_quiet():
            return
        with self._lock:
            if self._rankings:
                with self._quiet(), self.hold_sync():
                    self._order = self._rankings[self.sort_by]
                    self._push_grid()

    @t.observe("channel")
    def _on_channel(self, change: t.Bunch) -> None:
        with self._lock:
            if self._is_quiet() or self._request is not None:
                return  # a layer being computed publishes its own channel view
            with self._quiet(), self.hold_sync():
                self._push_unit()
                meta = self._occlusion_meta
                if meta:
                    self._push_occlusion(meta.get("done", 0), meta.get("total", 0))

    @t.observe("position")
    def _on_position(self, change: t.Bunch) -> None:
        if not self._is_quiet() and change["new"]:
            self._submit_occlusion(list(change["new"]))

    @t.observe("compare")
    def _on_compare(self, change: t.Bunch) -> None:
        if not self._is_quiet() and change["new"]:
            self._submit_compare(list(change["new"]))

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
        handler = self._message_handlers().get(content.get("type"))  # type: ignore[arg-type]
        if handler is not None:
            handler(content, buffers)

    def _message_handlers(self) -> dict[Message, Callable[[dict, list], None]]:
        """What each kind of front-end message does (one entry per `Message`)."""
        return {
            Message.CANCEL: lambda content, buffers: self.cancel(),
            Message.OCCLUDE: lambda content, buffers: self._occlude_now(),
            Message.UPLOAD: lambda content, buffers: self._receive_upload(content, buffers),
            Message.RESEND: lambda content, buffers: self._resend(content.get("name")),
        }

    def _resend(self, name: Any) -> None:
        if name in _PAYLOADS:
            with self._lock:
                self._send_chunks(name)

    def _receive_upload(self, content: dict, buffers: list) -> None:
        """One chunk of an upload: the file is decoded once all `count` chunks have arrived
        in order. A chunk out of order (one went missing) or a wrong total drops the upload
        and says so in `error`. A message without `count` carries the whole file."""
        name = str(content.get("name", "upload"))
        if "count" not in content:
            self._load_upload(name, buffers)
            return
        index, count, size = (content.get(key) for key in ("index", "count", "size"))
        if not all(isinstance(v, int) and v >= 0 for v in (index, count, size)) or not count:
            self._drop_upload(f"Upload of {name!r} arrived malformed; please try again.")
            return
        if size > MAX_UPLOAD_BYTES:
            self._drop_upload(
                f"{name} is larger than {MAX_UPLOAD_BYTES >> 20} MB; please pick a smaller image."
            )
            return
        if index == 0:
            self._upload = _Upload(content.get("id"), name, count, size, [])
        upload = self._upload
        if upload is None or upload.id != content.get("id") or index != len(upload.parts):
            expected = 0 if upload is None else len(upload.parts)
            self._drop_upload(
                f"Upload of {name!r} lost chunk {expected + 1} of {count} (chunk {index + 1} "
                "came next); please try again."
            )
            return
        if not buffers or (upload.count, upload.size) != (count, size):
            self._drop_upload(f"Upload of {name!r} arrived without data; please try again.")
            return
        upload.parts.append(bytes(buffers[0]))
        if len(upload.parts) < count:
            return
        self._upload = None
        data = b"".join(upload.parts)
        if len(data) != size:
            self._drop_upload(
                f"Upload of {name!r} arrived incomplete ({len(data)} of {size} bytes); "
                "please try again."
            )
            return
        self._load_upload(name, [data])

    def _drop_upload(self, message: str) -> None:
        self._upload = None
        self.error = message

    def _occlude_now(self) -> None:
        try:
            self._submit_occlusion()
        except ValueError as exc:
            self.error = str(exc)

    def _load_upload(self, name: str, buffers: list) -> None:
        try:
            picture = decode_upload(name, buffers)
        except ValueError as exc:
            self.error = str(exc)
            return
        self._submit_view(picture, name=name, relist=True)
