"""Dataset examples: the images of a collection that excite each channel most.

One streaming pass over the images keeps, per channel of every requested layer, the top k
images by the channel's maximum over positions (with the score and where the maximum is) and
the channel's mean; the running state lives on the model's device (`topk.ChannelTopK`) and
is read back once, at the end. A second, small pass re-reads only the winners to show them and
the region each winning unit sees (`occlusion.receptive`). This is the shape of netdissect's
`tally_topk`.

Scans are resumable (`cache=`: the state is written atomically every few batches and on an
interruption, and a restart with the same cache continues after the last written batch) and
run sharded under `torch.distributed` (each rank scans every world_size-th batch, the states
are gathered and merged; merging is associative, so the result is the one-process result).

This module runs the scan; the result is `result`'s, the cache and the merge are
`scan_state`'s.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..core.cancel import Cancelled
from ..core.capture import resolve_layers
from ..core.precision import exact_float32
from ..core.progress import progress_bar
from ..core.validate import check_positive_int
from .result import DatasetExamples
from .scan_state import _atomic_save, _distributed, _fingerprint, _gather, _resume, _Scan
from .sources import Batch, DataSource, open_source
from .topk import ChannelTopK

if TYPE_CHECKING:
    from ..core.context import ModelContext

__all__ = ["DatasetExamples", "ScanCancelled", "scan_dataset"]


class ScanCancelled(Cancelled):
    """`should_stop()` asked a dataset scan to stop (its `cache=`, if any, keeps the batches
    done: a restart with the same cache continues after them)."""


def scan_dataset(
    viz: ModelContext,
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
        check_positive_int(name, value)
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
    # Hashing the weights costs ~0.2 s for resnet18: only a cache needs it.
    fingerprint = _fingerprint(viz, source, layers, k, batch_size, (rank, world), cache is not None)
    scan, cache_path = _resume(cache, fingerprint, (rank, world), viz.device)

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
    viz: ModelContext,
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
