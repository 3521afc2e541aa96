"""The widget's view payloads as pure functions: results in, (bytes, metadata) out.

The bytes are `encode_maps` tiles (or a PNG); the metadata are JSON-safe dicts of the
`protocol` types, which the front end reads to draw and label them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..evidence import ClassEvidence
from ..plotting.figures import MAX_FEATURE_MAPS, grid_columns
from .payload import encode_maps, encode_png
from .protocol import (
    EvidenceMeta,
    GridMeta,
    ImageMeta,
    UnitMeta,
    json_safe,
)

__all__ = [
    "contribution_text",
    "evidence_note",
    "evidence_view",
    "grid_view",
    "image_view",
    "unit_view",
]


def image_view(shown: np.ndarray, name: str, batch: int, index: int = 0) -> tuple[bytes, dict]:
    """`_image`: the PNG of the (H, W, 3) image as the model sees it (image `index` of a
    batch of `batch`), and `ImageMeta`."""
    height, width = shown.shape[:2]
    meta = ImageMeta(h=height, w=width, name=name, batch=batch, index=index)
    return encode_png(shown), dict(meta)


def grid_view(
    features: torch.Tensor, order: list[int], num_features: int, layer: str, sort_by: str
) -> tuple[bytes, dict]:
    """`_grid`: the first `num_features` channels of `order` (at most `MAX_FEATURE_MAPS`)
    of the first image's maps in (B, C, H, W) `features`, with their means."""
    channels = order[: min(max(1, num_features), MAX_FEATURE_MAPS)]
    selected = features[0][channels].numpy()
    data, maps = encode_maps(selected)
    with np.errstate(all="ignore"):
        means = np.nanmean(selected.reshape(len(channels), -1), axis=1).tolist()
    meta = GridMeta(
        **maps,
        layer=layer,
        sort_by=sort_by,
        channels=channels,
        means=means,
        cols=grid_columns(len(channels)),
    )
    return data, json_safe(meta)


def unit_view(features: torch.Tensor, channel: int, layer: str) -> tuple[bytes, dict]:
    """`_unit`: the map of `channel` of the first image, and its mean."""
    channel_map = features[0, channel].numpy()
    data, maps = encode_maps(channel_map)
    with np.errstate(all="ignore"):
        mean = float(np.nanmean(channel_map))
    return data, json_safe(UnitMeta(**maps, layer=layer, channel=channel, mean=mean))


def evidence_view(
    evidence: ClassEvidence,
    size: tuple[int, int],
    image_index: int,
    chosen: bool,
    names: Sequence[str] = (),
) -> tuple[bytes, dict]:
    """`_evidence`: the Grad-CAM of the first image of `evidence` upsampled to the input
    image's (H, W) `size`, and `EvidenceMeta` (its top-5 classes, the target named from
    `names` or the top classes, every channel's contribution and rank)."""
    cam = evidence.upsampled_cam(tuple(int(n) for n in size))[0].detach().float().cpu().numpy()
    data, maps = encode_maps(cam)
    contributions = evidence.contributions[0].detach().double().cpu().tolist()
    ranks = [0] * len(contributions)
    for rank, channel in enumerate(evidence.ranked_channels(0), start=1):
        ranks[int(channel)] = rank
    target = int(evidence.targets[0])
    top = [[int(index), str(name), float(p)] for index, name, p in evidence.top_classes[0]]
    meta = EvidenceMeta(
        **maps,
        layer=evidence.layer,
        index=int(image_index),
        target=target,
        target_name=_class_name(evidence, target, names),
        chosen=bool(chosen),
        top=top,
        contributions=contributions,
        ranks=ranks,
        note="",
    )
    return data, json_safe(meta)


def evidence_note(layer: str, note: str) -> tuple[bytes, dict]:
    """`_evidence` empty, and metadata saying why there is no class evidence (`note`)."""
    meta = EvidenceMeta(
        n=0, h=0, w=0, lo=[], hi=[], layer=layer, index=0, target=-1, target_name="",
        chosen=False, top=[], contributions=[], ranks=[], note=note,
    )  # fmt: skip
    return b"", json_safe(meta)


def _class_name(evidence: ClassEvidence, target: int, names: Sequence[str]) -> str:
    if evidence.target_names:
        return str(evidence.target_names[0])
    return str(names[target]) if 0 <= target < len(names) else f"class {target}"


def contribution_text(meta: dict, channel: int) -> str:
    """What the channel view says of `channel` under `_evidence`'s metadata `meta`, e.g.
    "contribution to 'tabby cat': +0.123 (rank 3 of 256)"; "" without evidence."""
    values = meta.get("contributions") or []
    if not 0 <= channel < len(values):
        return ""
    value = values[channel]
    shown = "–" if value is None else f"{value:+.3g}"
    name = meta.get("target_name") or f"class {meta.get('target')}"
    return f"contribution to {name!r}: {shown} (rank {meta['ranks'][channel]} of {len(values)})"
