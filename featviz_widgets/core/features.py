"""The feature store: layer outputs captured as (B, C, H, W) maps, their layouts and a cache."""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from itertools import chain

import torch
from torch import nn

from .capture import capture, resolve_layers
from .layout import Format, LayoutError, LayoutTracker, LayoutWarning, ModelGeometry, to_nchw
from .precision import exact_float32

__all__ = ["FeatureMaps", "FeatureStore"]


@dataclass(frozen=True)
class FeatureMaps:
    """A layer's output as maps.

    Attributes:
        maps: the output as a contiguous tensor of shape (B, C, H, W).
        layout: the layout the layer produced it in (`Format.UNKNOWN`: read channels-first).
    """

    maps: torch.Tensor
    layout: Format


class FeatureStore:
    """Captures layers of `model` as `FeatureMaps` and keeps the last `cache_size` of them.

    The layout of each layer's output is decided once per input size, during a forward, and
    kept. Cached maps are keyed by the batch's content, shape and dtype and by the version of
    every parameter and buffer, so in-place weight updates invalidate them.

    Args:
        model: the model, already on its device.
        geometry: the model's token layout (prefix tokens, patch grid).
        cache_size: how many (batch, layer) maps to keep for reuse.

    Example:
        >>> store = FeatureStore(model, ModelGeometry(model))
        >>> store.maps(batch, ["layer3"])["layer3"].maps.shape
        torch.Size([1, 256, 14, 14])
    """

    def __init__(self, model: nn.Module, geometry: ModelGeometry, cache_size: int = 8) -> None:
        self.model = model
        self.geometry = geometry
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, FeatureMaps] = OrderedDict()
        # Layout of each layer's output per input size (C, H, W), decided during forwards.
        self._formats: dict[tuple[str, tuple], Format] = {}
        self._not_4d: set[tuple[str, tuple]] = set()  # layers whose output needs no layout
        self._lock = threading.RLock()
        # The last batch hashed (held, so that its memory cannot be reused by another), its
        # version counter and digest: a job asks for the key of one prepared batch several
        # times, through views of it (`detach()` shares memory and version counter).
        self._last_digest: tuple[torch.Tensor, int, str] | None = None
        # The weights' version in cache keys: by default read off `model`'s own tensors. The
        # explorer's store reads its twin's original (`ModelTwin.synced_version`), whose
        # counters move when the user trains and the twin's own do not.
        self.weights_version: Callable[[], Hashable] | None = None

    def __len__(self) -> int:
        """How many (batch, layer) maps the cache holds."""
        return len(self._cache)

    def clear(self) -> None:
        """Forget every cached map (decided layouts are kept)."""
        with self._lock:
            self._cache.clear()

    def model_version(self) -> Hashable:
        """The model's weights' version: it moves when they change (training, loading)."""
        if self.weights_version is not None:
            return self.weights_version()
        # In-place updates (optimizer steps, load_state_dict) bump these counters.
        tensors = chain(self.model.parameters(), self.model.buffers())
        return tuple(t._version for t in tensors)

    def key(self, batch: torch.Tensor) -> tuple:
        """A cache key for `batch`: its content, shape and dtype, and the model's version."""
        return (self._digest(batch), tuple(batch.shape), str(batch.dtype), self.model_version())

    def _digest(self, batch: torch.Tensor) -> str:
        """`batch`'s content hash, computed again only for other memory or after an in-place
        change (the version counter moves)."""
        last = self._last_digest
        if last is not None and _same_memory(last[0], batch) and last[1] == batch._version:
            return last[2]
        # The raw bytes, whatever the dtype (numpy has no bfloat16): dtype and shape are in
        # the key beside them.
        raw = batch.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest = hashlib.blake2b(raw.numpy(), digest_size=16).hexdigest()
        self._last_digest = (batch.detach(), batch._version, digest)
        return digest

    def capture_raw(self, batch: torch.Tensor, layers: Sequence[str], **options) -> dict:
        """Raw outputs of `layers` from one forward (see `capture`). Layouts not yet known for
        this input size are decided on the way, every module observed, and kept."""
        size = tuple(batch.shape[1:])
        known = all((name, size) in self._formats for name in layers)
        tracker = None if known else LayoutTracker(batch)
        raw = capture(self.model, batch, layers, tracker=tracker, **options)
        if tracker is not None:
            for name, fmt in tracker.formats.items():
                self._formats[(name, size)] = fmt
        return raw

    def decide_layout(self, batch: torch.Tensor, name: str) -> None:
        """Decide, once per input size, the layout of layer `name`'s output for inputs shaped
        like `batch` (a forward of the first image, stopped at the layer), so that `normalise`
        can read outputs captured by other means (`capture_with_layer_grad`)."""
        size = tuple(batch.shape[1:])
        if (name, size) in self._formats or (name, size) in self._not_4d:
            return
        with exact_float32():
            self.capture_raw(batch[:1], [name])
        if (name, size) not in self._formats:  # 3-D tokens, pooled: no layout to decide
            self._not_4d.add((name, size))

    def normalise(self, raw: object, name: str, batch: torch.Tensor) -> FeatureMaps:
        """`raw`, the output of layer `name` for `batch`, as (B, C, H, W) maps."""
        maps, fmt = to_nchw(
            raw,
            layer_name=name,
            layout=self._formats.get((name, tuple(batch.shape[1:]))),
            geometry=self.geometry,
            batch_size=batch.shape[0],
            input_hw=(batch.shape[-2], batch.shape[-1]),
        )
        return FeatureMaps(maps, fmt)

    def capture(
        self, batch: torch.Tensor, layers: Sequence[str], **options
    ) -> dict[str, FeatureMaps]:
        """(B, C, H, W) maps and source layout of `layers` from one forward, uncached."""
        raw = self.capture_raw(batch, layers, **options)
        found = {name: self.normalise(output, name, batch) for name, output in raw.items()}
        for name, features in found.items():
            if features.layout is Format.UNKNOWN:
                warnings.warn(
                    f"layer {name!r} outputs {tuple(features.maps.shape)} and nothing in the "
                    "model tells whether its channels come first or last (no convolution, norm, "
                    "per-channel parameter or tensor of known layout, and its sizes fit either "
                    "way); it is read channels-first, PyTorch's convention. If that is wrong, "
                    "pick its enclosing block or a convolution or norm inside it.",
                    LayoutWarning,
                    stacklevel=5,
                )
        return found

    def maps(self, batch: torch.Tensor, layers: Sequence[str]) -> dict[str, FeatureMaps]:
        """(B, C, H, W) maps and source layout of `layers`, from the cache or one exact float32
        forward."""
        modules = resolve_layers(self.model, layers)
        key = self.key(batch)
        with self._lock:
            found = {}
            for name in layers:
                if (key, name) in self._cache:
                    self._cache.move_to_end((key, name))
                    found[name] = self._cache[(key, name)]
            missing = [name for name in dict.fromkeys(layers) if name not in found]
            if missing:
                with exact_float32():
                    captured = self.capture(
                        batch, missing, modules={name: modules[name] for name in missing}
                    )
                for name, features in captured.items():
                    found[name] = self._cache[(key, name)] = features
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return found

    def probe(self, batch: torch.Tensor, layers: Sequence[str]) -> dict[str, FeatureMaps]:
        """Maps of those of `layers` that run and can be read as maps, from one exact float32
        forward of the whole model, uncached."""
        with exact_float32():
            raw = self.capture_raw(batch, layers, stop_early=False, allow_missing=True)
        found = {}
        for name in layers:
            if name not in raw:
                continue
            try:
                found[name] = self.normalise(raw[name], name, batch)
            except LayoutError:
                continue
        return found

    def layer_fn(
        self, layer_name: str, with_grad: bool = False
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """(B, C, H, W) maps of `layer_name` for a batch, the forward stopped there; the layout
        is decided once per input size."""

        def run(batch: torch.Tensor) -> torch.Tensor:
            return self.capture(batch, [layer_name], with_grad=with_grad)[layer_name].maps

        return run


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether `a` and `b` are the same elements of the same memory."""
    return (
        a.device == b.device
        and a.dtype == b.dtype
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.storage_offset() == b.storage_offset()
        and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    )
