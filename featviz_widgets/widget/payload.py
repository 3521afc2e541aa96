"""Compact binary payloads for the widget: uint8 maps with per-tile scale, PNG images.

A stack of N float maps (N, H, W) travels as N*H*W bytes, each tile quantised over its own
[lo, hi] range, plus a small JSON-able metadata dict. The front end recovers a value as
``lo + q / 255 * (hi - lo)``, so it can draw either per-tile or shared colour scales (and show
the value under the cursor) without asking Python again.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
from PIL import Image

__all__ = ["MapsMeta", "decode_maps", "decode_upload", "encode_maps", "encode_png"]


class MapsMeta(TypedDict):
    """What `payload.encode_maps` returns besides the bytes: N uint8 maps of H x W, map i
    dequantised as ``lo[i] + q / 255 * (hi[i] - lo[i])``."""

    n: int
    h: int
    w: int
    lo: list[float]
    hi: list[float]


MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""The largest image file the view uploads."""


def encode_maps(maps: np.ndarray) -> tuple[bytes, dict]:
    """Quantise float maps of shape (N, H, W) to uint8, one [lo, hi] range per map.

    Non-finite values are stored as 0 (the tile's minimum) and do not widen the range.

    Returns:
        ``(data, meta)``: ``data`` holds N*H*W bytes in C order, ``meta`` the keys ``n``,
        ``h``, ``w``, ``lo`` and ``hi`` (lists of N floats).
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise ValueError(f"`maps` must have shape (N, H, W), got {maps.shape}.")
    n, h, w = maps.shape
    finite = np.isfinite(maps)
    safe = np.where(finite, maps, np.nan)
    if n and h and w:
        with np.errstate(all="ignore"):
            lo = np.nan_to_num(np.nanmin(safe.reshape(n, -1), axis=1, initial=np.inf), posinf=0.0)
            hi = np.nan_to_num(np.nanmax(safe.reshape(n, -1), axis=1, initial=-np.inf), neginf=0.0)
    else:
        lo = hi = np.zeros(n, dtype=np.float32)
    span = (hi - lo).astype(np.float64)
    scale = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
    q = (np.where(finite, maps, lo[:, None, None]) - lo[:, None, None]) * scale[:, None, None]
    data = np.clip(np.rint(q), 0, 255).astype(np.uint8)
    meta = {
        "n": int(n),
        "h": int(h),
        "w": int(w),
        "lo": [float(v) for v in lo],
        "hi": [float(v) for v in hi],
    }
    return data.tobytes(), meta


def decode_maps(data: bytes | memoryview, meta: dict) -> np.ndarray:
    """Inverse of `encode_maps`: float32 maps (N, H, W), within (hi - lo) / 510 of the input."""
    n, h, w = meta["n"], meta["h"], meta["w"]
    q = np.frombuffer(bytes(data), dtype=np.uint8).reshape(n, h, w).astype(np.float32)
    lo = np.asarray(meta["lo"], dtype=np.float32)[:, None, None]
    hi = np.asarray(meta["hi"], dtype=np.float32)[:, None, None]
    return lo + q / 255.0 * (hi - lo)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W, 3) image."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_upload(name: str, buffers: Sequence[bytes | memoryview], limit: int) -> Image.Image:
    """The image in an upload message's first buffer, of at most `limit` bytes
    (`protocol.MAX_UPLOAD_BYTES`).

    Raises:
        ValueError: with a message for people, when there is no data, more than `limit`
            bytes, or nothing Pillow can read.
    """
    if not buffers:
        raise ValueError(f"Upload of {name!r} arrived without data; please try again.")
    if len(buffers[0]) > limit:
        raise ValueError(f"{name} is larger than {limit >> 20} MB; please pick a smaller image.")
    try:
        with Image.open(io.BytesIO(bytes(buffers[0]))) as opened:
            opened.load()
            return opened.copy()
    except Image.UnidentifiedImageError:
        raise ValueError(
            f"Could not read {name!r} as an image: it is not in a format Pillow can open "
            "(PNG, JPEG, WebP, TIFF, BMP, GIF...)."
        ) from None
    except Exception as exc:
        raise ValueError(
            f"Could not read {name!r} as an image ({type(exc).__name__}: {exc})."
        ) from exc
