"""Class evidence: which classes the model sees in the image shown, where (Grad-CAM at the
current layer, over the input image) and which channels speak for the chosen class (each
channel's gradient x activation: the sort mode "class contribution" and the unit's caption),
from `FeatureVisualizer.class_evidence`, computed on the explorer's worker. Its class bar and
its drawing over the input and unit views are js/src/panels/evidence.js.

- **On demand.** Off until `class_evidence` is turned on (the view's "classes" box); choosing a
  class (`target_class`), the overlay (`show_cam`) or the sort mode "class contribution" turns
  it on. Then every view (image, image of a batch, layer) gets its evidence after its maps.
- **Cached** per (image, image of a batch, layer, class, device, weights' version): a layer or
  class shown before comes back at once. The model is not the widget's to explain when it has no
  classifier (`num_classes=0`): the class menu is disabled and says so, every other view works.
- **Cancel / follow.** A new view stops a run (it runs again for what is shown next); Cancel
  stops it and the panel says so.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any, TypedDict

import numpy as np
import traitlets as t
from matplotlib.figure import Figure
from torch import nn

from ...core.json_values import json_safe
from ...evidence import ClassEvidence, class_name_list
from ...evidence.gradcam import check_classifier
from ..payload import MapsMeta, decode_maps, encode_maps
from ..worker import Job
from .base import Panel, PanelHost, ViewState

__all__ = [
    "CLASS_CONTRIBUTION",
    "ClassesMeta",
    "EvidenceMeta",
    "EvidencePanel",
    "contribution_text",
    "evidence_note",
    "evidence_view",
    "model_classes",
]

CLASS_CONTRIBUTION = "class contribution"
"""The sort mode this panel adds: channels by their contribution to the chosen class (gradient
x activation, `ClassEvidence.ranked_channels`)."""
CACHE_SIZE = 32
CANCELLED = "class evidence cancelled; choose a class or a layer to compute it again."


class ClassesMeta(TypedDict):
    """`_classes`: the classes the class menu offers. `count` 0 with a `note`: the model has no
    classifier (the menu is disabled and says why); `count` -1: not known yet (a model without
    a `num_classes` attribute: known after its first class evidence)."""

    count: int
    names: list[str]  # one per class: ImageNet's for 1000 classes, else "class i"
    note: str


class EvidenceMeta(MapsMeta):
    """`_evidence`'s metadata: class evidence for the image shown at `layer`. Its `data` is the
    Grad-CAM of class `target` upsampled to the input image (one uint8 map, h x w, of
    `MapsMeta`); `top` the image's top-5 predicted classes; `contributions[c]` channel c's
    gradient x activation for the class and `ranks[c]` its 1-based rank (`ranks` follows
    `ClassEvidence.ranked_channels`). With no map (`n` 0) `note` says why."""

    layer: str
    index: int  # the image of a batch (`image_index`)
    target: int
    target_name: str
    chosen: bool  # the target was chosen (`target_class`), not the top-1 class
    top: list[list[Any]]  # [index, name, probability] per class, best first
    contributions: list[float | None]
    ranks: list[int]
    note: str


def model_classes(model: nn.Module) -> ClassesMeta:
    """The classes of `model` for the class menu: its `num_classes` (timm models have one)
    named by `evidence.class_name_list` (ImageNet's for 1000, else "class i"); count 0 and
    `class_evidence`'s own message for a model without a classifier head; count -1 when the
    model does not say (the top classes of each image still show)."""
    try:
        check_classifier(model)
    except ValueError as exc:
        return ClassesMeta(count=0, names=[], note=str(exc))
    count = getattr(model, "num_classes", None)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return ClassesMeta(count=-1, names=[], note="")
    return ClassesMeta(count=count, names=class_name_list(count), note="")


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


def _dropped_class(target: int | None, classes: dict, model: str) -> str:
    """Why `target_class` no longer applies to `model`'s `classes` ("" if it does)."""
    count = classes.get("count", -1)
    if target is None or count < 0 or target < count:
        return ""
    if count == 0:
        return f"`target_class` {target} was reset: {model} has no classifier ({classes['note']})"
    return f"`target_class` {target} was reset: {model} has {count} classes (0 to {count - 1})."


class EvidencePanel(Panel):
    name = "evidence"
    meta = EvidenceMeta
    status = "class evidence"
    cancellable = True
    views = ("cam",)  # the input image under the Grad-CAM of the chosen class
    sort_modes = (CLASS_CONTRIBUTION,)
    observes = ("sort_by",)
    contract = {"sort_mode": CLASS_CONTRIBUTION}
    traits = {
        "class_evidence": t.Bool(
            False,
            help="""Compute class evidence for the image and layer shown: the top-5 predicted
            classes, the Grad-CAM of `target_class` (`show_cam`) and every channel's
            contribution to it (sort mode "class contribution", the channel view). One forward
            and backward of the whole model per image, layer and class, on the worker; cached.
            Choosing a class, the overlay or that sort mode turns it on.

            - Default: `False`""",
        ).tag(sync=True),
        "target_class": t.Int(
            None,
            allow_none=True,
            help="""The class whose evidence is shown (an index of the model's output; see
            `class_names`).

            - Type: `int` (0 to the class count - 1) or `None`: the image's top-1 class
            - Default: `None`""",
        ).tag(sync=True),
        "show_cam": t.Bool(
            False,
            help="""Draw the Grad-CAM of `target_class` at the current layer over the input
            image.

            - Default: `False`""",
        ).tag(sync=True),
        "_classes": t.Dict().tag(sync=True),  # `ClassesMeta`: the class menu's classes
    }

    def __init__(self, host: PanelHost) -> None:
        super().__init__(host)
        self.cache: OrderedDict[tuple, tuple[Any, ClassEvidence | str]] = OrderedDict()
        self.shown: ClassEvidence | None = None  # what `_evidence` shows
        self.shown_key: tuple | None = None
        self.model: nn.Module | None = None  # the model `classes` are of
        self.classes = ClassesMeta(count=-1, names=[], note="")
        self.sent: ClassesMeta | None = None  # the classes `_classes` holds

    def initial(self) -> dict[str, Any]:
        self.sent = self.classes_of(self.host.widget.visualizer.model)
        return {"_classes": dict(self.sent)}

    def begin(self) -> None:
        widget = self.host.widget
        asked = widget.sort_by in self.sort_modes or widget.target_class is not None
        if asked or widget.show_cam:
            widget.class_evidence = True

    def classes_of(self, model: nn.Module) -> ClassesMeta:
        """The class menu's classes for `model` (kept until the model changes)."""
        if model is not self.model:
            self.model, self.classes = model, model_classes(model)
        return self.classes

    # ------------------------------------------------------------------ checks
    def check(self, name: str, value: Any) -> Any:
        count = self.classes.get("count", -1)
        if name == "sort_by" and value == CLASS_CONTRIBUTION and count == 0:
            raise ValueError(
                f"sort mode {CLASS_CONTRIBUTION!r} is not available: {self.classes['note']}"
            )
        if name != "target_class" or value is None:
            return value
        if isinstance(value, bool):
            raise ValueError(f"`target_class` must be a class index or None, got {value!r}.")
        if count == 0:
            raise ValueError(f"`target_class` cannot be set: {self.classes.get('note', '')}")
        if count > 0 and not 0 <= value < count:
            raise ValueError(
                f"`target_class` {value} is out of range: the model has {count} classes "
                f"(0 to {count - 1}); None shows the top-1 class."
            )
        if count < 0 and value < 0:
            raise ValueError(f"`target_class` must be at least 0 or None, got {value}.")
        return value

    # ------------------------------------------------------------------ changes
    def changed(self, name: str, value: Any) -> None:
        """The person changed `class_evidence`, `target_class`, `show_cam` or `sort_by`: the
        last three turn class evidence on (or show the new class's)."""
        widget = self.host.widget
        if name == "sort_by" and value != CLASS_CONTRIBUTION:
            return
        if name == "show_cam" and not value:
            return  # the view stops drawing it
        if name != "class_evidence" and not widget.class_evidence:
            widget.class_evidence = True  # its change shows (or computes) the evidence
        elif name in ("class_evidence", "target_class"):
            super().changed(name, value)

    def ranking(self, mode: str, view: ViewState) -> list[int] | None:
        """The channels of `view` by contribution to the chosen class, best first, once its
        evidence is there."""
        if self.shown is None or self.shown_key != self.depends_on(view):
            return None
        return [int(c) for c in self.shown.ranked_channels(0)]

    def depends_on(self, view: ViewState) -> Hashable:
        """Its image, layer and class, on the device and weights of the model shown."""
        target = view.traits.get("target_class")
        device = str(view.viz.device)
        return (id(view.input), view.image_index, view.layer, target, device, view.weights_version)

    def cached(self, key: tuple, view: ViewState) -> ClassEvidence | str | None:
        """The evidence (or the note saying why there is none) cached for `key`, or None."""
        entry = self.cache.get(key)
        if entry is None or entry[0] is not view.input:  # an id reused by another image
            return None
        self.cache.move_to_end(key)
        return entry[1]

    # ------------------------------------------------------------------ jobs
    def update(self, view: ViewState) -> None:
        """After a view, class or setting change (under the lock): the cached evidence of
        what is shown, else a run for it (when `class_evidence` is on), else nothing."""
        classes = self.classes_of(view.viz.model)
        if classes != self.sent:  # another model's classes: the menu's, and the chosen one
            self.sent = classes
            self.host.set(_classes=dict(classes))
            dropped = _dropped_class(self.host.widget.target_class, classes, view.model_name)
            if dropped:
                self.host.set(target_class=None)
                self.host.error(dropped)
                view = self.host.current() or view
        widget = self.host.widget
        if not view.traits.get("class_evidence"):
            self.clear()
            if widget.sort_by == CLASS_CONTRIBUTION:  # no contributions to sort by
                widget.sort_by = self.host.default_sort
                self.host.reorder()
            return
        if classes.get("count", -1) == 0:
            self.publish_note(view, classes.get("note", ""))
            return
        key = self.depends_on(view)
        cached = self.cached(key, view)
        running = self.host.worker.pending(self.name)
        if cached is not None:
            if running:
                self.host.worker.invalidate(self.name)
            self.publish(view, key, cached)
            return
        if self.shown_key is not None and self.shown_key[:2] != key[:2]:
            self.clear()  # another image's evidence: gone; a layer's or class's stays till then
        if not (running and self.wanted == key):
            if self.host.payload(self.trait)[1].get("note") == CANCELLED:
                self.clear()
            self.wanted = key
            self.host.worker.submit(self.name, lambda job: self._run(job, view), self.report)

    def pause(self) -> None:
        """Stop a queued or running run (a view job needs the worker); `update` starts it
        again for what is shown next."""
        self.host.worker.invalidate(self.name)
        self.wanted = None

    def cancel(self) -> bool:
        """Stop a queued or running run (Cancel); the panel says so until the next view,
        class or setting change asks again."""
        with self.host.lock:
            running = super().cancel()
            self.wanted = None
            view = self.host.current()
            if running and view is not None:
                self.publish_note(view, CANCELLED)
            return running

    def publish(self, view: ViewState, key: tuple, evidence: ClassEvidence | str) -> None:
        """Set the `_evidence` payload (under the lock) and, when the grid is sorted by class
        contribution, its order."""
        if isinstance(evidence, str):
            self.publish_note(view, evidence)
            return
        self.shown, self.shown_key = evidence, key
        size = view.shown.shape[:2]
        names = self.classes.get("names") or []
        chosen = view.traits.get("target_class") is not None
        payload = evidence_view(evidence, size, view.image_index, chosen, names)
        self.host.publish(self.trait, *payload)
        if self.host.widget.sort_by == CLASS_CONTRIBUTION:
            self.host.reorder()

    def publish_note(self, view: ViewState, note: str) -> None:
        self.shown, self.shown_key = None, None
        if self.host.payload(self.trait)[1].get("note") != note:
            self.host.publish(self.trait, *evidence_note(view.layer, note))

    def clear(self) -> None:
        self.shown, self.shown_key = None, None
        if self.host.payload(self.trait)[1]:
            self.host.publish(self.trait, b"", {})

    def _run(self, job: Job, view: ViewState) -> None:
        key = self.depends_on(view)
        target = view.traits.get("target_class")
        with self.host.lock:
            cached = self.cached(key, view)
            if cached is not None:
                self.publish(view, key, cached)
                return
        name = "top-1 class" if target is None else f"class {target}"
        self.host.status.start(job, f"class evidence: {view.layer}, {name}…")
        try:
            evidence: ClassEvidence | str = view.viz.class_evidence(view.source, view.layer, target)
        except ValueError as exc:  # no classifier, a layer without a gradient: said in the panel
            evidence = str(exc)
        with self.host.lock:
            if isinstance(evidence, str) and target is not None and job.current:
                self.host.error(evidence)  # a class the model does not have (count unknown)
            self.cache[key] = (view.input, evidence)
            while len(self.cache) > CACHE_SIZE:
                self.cache.popitem(last=False)
            # Shown if the view still asks for it, though the user may have trained meanwhile
            # (the weights' version moved): the next view computes it again.
            now = self.host.current()
            if job.current and now is not None and self.depends_on(now)[:-1] == key[:-1]:
                self.publish(view, key, evidence)

    # ------------------------------------------------------------------ picture
    def picture(self, name: str) -> Figure:
        """`save_png(view="cam")`: the input image under the Grad-CAM shown."""
        with self.host.lock:
            view = self.host.current()
            data, meta = self.host.payload(self.trait)
        if view is None:
            raise ValueError("nothing to save yet: the first result is still being computed.")
        return cam_figure(view.shown, data, meta, layer=view.layer)


def cam_figure(shown: np.ndarray, data: bytes, meta: dict, *, layer: str) -> Figure:
    """`save_png(view="cam")`: the input image `shown` (H, W, 3) under the Grad-CAM payload
    (`views.evidence_view`), in jet at half opacity, as the live view draws it."""
    if not meta.get("n") or meta.get("layer") != layer:
        raise ValueError(
            meta.get("note")
            or "no Grad-CAM of this layer yet; set `show_cam = True` (or choose a class) first."
        )
    cam = decode_maps(data, meta)[0]
    lo, hi = float(meta["lo"][0]), float(meta["hi"][0])
    fig = Figure(figsize=(4.2, 4.6))
    ax = fig.add_subplot()
    ax.imshow(shown)
    ax.imshow(cam, cmap="jet", alpha=0.5, vmin=lo, vmax=hi if hi > lo else lo + 1,
              extent=(-0.5, shown.shape[1] - 0.5, shown.shape[0] - 0.5, -0.5))  # fmt: skip
    ax.set_axis_off()
    chosen = "" if meta.get("chosen") else " (top-1)"
    ax.set_title(f"Grad-CAM of {meta['target_name']!r}{chosen}\nat {layer}", fontsize=10)
    return fig
