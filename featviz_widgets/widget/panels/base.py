"""What a panel is: `Panel`, one view of the explorer in one module, computed from a
`PanelView` on the explorer's worker, sent as one payload and drawn by its JS module."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from matplotlib.figure import Figure

from ...core.inputs import ImageInput
from ...visualizer import FeatureVisualizer

__all__ = ["Panel", "PanelView"]


@dataclass(frozen=True)
class PanelView:
    """The explorer's view at one moment, as far as panels read it."""

    viz: FeatureVisualizer  # the model shown, on its device (its caches hold the view's maps)
    source: ImageInput  # the image shown, prepared: one image
    shown: np.ndarray  # that image as the model sees it, (H, W, 3) uint8
    layer: str
    weights_version: Hashable  # moves when the user's model is trained


class Panel(ABC):
    """One view of the explorer. Subclasses name it (`name`: its payload trait `_<name>`, its
    `save_png` view and its JS module's key), type its payload's metadata (`meta`, a
    TypedDict that js/src/panels/ mirrors), and say what it depends on, computes, sends and
    draws. A `ValueError` from `compute` is said in the panel (`note`), not as an error."""

    name: ClassVar[str]
    meta: ClassVar[type]
    status: ClassVar[str]  # what the worker is doing while it computes, e.g. "layer as colour"

    @property
    def trait(self) -> str:
        return f"_{self.name}"

    def depends_on(self, view: PanelView) -> Hashable:
        """The parts of the view whose change calls for a new result (default: the model and
        its weights, the image and the layer)."""
        return (id(view.viz), view.weights_version, id(view.source), view.layer)

    @abstractmethod
    def compute(self, view: PanelView) -> Any:
        """The panel's result for `view`, on the worker, through `view.viz`."""

    @abstractmethod
    def payload(self, view: PanelView, result: Any) -> tuple[bytes, dict]:
        """The result as the front end paints it: bytes and their metadata (`meta`)."""

    @abstractmethod
    def note(self, view: PanelView, message: str) -> tuple[bytes, dict]:
        """The payload that says, in the panel, why there is no result."""

    @abstractmethod
    def figure(self, view: PanelView, result: Any) -> Figure:
        """The static picture of the result (`save_png`)."""
