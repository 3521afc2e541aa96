"""The dataset examples: a background scan of a collection (`dataset_examples`) over the
explorer's layers, then the top images of the selected channel as the `_examples` payload,
cut again from the cached result whenever the layer or channel changes (no rescan). Its
painter is js/src/panels/examples.js; a click on an example makes it the explorer's image.

Everything model-related runs on the explorer's worker: the scan (kind "examples", with
progress and Cancel) and the crops of each selection (it reads back only the k winning images
and measures a layer's receptive fields once). Between two batches the scan runs whatever
else was asked meanwhile (a layer change, another panel's work, the crops of a channel)
before going on, so the rest of the explorer keeps answering during a long scan.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from typing import Any, TypedDict

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from ...core.inputs import image_name, read_now
from ...core.json_values import json_safe
from ...dataset.scan import DatasetExamples, ScanCancelled
from ...plotting.figures import grid_columns, grid_shape
from ..layer_menu import explorer_layers
from ..worker import Job, Throttle
from .base import Panel, PanelHost, ViewState

__all__ = ["EXAMPLE_THUMB_PX", "ExamplesMeta", "ExamplesPanel", "examples_view", "thumbnail"]

EXAMPLE_THUMB_PX = 64
"""The side of each dataset example's thumbnail in `_examples` (RGB, the crop letterboxed)."""


class ExamplesMeta(TypedDict):
    """`_examples`'s metadata: the selected channel's top dataset images; its `data` holds `n`
    RGB thumbnails of `size` x `size` (uint8, row-major), laid out `cols` to a row. With no
    thumbnails (`n` 0) `note` says why (a layer the scan did not cover, a cancelled scan)."""

    layer: str
    channel: int
    n: int
    size: int
    cols: int
    indices: list[int]
    scores: list[float | None]
    positions: list[list[int]]
    names: list[str]
    images: int
    note: str


class ExamplesPanel(Panel):
    name = "examples"
    meta = ExamplesMeta
    status = "dataset examples"
    cancellable = True
    messages = {"example": "on_click"}  # {index}: show image `index` of the scanned dataset

    def __init__(self, host: PanelHost) -> None:
        super().__init__(host)
        self.data: Any = None  # what was given to scan
        self.scan: tuple[Sequence[str] | None, int, int] = (None, 9, 32)  # layers, k, batch
        self.result: DatasetExamples | None = None
        self.model = ""  # the model the result is of

    @property
    def crops_kind(self) -> str:
        return f"{self.name}:crops"  # the worker kind cutting the selected channel's examples

    def depends_on(self, view: ViewState) -> Hashable:
        return (view.layer, view.channel)

    # ------------------------------------------------------------------ scan
    def submit_scan(
        self,
        data: Any,
        layers: Sequence[str] | None = None,
        *,
        k: int = 9,
        batch_size: int = 32,
    ) -> None:
        """Scan `data` in the background for the top `k` images of every channel of `layers`
        (default: the explorer's layer list and the current layer), replacing any scan."""
        names = None if layers is None else list(layers)
        with self.host.lock:
            view = self.host.current()
            self.data, self.scan = data, (names, k, batch_size)
            self.host.error("")
            if self.result is None and view is not None:
                self._publish(examples_view(view.layer, view.channel, note="scanning the dataset…"))
            self.host.worker.submit(self.name, lambda job: self._run_scan(job, data), self.report)

    def clear(self) -> None:
        """Forget the dataset and its result; the view hides the examples."""
        with self.host.lock:
            self.host.worker.invalidate(self.name, self.crops_kind)
            self.data, self.result = None, None
            self.host.publish(self.trait, b"", {})

    def cancel(self) -> bool:
        """Stop a queued or running scan; the examples of an earlier scan stay."""
        with self.host.lock:
            if not super().cancel():
                return False
            view = self.host.current()
            if self.result is None and view is not None:
                note = "the dataset scan was cancelled; set `dataset` again to rescan."
                self._publish(examples_view(view.layer, view.channel, note=note))
            return True

    def _layers(self, view: ViewState) -> list[str]:
        """The explorer's layers (the default list when it shows every module), the current
        layer included: one pass covers every layer the dropdown offers first."""
        names = list(view.layers)
        if view.all_layers or not names:
            listed = explorer_layers(view.viz, view.input, False, view.restrict)
            names = [info.name for info in listed]
        if view.layer and view.layer not in names:
            names.append(view.layer)
        if not names:
            raise ValueError("the explorer has no layers to scan the dataset for.")
        return names

    def _run_scan(self, job: Job, data: Any) -> None:
        with self.host.lock:
            view, (layers, k, batch_size) = self.host.current(), self.scan
        if view is None:
            raise ValueError("the explorer's first view is not shown yet; try again shortly.")
        viz, names = view.viz, layers or self._layers(view)
        shown = ["dataset examples…", 0.0]  # the scan's status and progress
        self.host.status.start(job, *shown)
        throttle = Throttle()

        def on_progress(done: int, total: int) -> None:
            shown[:] = f"dataset examples: {done}/{total} images", done / total if total else -1.0
            if throttle.due(done, total):
                self.host.status.start(job, *shown)

        def should_stop() -> bool:
            """Between two batches: first the jobs asked for meanwhile (a layer change must not
            wait for the whole scan), then whether to stop."""
            with torch.enable_grad():  # the scan runs under no_grad; an optimization needs it
                if not self.host.worker.run_others(job):
                    return job.stale()
            now = self.host.current()
            if now is not None and now.viz is not viz:  # another device or model: rescan
                self.submit_scan(data, layers, k=k, batch_size=batch_size)
            self.host.status.start(job, *shown)  # the scan's status, and its Cancel, back
            return job.stale()

        result = viz.dataset_examples(
            data,
            names,
            k=k,
            batch_size=batch_size,
            progress=False,  # the widget shows its own
            on_progress=on_progress,
            should_stop=should_stop,
        )
        with self.host.lock:
            if not job.current:
                return
            self.result, self.model = result, view.model_name
        self._cut(job)

    def report(self, job: Job, exc: BaseException) -> None:
        """A failed scan or cut: its message in `error` (a cancelled scan is not an error)."""
        if isinstance(exc, ScanCancelled):
            return
        with self.host.lock:
            view = self.host.current()
            if job.current and job.kind == self.name and self.result is None and view:
                self._publish(examples_view(view.layer, view.channel, note="the scan failed."))
        super().report(job, exc)

    # ------------------------------------------------------------------ selection
    def update(self, view: ViewState) -> None:
        """A new view or channel: cut its examples from the result; another model's result is
        scanned again for the model shown."""
        if self.data is not None and self.result is not None and self.model != view.model_name:
            self.result = None
            self.submit_scan(self.data, None, k=self.scan[1], batch_size=self.scan[2])
            return
        if self.result is not None:
            self.host.worker.submit(self.crops_kind, self._cut, self.report)

    def _cut(self, job: Job) -> None:
        """The examples of the selected (layer, channel) from the cached result: crops of
        only its k images. A channel the scan's layer lacks waits for its layer's view."""
        with self.host.lock:
            result, view = self.result, self.host.current()
        if result is None or view is None:
            return
        layer, channel = view.layer, view.channel
        # A device change rebuilt the visualizer: crops re-read and measure with the new one.
        result._viz = view.viz
        if layer not in result.states:
            scanned = ", ".join(result.layers)
            note = f"{layer} was not in the dataset scan (scanned: {scanned})."
            payload = examples_view(layer, channel, sources=result.sources, note=note)
        elif not 0 <= channel < result.states[layer].scores.shape[0]:
            return  # the layer's view is still computing: its channel comes with it
        else:
            top = result.top(layer, channel)
            crops = result.crops(layer, channel)
            note = "" if top else "no image of the dataset could be read."
            payload = examples_view(layer, channel, top, crops, result.sources, note=note)
        with self.host.lock:
            now = self.host.current()
            if job.current and now is not None and (now.layer, now.channel) == (layer, channel):
                self._publish(payload)

    def _publish(self, payload: tuple[bytes, dict]) -> None:
        self.host.publish(self.trait, *payload)

    # ------------------------------------------------------------------ clicks
    def on_click(self, content: dict) -> None:
        """The front end's click on an example: show its image."""
        self.show(content.get("index"))

    def show(self, index: Any) -> None:
        """Make image `index` of the scanned dataset the explorer's image."""
        result = self.result
        try:
            if result is None:
                raise ValueError("no dataset scan has finished yet.")
            item = read_now(result.item(index))
        except (ValueError, TypeError, IndexError, OSError) as exc:
            self.host.error(str(exc))
            return
        source = result.sources[index]
        name = image_name(source) if isinstance(source, str) else f"dataset image {index}"
        self.host.show(item, name)

    # ------------------------------------------------------------------ picture
    def picture(self, name: str) -> Figure:
        """The examples shown: each thumbnail titled with its rank, score and image, laid
        out as the live view lays them out."""
        with self.host.lock:
            data, meta = self.host.payload(self.trait)
        return examples_figure(data, meta)


def examples_figure(data: bytes, meta: dict) -> Figure:
    """The figure of an `_examples` payload (`examples_view`)."""
    n = int(meta.get("n", 0))
    if not n:
        raise ValueError(
            meta.get("note") or "no dataset examples yet; set `dataset` to scan a collection."
        )
    size = meta["size"]
    thumbs = np.frombuffer(data, dtype=np.uint8).reshape(n, size, size, 3)
    rows, cols = grid_shape(n)
    fig = Figure(figsize=(1.9 * cols, 2.1 * rows + 0.4))
    fig.suptitle(f"{meta['layer']}, channel {meta['channel']}: top {n} of {meta['images']} images")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(thumbs[i])
            score = meta["scores"][i]
            score_text = "–" if score is None else f"{score:.3g}"
            ax.set_title(f"#{i + 1}  {score_text}\n{meta['names'][i][:18]}", fontsize=8)
    return fig


def thumbnail(crop: np.ndarray, size: int = EXAMPLE_THUMB_PX) -> np.ndarray:
    """A uint8 (h, w, 3) crop as a (size, size, 3) thumbnail: its longer side scaled to `size`
    (nearest when enlarging, so small receptive fields stay sharp), centred on black."""
    crop = np.ascontiguousarray(crop, dtype=np.uint8)
    height, width = crop.shape[:2]
    out = np.zeros((size, size, 3), dtype=np.uint8)
    if not height or not width:
        return out
    if (height, width) != (size, size):
        scale = size / max(height, width)
        new = (max(1, round(width * scale)), max(1, round(height * scale)))
        resample = Image.NEAREST if scale >= 1 else Image.BILINEAR
        crop = np.asarray(Image.fromarray(crop).resize(new, resample))
        height, width = crop.shape[:2]
    top, left = (size - height) // 2, (size - width) // 2
    out[top : top + height, left : left + width] = crop
    return out


def _source_name(source: str | int) -> str:
    return os.path.basename(source) if isinstance(source, str) else f"image {source}"


def examples_view(
    layer: str,
    channel: int,
    top: Sequence[tuple[int, float, tuple[int, int]]] = (),
    crops: Sequence[np.ndarray] = (),
    sources: Sequence[str | int] = (),
    note: str = "",
    size: int = EXAMPLE_THUMB_PX,
) -> tuple[bytes, dict]:
    """`_examples`: a thumbnail of each crop (`DatasetExamples.crops`) of the channel's `top`
    images (`DatasetExamples.top`, best first) in one buffer, and `ExamplesMeta` naming them
    from `sources` (the scan's, by image index). No crops: an empty view saying `note`."""
    thumbs = [thumbnail(crop, size) for crop in crops]
    data = np.stack(thumbs).tobytes() if thumbs else b""
    meta = ExamplesMeta(
        layer=layer,
        channel=int(channel),
        n=len(thumbs),
        size=size,
        cols=grid_columns(len(thumbs)),
        indices=[int(index) for index, _, _ in top],
        scores=[float(score) for _, score, _ in top],
        positions=[[int(h), int(w)] for _, _, (h, w) in top],
        names=[_source_name(sources[index]) for index, _, _ in top],
        images=len(sources),
        note=note,
    )
    return data, json_safe(meta)
