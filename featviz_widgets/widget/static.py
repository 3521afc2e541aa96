"""The notebook's static picture of the explorer: the PNG its output keeps beside the live
widget, shown where widgets cannot run (GitHub, nbviewer, a PDF export). The grid panel draws
it (`GridPanel.stand_in`); this adds it to the widget's mime bundle."""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Callable

__all__ = ["StaticPictures"]

# The first display waits this long at most for the first view (its static image).
_FIRST_VIEW_TIMEOUT_S = 30.0


class StaticPictures:
    """Adds `png()` to the widget's mime bundle; the first display waits for the first view
    (`viewed`) so that an executed notebook keeps a picture."""

    def __init__(self, png: Callable[[], bytes], viewed: threading.Event) -> None:
        self.png, self.viewed = png, viewed
        self.displayed = False

    def add_to(self, bundle: tuple[dict, dict] | None) -> tuple[dict, dict] | None:
        """The widget's mime bundle with the static PNG added (`_repr_mimebundle_`)."""
        if bundle is None:
            return None
        data, metadata = bundle
        if not self.displayed:  # one forward, so that an executed notebook keeps a picture;
            self.displayed = True  # never a panel's work, nor later displays
            self.viewed.wait(_FIRST_VIEW_TIMEOUT_S)
        with contextlib.suppress(Exception):  # the live widget works without the picture
            data["image/png"] = base64.b64encode(self.png()).decode("ascii")
        return data, metadata
