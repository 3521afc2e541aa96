"""The result of a dataset scan (`DatasetExamples`): per channel, the top images and the
mean; the winners read again as images and receptive-field crops; saved and loaded as plain
tensors and JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..occlusion.receptive import receptive_boxes
from .scan_state import _FORMAT, _VERSION, _atomic_save, _load_payload
from .sources import DataSource, open_source
from .topk import EMPTY, HISTOGRAM_EDGES, ChannelTopK

if TYPE_CHECKING:
    from ..core.context import ModelContext

__all__ = ["DatasetExamples"]


class DatasetExamples:
    """Per channel of each scanned layer: the top-k images (by the channel's max over
    positions) and the channel's mean over images and positions.

    Attributes:
        layers: the scanned layers, in the order asked.
        k: how many images each channel keeps.
        sources: the index space: per image index, its file path (folders, lists of paths)
            or its index into the list, Dataset or DataLoader, skipped images included, so
            that `sources[i]` names the image `top` reports as index i.
        scanned: the sources that were read and scanned, in index order (skipped ones left
            out): the images to open again.
        skipped: (image index, source, reason) of each image that could not be read.
        input_size: the (H, W) of the model's input, which positions and crops refer to.
        states: per layer, the `ChannelTopK` state (CPU tensors).

    Example:
        >>> examples = viz.dataset_examples("photos/", ["layer3"], k=9)
        >>> examples.top("layer3", 7)[0]
        (1234, 5.82, (3, 9))
        >>> crops = examples.crops("layer3", 7)  # what the unit at each maximum sees
    """

    def __init__(
        self,
        *,
        layers: list[str],
        k: int,
        sources: list[str | int],
        skipped: list[tuple[int, str | int, str]],
        input_size: tuple[int, int] | None,
        states: dict[str, ChannelTopK],
        fingerprint: str = "",
        viz: ModelContext | None = None,
        source: DataSource | None = None,
    ) -> None:
        self.layers, self.k, self.sources, self.skipped = layers, k, sources, skipped
        self.input_size, self.states, self.fingerprint = input_size, states, fingerprint
        self._viz, self._source = viz, source
        self._boxes: dict[str, np.ndarray] = {}

    @property
    def scanned(self) -> list[str | int]:
        """The sources that were read and scanned, in index order (see the class docstring)."""
        bad = {index for index, _, _ in self.skipped}
        return [source for index, source in enumerate(self.sources) if index not in bad]

    def __repr__(self) -> str:
        return (
            f"DatasetExamples({len(self.scanned)} images scanned, {len(self.skipped)} skipped, "
            f"k={self.k}, layers={self.layers})"
        )

    # ----------------------------------------------------------------------------- reading
    def _state(self, layer: str, channel: int | None = None) -> ChannelTopK:
        if layer not in self.states:
            raise KeyError(f"layer {layer!r} was not scanned; scanned: {self.layers}.")
        state = self.states[layer]
        channels = state.scores.shape[0]
        if channel is not None and (
            not isinstance(channel, (int, np.integer)) or not 0 <= channel < channels
        ):
            raise ValueError(
                f"`channel` {channel!r} is out of range for {layer!r}, which has {channels} "
                f"channels (0 to {channels - 1})."
            )
        return state

    def top(self, layer: str, channel: int) -> list[tuple[int, float, tuple[int, int]]]:
        """(image index, score, (h, w) of the maximum) of the channel's top images, best
        first; fewer than k when fewer images were read."""
        state = self._state(layer, channel)
        found = []
        for index, score, position in zip(
            state.index[channel].tolist(),
            state.scores[channel].tolist(),
            state.position[channel].tolist(),
        ):
            if index != EMPTY:
                found.append((index, score, divmod(position, state.width)))
        return found

    def mean(self, layer: str, channel: int | None = None) -> np.ndarray | float:
        """The mean of the channel (every channel if None) over the images and positions."""
        state = self._state(layer, channel)
        means = state.mean().numpy()
        return means if channel is None else float(means[channel])

    def sparsity(self, layer: str, channel: int | None = None) -> np.ndarray | float:
        """The fraction of the channel's values (every channel's if None) over the images and
        positions that are exactly 0 (NaN before any image)."""
        state = self._state(layer, channel)
        zeros = state.zeros.double().numpy()
        fractions = zeros / state.count if state.count else np.full_like(zeros, np.nan)
        return fractions if channel is None else float(fractions[channel])

    def maxima_histogram(self, layer: str, channel: int) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) of the channel's per-image maxima (its score on each image) on the
        fixed bins `HISTOGRAM_EDGES`: counts[i] for [edges[i-1], edges[i]), counts[0] below
        edges[0] and counts[-1] from edges[-1] on; counts has one more entry than edges."""
        state = self._state(layer, channel)
        return state.histogram[channel].numpy().copy(), HISTOGRAM_EDGES.numpy().copy()

    # ----------------------------------------------------------------------------- re-reading
    def _need(self) -> tuple[ModelContext, DataSource]:
        if self._viz is None or self._source is None:
            raise ValueError(
                "this result was loaded without its model or data: use "
                "`DatasetExamples.load(path, viz=viz, data=data)` to see its images."
            )
        return self._viz, self._source

    def _inputs(self, indices: list[int]) -> torch.Tensor:
        """The model inputs (N, C, H, W) of images `indices`, read again."""
        viz, source = self._need()
        items = [source.item(i) for i in indices]
        return viz.preprocessor(items, torch.device("cpu"), torch.float32)

    def item(self, index: int) -> Any:
        """Image `index` as the collection gives it (a path, a PIL image, an array, a tensor),
        read again: what `FeatureExplorer` shows when one of its examples is clicked."""
        _, source = self._need()
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.sources):
            raise ValueError(
                f"image index {index!r} is out of range for this scan of "
                f"{len(self.sources)} images."
            )
        for bad, name, reason in self.skipped:
            if bad == index:
                raise ValueError(f"image {index} ({name!r}) was skipped by the scan: {reason}")
        return source.item(int(index))

    def images(self, layer: str, channel: int) -> list[np.ndarray]:
        """The channel's top images as the model sees them (uint8 (H, W, 3)), best first; only
        these images are read again."""
        viz, _ = self._need()
        indices = [index for index, _, _ in self.top(layer, channel)]
        if not indices:
            return []
        batch = self._inputs(indices)
        return [viz.preprocessor.to_display(batch, i) for i in range(len(indices))]

    def receptive_boxes(self, layer: str) -> np.ndarray:
        """(4, h, w): for the unit at (y, x) of `layer`, the input rows [top, bottom) and
        columns [left, right) it depends on (its receptive field, clipped to the input)."""
        self._state(layer)
        if layer not in self._boxes:
            viz, _ = self._need()
            if self.input_size is None:
                raise ValueError("no image was read, so there is no input size.")
            channels = viz.preprocessor.input_size[0]
            self._boxes[layer] = receptive_boxes(
                viz.features,
                layer,
                (channels, *self.input_size),
                device=viz.device,
                dtype=viz.dtype,
            )
        return self._boxes[layer]

    def crop_boxes(self, layer: str, channel: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """For each top image, best first: ((top, bottom), (left, right)), the input region the
        unit at the channel's maximum depends on."""
        top = self.top(layer, channel)
        if not top:
            return []
        boxes = self.receptive_boxes(layer)
        return [
            (
                (int(boxes[0, h, w]), int(boxes[1, h, w])),
                (int(boxes[2, h, w]), int(boxes[3, h, w])),
            )
            for _, _, (h, w) in top
        ]

    def crops(self, layer: str, channel: int) -> list[np.ndarray]:
        """For each top image, best first: the part of the model's input that the unit at the
        channel's maximum can see (uint8 (h, w, 3))."""
        images = self.images(layer, channel)
        boxes = self.crop_boxes(layer, channel)
        return [image[a:b, c:d] for image, ((a, b), (c, d)) in zip(images, boxes)]

    # ----------------------------------------------------------------------------- files
    def _payload(self) -> dict:
        meta = {
            "layers": self.layers,
            "k": self.k,
            "sources": self.sources,
            "skipped": [list(s) for s in self.skipped],
            "input_size": list(self.input_size) if self.input_size else None,
            "fingerprint": self.fingerprint,
        }
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "meta": json.dumps(meta),
            "states": {name: state.tensors() for name, state in self.states.items()},
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the result (plain tensors and JSON, read back with `load`)."""
        _atomic_save(self._payload(), Path(path))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        viz: ModelContext | None = None,
        data: Any = None,
    ) -> DatasetExamples:
        """A saved result. `viz` and `data` (what was scanned; not needed for a folder or a
        list of paths) let it show images and crops again."""
        payload = _load_payload(path)
        if "meta" not in payload or "states" not in payload:
            raise ValueError(f"{os.fspath(path)!r} holds a scan's cache, not a saved result.")
        meta = json.loads(payload["meta"])
        sources = meta["sources"]
        if data is not None:
            source = open_source(data)
            if source.sources != sources:
                raise ValueError("`data` is not the collection this result was scanned from.")
        elif sources and all(isinstance(s, str) for s in sources):
            source = DataSource("files", sources, None)
        else:
            source = None
        return cls(
            layers=meta["layers"],
            k=meta["k"],
            sources=sources,
            skipped=[tuple(s) for s in meta["skipped"]],
            input_size=tuple(meta["input_size"]) if meta["input_size"] else None,
            states={n: ChannelTopK.from_tensors(t) for n, t in payload["states"].items()},
            fingerprint=meta["fingerprint"],
            viz=viz,
            source=source,
        )
