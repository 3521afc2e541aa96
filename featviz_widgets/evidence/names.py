"""Class names: the caller's, ImageNet's for 1000-class models (timm's offline table), else
"class i"."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

__all__ = ["class_name_list"]

IMAGENET_CLASSES = 1000


@lru_cache(maxsize=1)
def _imagenet_names() -> tuple[str, ...]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(info.num_classes()))


def class_name_list(num_classes: int, class_names: Sequence[str] | None = None) -> list[str]:
    """The name of each of `num_classes` classes.

    `class_names` if given (one string per class), else timm's ImageNet-1k descriptions
    ("tench, Tinca tinca") for 1000 classes, else "class 0", "class 1", ...

    Raises:
        TypeError: `class_names` is not a sequence of strings.
        ValueError: it does not name every class.
    """
    if class_names is not None:
        if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
            raise TypeError("`class_names` must be a list of strings, one per class.")
        if len(class_names) != num_classes:
            raise ValueError(
                f"`class_names` has {len(class_names)} names but the model has {num_classes} "
                "classes; pass one name per class, in the order of the logits."
            )
        return list(class_names)
    if num_classes == IMAGENET_CLASSES:
        return list(_imagenet_names())
    return [f"class {i}" for i in range(num_classes)]
