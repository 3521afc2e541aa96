"""Dataset examples: the images of a collection that excite each channel most.

One streaming pass over the images keeps, per channel of every requested layer, the top k
images by the channel's maximum over positions (with the score and where the maximum is) and
the channel's mean; the running state lives on the model's device (`_topk.ChannelTopK`) and
is read back once, at the end. A second, small pass re-reads only the winners to show them and
the region each winning unit sees (`_receptive`). This is the shape of netdissect's
`tally_topk`.

Scans are resumable (`cache=`: the state is written atomically every few batches and on an
interruption, and a restart with the same cache continues after the last written batch) and
run sharded under `torch.distributed` (each rank scans every world_size-th batch, the states
are gathered and merged; merging is associative, so the result is the one-process result).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._cancel import Cancelled
from ._capture import resolve_layers
from ._datasource import Batch, DataSource, open_source
from ._precision import exact_float32
from ._progress import progress_bar
from ._receptive import receptive_boxes
from ._topk import EMPTY, ChannelTopK

if TYPE_CHECKING:
    from .visualizer import FeatureVisualizer

__all__ = ["DatasetExamples", "ScanCancelled", "scan_dataset"]

_FORMAT = "featviz-dataset-examples"
_VERSION = 1


class ScanCancelled(Cancelled):
    """`should_stop()` asked a dataset scan to stop (its `cache=`, if any, keeps the batches
    done: a restart with the same cache continues after them)."""


def _model_signature(viz: FeatureVisualizer) -> str:
    """A digest of the model (class, every parameter and buffer: names, shapes, values) and of
    the preprocessing: what decides every activation."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(type(viz.model).__qualname__.encode())
    for name, tensor in [*viz.model.named_parameters(), *viz.model.named_buffers()]:
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    pre = viz.preprocessor
    digest.update(repr((pre.transform, pre.mean, pre.std, pre.input_size)).encode())
    digest.update(repr((pre.preprocess_tensors, str(viz.dtype))).encode())
    return digest.hexdigest()


def _distributed() -> tuple[int, int]:
    """(rank, world size) of an initialized default process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _atomic_save(payload: dict, path: Path) -> None:
    """`torch.save` to a temporary file beside `path`, then `os.replace`: a reader sees the old
    file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _load_payload(path: str | os.PathLike) -> dict:
    """A saved state or result, read without unpickling arbitrary objects."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a featviz dataset-examples file.")
    if payload.get("version") != _VERSION:
        raise ValueError(
            f"{os.fspath(path)!r} has version {payload.get('version')}; this featviz_widgets "
            f"reads version {_VERSION}."
        )
    return payload


class DatasetExamples:
    """Per channel of each scanned layer: the top-k images (by the channel's max over
    positions) and the channel's mean over images and positions.

    Attributes:
        layers: the scanned layers, in the order asked.
        k: how many images each channel keeps.
        sources: per image index, its file path (folders, lists of paths) or its index into
            the list, Dataset or DataLoader that was scanned.
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
        viz: FeatureVisualizer | None = None,
        source: DataSource | None = None,
    ) -> None:
        self.layers, self.k, self.sources, self.skipped = layers, k, sources, skipped
        self.input_size, self.states, self.fingerprint = input_size, states, fingerprint
        self._viz, self._source = viz, source
        self._boxes: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return (
            f"DatasetExamples({len(self.sources)} images, {len(self.skipped)} skipped, "
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

    # ----------------------------------------------------------------------------- re-reading
    def _need(self) -> tuple[FeatureVisualizer, DataSource]:
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
        viz: FeatureVisualizer | None = None,
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


class _Scan:
    """The state of one rank's scan: layer states, batches done, skipped images."""

    def __init__(self) -> None:
        self.states: dict[str, ChannelTopK] = {}
        self.done = 0  # batches of this rank's list finished
        self.skipped: list[tuple[int, str]] = []
        self.input_size: tuple[int, int] | None = None

    def payload(self, fingerprint: str) -> dict:
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "cache": json.dumps(
                {
                    "fingerprint": fingerprint,
                    "done": self.done,
                    "skipped": self.skipped,
                    "input_size": self.input_size,
                }
            ),
            "cache_states": {name: state.tensors() for name, state in self.states.items()},
        }

    @classmethod
    def from_payload(cls, payload: dict, device: torch.device) -> tuple[_Scan, str]:
        meta = json.loads(payload["cache"])
        scan = cls()
        scan.done = meta["done"]
        scan.skipped = [tuple(s) for s in meta["skipped"]]
        scan.input_size = tuple(meta["input_size"]) if meta["input_size"] else None
        scan.states = {
            name: ChannelTopK.from_tensors(tensors, device)
            for name, tensors in payload["cache_states"].items()
        }
        return scan, meta["fingerprint"]


def _check_positive(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return value


def scan_dataset(
    viz: FeatureVisualizer,
    data: Any,
    layer_names: Sequence[str],
    *,
    k: int = 9,
    batch_size: int = 64,
    num_workers: int = 0,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    save_every: int = 16,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DatasetExamples:
    """See `FeatureVisualizer.dataset_examples`."""
    if isinstance(layer_names, str):
        layer_names = [layer_names]
    layers = list(dict.fromkeys(layer_names))
    if not layers:
        raise ValueError("`layer_names` is empty; pass at least one layer name.")
    resolve_layers(viz.model, layers)
    for name, value in (("k", k), ("batch_size", batch_size), ("save_every", save_every)):
        _check_positive(name, value)
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"`num_workers` must be a non-negative integer, got {num_workers!r}.")
    source = open_source(data)
    rank, world = _distributed()
    if source.kind == "loader":
        if world > 1:
            raise ValueError(
                "under torch.distributed pass the Dataset, not a DataLoader: each rank reads "
                "its own share of the batches."
            )
        batches = len(data)
        batch_size = data.batch_size or 0  # recorded in the fingerprint only
    else:
        batches = -(-len(source.sources) // batch_size)
    # Whole batches go to ranks in turn: every image is computed in the same batch as in a
    # one-process scan, so scores are bit-identical (per-image results can depend on the batch).
    mine = list(range(rank, batches, world))
    fingerprint = hashlib.blake2b(
        json.dumps(
            {
                "sources": source.sources,
                "kind": source.kind,
                "layers": layers,
                "k": k,
                "batch_size": batch_size,
                "shard": [rank, world],
                # Hashing the weights costs ~0.2 s for resnet18: only a cache needs it.
                "model": _model_signature(viz) if cache is not None else None,
            }
        ).encode(),
        digest_size=16,
    ).hexdigest()

    scan = _Scan()
    cache_path = None
    if cache is not None:
        cache_path = Path(cache)
        if world > 1:
            cache_path = cache_path.with_name(f"{cache_path.name}.rank{rank}-of-{world}")
        if cache_path.exists():
            scan, saved = _Scan.from_payload(_load_payload(cache_path), viz.device)
            if saved != fingerprint:
                raise ValueError(
                    f"the cache {os.fspath(cache_path)!r} belongs to another scan (different "
                    "images, layers, k, batch size, shard or model weights); pass another "
                    "`cache=` path or delete that file to start over."
                )

    def save() -> None:
        if cache_path is not None:
            _atomic_save(scan.payload(fingerprint), cache_path)

    pin = viz.device.type == "cuda"
    total = len(source.sources)
    sizes = [min(batch_size, total - b * batch_size) for b in mine]
    if source.kind == "loader":  # its own batch sizes: counted as they come
        sizes = [0] * len(mine)
    images_done = sum(sizes[: scan.done])
    description = f"dataset examples {', '.join(layers)}"
    folding = False
    try:
        with (
            progress_bar(
                sum(sizes) or total, description, enabled=progress, unit="img"
            ) as advance_to,
            exact_float32(),
            torch.no_grad(),
        ):
            advance_to(images_done)
            if on_progress is not None:
                on_progress(images_done, sum(sizes) or total)
            todo = mine[scan.done :]
            stream = (
                source.batches(todo, batch_size, viz.preprocessor, num_workers, pin)
                if todo
                else iter(())
            )
            for batch in stream:
                if should_stop is not None and should_stop():
                    raise ScanCancelled(f"dataset scan of {', '.join(layers)} cancelled")
                folding = True  # a failure in here may leave the state half-updated
                _fold(viz, layers, k, scan, batch, source)
                scan.done += 1
                folding = False
                images_done += len(batch.indices) + len(batch.skipped)
                advance_to(images_done)
                if on_progress is not None:
                    on_progress(images_done, max(images_done, sum(sizes) or total))
                if scan.done % save_every == 0:
                    save()
    except BaseException:
        try:
            if not folding:  # else the last periodic save stands
                save()  # the last finished batch: a restart continues after it
        except Exception as exc:  # never hide the interruption behind a failed save
            warnings.warn(f"could not write the scan's cache: {exc}", stacklevel=2)
        raise
    save()

    states = {name: state.to("cpu") for name, state in scan.states.items()}
    skipped, input_size = scan.skipped, scan.input_size
    if world > 1:
        states, skipped, input_size = _gather(states, skipped, input_size)
        states = {name: states[name] for name in layers if name in states}
    if skipped:
        warnings.warn(
            f"{len(skipped)} image(s) could not be read and were skipped (see `.skipped`), "
            f"e.g. {source.sources[skipped[0][0]]!r}: {skipped[0][1]}",
            UserWarning,
            stacklevel=3,
        )
    return DatasetExamples(
        layers=layers,
        k=k,
        sources=source.sources,
        skipped=[(i, source.sources[i], reason) for i, reason in skipped],
        input_size=input_size,
        states=states,
        fingerprint=fingerprint,
        viz=viz,
        source=source,
    )


def _fold(
    viz: FeatureVisualizer,
    layers: list[str],
    k: int,
    scan: _Scan,
    batch: Batch,
    source: DataSource,
) -> None:
    """One batch into the running state (on the device, no host synchronisation)."""
    scan.skipped.extend(batch.skipped)
    if batch.images is None:
        return
    size = tuple(batch.images.shape[-2:])
    if scan.input_size is None:
        scan.input_size = size
    elif scan.input_size != size:
        raise ValueError(
            f"image {source.sources[batch.indices[0]]!r} gives an input of {size}, earlier "
            f"ones {scan.input_size}; a dataset scan needs one input size (use a transform "
            "that resizes and crops)."
        )
    images = batch.images.to(viz.device, viz.dtype, non_blocking=True)
    indices = torch.tensor(batch.indices, dtype=torch.int64).to(viz.device, non_blocking=True)
    found = viz.features.capture(images, layers)
    for name in layers:
        maps = found[name].maps
        if name not in scan.states:
            c, h, w = maps.shape[1:]
            scan.states[name] = ChannelTopK.empty(c, k, h, w, viz.device)
        scan.states[name].update(maps, indices)


def _gather(
    states: dict[str, ChannelTopK],
    skipped: list[tuple[int, str]],
    input_size: tuple[int, int] | None,
) -> tuple[dict[str, ChannelTopK], list[tuple[int, str]], tuple[int, int] | None]:
    """Every rank's state, merged (every rank gets the result)."""
    import torch.distributed as dist

    mine = {
        "states": {name: state.tensors() for name, state in states.items()},
        "skipped": skipped,
        "input_size": input_size,
    }
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    merged: dict[str, ChannelTopK] = {}
    all_skipped: list[tuple[int, str]] = []
    size = None
    for part in gathered:
        for name, tensors in part["states"].items():
            state = ChannelTopK.from_tensors(tensors)
            merged[name] = merged[name].merge(state) if name in merged else state
        all_skipped.extend(tuple(s) for s in part["skipped"])
        size = size or (tuple(part["input_size"]) if part["input_size"] else None)
    return merged, sorted(all_skipped), size
