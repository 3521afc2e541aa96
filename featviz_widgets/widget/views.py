"""The widget's view payloads as pure functions: results in, (bytes, metadata) out.

The bytes are `encode_maps` tiles (or a PNG); the metadata are JSON-safe dicts of the
`protocol` types, which the front end reads to draw and label them.
"""

from __future__ import annotations

import numpy as np
import torch

from ..plotting.figures import MAX_FEATURE_MAPS, grid_columns
from .payload import encode_maps, encode_png
from .protocol import (
    GridMeta,
    ImageMeta,
    UnitMeta,
    json_safe,
)

__all__ = [
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
