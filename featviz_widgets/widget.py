"""`FeatureExplorer`: the interactive notebook widget on top of `FeatureVisualizer`.

Traits are the source of truth (`_traits`). Model work (forwards, occlusion sweeps) runs on
one background thread, never on the kernel's shell thread (`_jobs`); changing the sort mode,
the channel or the number of maps only re-slices features the widget already holds. Feature
maps travel to the browser as uint8 tiles with per-tile scale metadata (`_views`), set inside
`hold_sync()` so the view never sees a payload without its metadata, in chunks when large
(`_transfer`). The public API of each view sits beside its jobs, in a mixin: `OcclusionAPI`
(`_jobs`), `LooksForAPI` (`_looks_for`), `ExplorerExamples` (`_examples_jobs`); `save_png`
and the notebook's static picture are `StaticDisplay`'s (`_static`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import traitlets as t
from PIL import Image
from torch import nn

from ._capture import resolve_layers
from ._examples_jobs import ExamplesJobs, ExplorerExamples
from ._inputs import ImageInput, image_name, read_now
from ._jobs import ExplorerJobs, OcclusionAPI
from ._looks_for import LooksForAPI
from ._occlusion import OcclusionResult
from ._protocol import SORT_MODES, Message
from ._static import StaticDisplay
from ._traits import ExplorerTraits
from ._transfer import Outbox, Uploads
from ._validate import check_patch
from ._worker import Worker
from .visualizer import FeatureVisualizer

__all__ = ["FeatureExplorer"]

_HERE = Path(__file__).parent
SAMPLE_IMAGE = _HERE / "sample.png"
# Traits and ipywidgets options the constructor takes besides its named arguments.
_EXTRA_KWARGS = (
    "channel",
    "color_scale",
    "all_layers",
    "looks_for_steps",
    "looks_for_options",
    "layout",
    "tabbable",
    "tooltip",
)


def _asset(name: str) -> Path:
    """A front-end file: the wheel's `static/` copy, else the repository's `js/` source."""
    packaged = _HERE / "static" / name
    return packaged if packaged.is_file() else _HERE.parent / "js" / name


class FeatureExplorer(OcclusionAPI, LooksForAPI, ExplorerExamples, StaticDisplay, ExplorerTraits):
    """Explore a vision model's feature maps, statistics and occlusion maps with the mouse.

    Every control has a Python counterpart: set `layer`, `sort_by`, `channel`,
    `num_features`, `color_scale`, `all_layers`, `device`, `position` (which starts an
    occlusion sweep) or `compare`, assign `image`, call `run_looks_for()` (the picture the
    channel looks for), and read `features`, `statistics`, `busy`, `progress` and `error`.
    Model work runs on one background thread; call `wait()` to block until it is done.

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
        dataset: a collection to scan in the background for the top images of every channel
            (a folder, a list of paths or images, a Dataset, a DataLoader; see `dataset`).
        **kwargs: other traits (e.g. `color_scale="shared"`) or ipywidgets options (`layout`).

    Example:
        >>> model = timm.create_model("resnet18", pretrained=False)
        >>> explorer = FeatureExplorer(model, layer="layer2")
        >>> explorer  # shows the widget
        >>> explorer.sort_by = "variance"; explorer.channel = 7; explorer.position = (4, 4)
    """

    _esm = _asset("widget.js")
    _css = _asset("widget.css")

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
        self._viewed = threading.Event()  # set once a view is shown (or the first one failed)
        self._displayed = False
        self._outbox = Outbox(self)
        self._uploads = Uploads(self._show_upload, self._set_error)
        self._jobs = ExplorerJobs(self)
        self._examples_jobs = ExamplesJobs(self)
        channel = kwargs.pop("channel", None)
        self._source: ImageInput = read_now(image) if image is not None else SAMPLE_IMAGE
        self._source_name = "sample.png" if image is None else image_name(image)
        self._worker = Worker(self._lock, self._jobs.set_busy)
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
        self.observe(self._examples_jobs.on_selection, names=["layer", "channel"])
        self._jobs.submit_view(self._source, layer=layer, compare=compare, relist=True)
        if channel is not None:  # checked once the layer's channel count is known
            self._jobs.request.channel = channel  # type: ignore[union-attr]
        if dataset is not None:  # after the first view: it scans that view's layer list
            self.scan_dataset(dataset)

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
            self._jobs.submit_view(SAMPLE_IMAGE, name="sample.png", relist=True)
        else:
            self._jobs.submit_view(read_now(value), name=image_name(value), relist=True)

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

    def cancel(self) -> None:
        """Stop a running occlusion sweep or "looks for" optimization (the partial map or
        picture stays, marked cancelled) and a dataset scan (the examples of an earlier scan
        stay)."""
        self._jobs.cancel()
        self._examples_jobs.cancel()

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
        """Stop the worker and close the widget and its views."""
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
        handler = self._message_handlers().get(content.get("type"))  # type: ignore[arg-type]
        if handler is not None:
            handler(content, buffers)

    def _message_handlers(self) -> dict[Message, Callable[[dict, list], None]]:
        """What each kind of front-end message does (one entry per `Message`)."""
        return {
            Message.CANCEL: lambda content, buffers: self.cancel(),
            Message.OCCLUDE: lambda content, buffers: self._occlude_now(),
            Message.UPLOAD: lambda content, buffers: self._uploads.receive(content, buffers),
            Message.RESEND: lambda content, buffers: self._resend(content.get("name")),
            Message.EXAMPLE: lambda content, buffers: self.show_dataset_image(
                content.get("index")  # type: ignore[arg-type]
            ),
            Message.LOOKS_FOR: lambda content, buffers: self._looks_for_now(content),
        }

    def _show_upload(self, name: str, picture: Image.Image) -> None:
        self._jobs.submit_view(picture, name=name, relist=True)

    def _set_error(self, message: str) -> None:
        self.error = message

    def _resend(self, name: Any) -> None:
        with self._lock:
            self._outbox.send(name)
