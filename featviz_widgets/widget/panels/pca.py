"""The layer as colour: the first three principal components of the layer's activations over
its positions (`FeatureVisualizer.layer_pca`), as an RGB image over the input. Its painter is
js/src/panels/pca.js."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from matplotlib.figure import Figure

from ...core.pca import LayerPCA
from ...plotting.pca import plot_layer_pca
from ..worker import Job
from .base import ComputedPanel, ViewState

__all__ = ["PcaMeta", "PcaPanel"]


class PcaMeta(TypedDict):
    """`_pca`'s metadata: its `data` is the colours, uint8 RGB, h x w x 3 (one pixel per
    position of the layer's map); `explained` the share of the variance of each component.
    With no picture (`h` 0) `note` says why."""

    layer: str
    h: int
    w: int
    explained: list[float]
    note: str


class PcaPanel(ComputedPanel):
    name = "pca"
    meta = PcaMeta
    status = "layer as colour"

    def compute(self, view: ViewState, job: Job) -> LayerPCA:
        return view.viz.layer_pca(view.source, view.layer)

    def payload(self, view: ViewState, result: LayerPCA) -> tuple[bytes, dict]:
        rgb = np.clip(np.rint(result.rgb.numpy() * 255), 0, 255).astype(np.uint8)
        h, w = result.map_size
        explained = [float(share) for share in result.explained]
        meta = PcaMeta(layer=view.layer, h=h, w=w, explained=explained, note="")
        return rgb.tobytes(), dict(meta)

    def note(self, view: ViewState, message: str) -> tuple[bytes, dict]:
        return b"", dict(PcaMeta(layer=view.layer, h=0, w=0, explained=[], note=message))

    def figure(self, view: ViewState, result: LayerPCA) -> Figure:
        fig = Figure(figsize=(4.5, 4.8))
        plot_layer_pca(result, fig.subplots(), view.shown)
        return fig
