"""A dataset scan's files and shards: the on-disk format (written atomically, read without
unpickling), the resumable cache of one rank's scan (`_Scan`) and the fingerprint parts that
tie a cache to its scan, and the `torch.distributed` gather-and-merge of every rank's state.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .sources import DataSource
from .topk import ChannelTopK

if TYPE_CHECKING:
    from ..core.context import ModelContext

_FORMAT = "featviz-dataset-examples"
_VERSION = 2  # 2: per-channel zero counts and maxima histograms


def _model_signature(viz: ModelContext) -> str:
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


def _fingerprint(
    viz: ModelContext,
    source: DataSource,
    layers: list[str],
    k: int,
    batch_size: int,
    shard: tuple[int, int],
    with_model: bool,
) -> str:
    """What a cache must match to be resumed: the images, layers, k, batch size, shard and (if
    `with_model`) the model's signature."""
    rank, world = shard
    return hashlib.blake2b(
        json.dumps(
            {
                "sources": source.sources,
                "kind": source.kind,
                "layers": layers,
                "k": k,
                "batch_size": batch_size,
                "shard": [rank, world],
                "model": _model_signature(viz) if with_model else None,
            }
        ).encode(),
        digest_size=16,
    ).hexdigest()


def _resume(
    cache: str | os.PathLike | None,
    fingerprint: str,
    shard: tuple[int, int],
    device: torch.device,
) -> tuple[_Scan, Path | None]:
    """The scan to continue (the cache's, if it exists; else a fresh one) and this rank's cache
    file (None: no cache)."""
    scan = _Scan()
    if cache is None:
        return scan, None
    rank, world = shard
    cache_path = Path(cache)
    if world > 1:
        cache_path = cache_path.with_name(f"{cache_path.name}.rank{rank}-of-{world}")
    if cache_path.exists():
        scan, saved = _Scan.from_payload(_load_payload(cache_path), device)
        if saved != fingerprint:
            raise ValueError(
                f"the cache {os.fspath(cache_path)!r} belongs to another scan (different "
                "images, layers, k, batch size, shard or model weights); pass another "
                "`cache=` path or delete that file to start over."
            )
    return scan, cache_path


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
