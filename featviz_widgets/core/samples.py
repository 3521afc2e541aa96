"""A real photograph to try the library on, with no download: matplotlib ships one."""

from __future__ import annotations

from pathlib import Path

import matplotlib.cbook
from PIL import Image

__all__ = ["sample_image"]

_SAMPLE = "grace_hopper.jpg"


def _sample_path() -> Path:
    path = Path(matplotlib.cbook.get_sample_data(_SAMPLE, asfileobj=False))
    if not path.is_file():
        raise FileNotFoundError(
            f"matplotlib's sample photograph is missing ({path}): this matplotlib was packaged "
            "without its sample data. Install matplotlib with pip, or use an image of your own."
        )
    return path


def sample_image() -> Image.Image:
    """A real photograph, available offline: Grace Hopper's portrait bundled with matplotlib.

    Every call returns a new, fully loaded copy, so editing it changes nothing elsewhere.

    Returns:
        An RGB `PIL.Image.Image` of 512 x 600 pixels (width x height).

    Raises:
        FileNotFoundError: if the installed matplotlib lacks its sample data.

    Example:
        >>> from featviz_widgets import sample_image
        >>> sample_image().size
        (512, 600)
    """
    with Image.open(_sample_path()) as photo:
        return photo.convert("RGB")
