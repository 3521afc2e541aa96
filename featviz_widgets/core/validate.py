"""Argument checks shared by `FeatureVisualizer` and `FeatureExplorer`, one message each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "channel_error",
    "check_channel",
    "check_index",
    "check_patch",
    "check_position",
    "check_positive_int",
    "is_int",
    "position_error",
]


def is_int(value: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, least: int = 1) -> int:
    """`value` as an int if it is an integer >= `least`, else ValueError naming `name`."""
    if is_int(value) and value >= least:
        return int(value)
    wanted = "a positive integer" if least == 1 else f"an integer >= {least}"
    raise ValueError(f"`{name}` must be {wanted}, got {value!r}.")


def check_patch(patch_size: Any, stride: Any) -> None:
    """Raise ValueError unless the occlusion `patch_size` and `stride` are positive ints."""
    check_positive_int("patch_size", patch_size)
    check_positive_int("stride", stride)


def channel_error(value: Any, layer: str, count: int) -> str | None:
    """Why `value` is not a channel of `layer`'s `count` channels, or None if it is."""
    if isinstance(value, (int, np.integer)) and 0 <= value < count:
        return None
    return (
        f"`channel` {value!r} is out of range for {layer!r}, which has {count} channels "
        f"(0 to {count - 1})."
    )


def check_channel(value: Any, layer: str, count: int) -> int:
    """`value` as an int; ValueError (`channel_error`) if it is not a channel of the layer."""
    error = channel_error(value, layer, count)
    if error is not None:
        raise ValueError(error)
    return int(value)


def position_error(value: Sequence[int], layer: str, size: Sequence[int]) -> str | None:
    """Why (h, w) `value` is not on `layer`'s map of `size` (H, W), or None if it is."""
    height, width = (int(s) for s in size)
    if 0 <= value[0] < height and 0 <= value[1] < width:
        return None
    return (
        f"`position` {value} is outside the {height}x{width} map of {layer!r}; "
        f"use 0 <= h < {height} and 0 <= w < {width}."
    )


def check_position(position: Any, layer: str, size: Sequence[int]) -> tuple[int, int]:
    """(h, w) on `layer`'s map of `size` (H, W); its centre if `position` is None.

    Raises:
        TypeError: unless `position` is None or two integers.
        ValueError: if it is outside the map (`position_error`).
    """
    height, width = (int(s) for s in size)
    if position is None:
        return height // 2, width // 2
    if (
        not isinstance(position, (tuple, list))
        or len(position) != 2
        or not all(isinstance(p, (int, np.integer)) for p in position)
    ):
        raise TypeError(f"`position` must be a tuple (h, w) of two integers, got {position!r}.")
    error = position_error(position, layer, size)
    if error is not None:
        raise ValueError(error)
    return int(position[0]), int(position[1])


def check_index(index: Any, batch: int) -> int:
    """`index` if it picks one of `batch` images, else ValueError."""
    if not isinstance(index, int) or not 0 <= index < batch:
        raise ValueError(f"`index` {index!r} is out of range for a batch of {batch} image(s).")
    return index
