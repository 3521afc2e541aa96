"""The explorer's class evidence: which classes the model sees in the image shown, where
(Grad-CAM at the current layer) and which channels speak for the chosen one, from
`FeatureVisualizer.class_evidence`, computed on the explorer's worker (`EvidenceJob`).

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
from collections.abc import Callable

import traitlets as t
from torch import nn

from ..core.inputs import ImageInput
from ..evidence import ClassEvidence, class_name_list
from ..evidence.gradcam import check_classifier
from .job_status import JobStatus
from .protocol import CLASS_CONTRIBUTION, CORE_SORT_MODES, ClassesMeta, JobState
from .traits import ExplorerTraits
from .views import evidence_note, evidence_view
from .worker import Job

__all__ = ["EvidenceJob", "model_classes"]

_CACHE_SIZE = 32
CANCELLED = "class evidence cancelled; choose a class or a layer to compute it again."


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


class EvidenceJob:
    """The class evidence runs of `widget`: the cache, the evidence shown, the observers of
    `class_evidence`, `target_class`, `show_cam` and `sort_by`, and the `_evidence` payload.
    `on_ranking` (the view job's) puts a new contribution ranking into the grid."""

    def __init__(self, widget: ExplorerTraits, status: JobStatus) -> None:
        self.w, self.status = widget, status
        self.cache: OrderedDict[tuple, tuple[ImageInput, ClassEvidence | str]] = OrderedDict()
        self.shown: ClassEvidence | None = None  # what `_evidence` shows
        self.shown_key: tuple | None = None
        self.wanted: tuple | None = None  # the key of the latest run asked for
        self.on_ranking: Callable[[], None] = lambda: None
        widget.observe(self._on_enabled, names=["class_evidence"])
        widget.observe(self._on_use, names=["target_class", "show_cam", "sort_by"])

    # ------------------------------------------------------------------ observers
    def _on_enabled(self, change: t.Bunch) -> None:
        w = self.w
        if w._is_quiet():
            return
        with w._lock:
            if w._pending_request() is None:
                with w._quiet(), w.hold_sync():
                    self.show()

    def _on_use(self, change: t.Bunch) -> None:
        w = self.w
        if w._is_quiet():
            return
        if change["name"] == "sort_by" and change["new"] != CLASS_CONTRIBUTION:
            return
        if change["name"] == "show_cam" and not change["new"]:
            return  # the view stops drawing it
        if not w.class_evidence:
            w.class_evidence = True  # its observer shows (or computes) the evidence
        elif change["name"] == "target_class":
            with w._lock:
                if w._pending_request() is None:
                    with w._quiet(), w.hold_sync():
                        self.show()

    # ------------------------------------------------------------------ state
    def asked(self) -> tuple:
        """What the view asks for: its image, layer, class and device."""
        w = self.w
        return (id(w._source), w.image_index, w._features_layer, w.target_class, str(w._viz.device))

    def key(self) -> tuple:
        """The cache key of the view shown under the chosen class: `asked()` and the weights'
        version."""
        return (*self.asked(), self.w._viz.features.model_version())

    def cached(self, key: tuple) -> ClassEvidence | str | None:
        """The evidence (or the note saying why there is none) cached for `key`, or None."""
        entry = self.cache.get(key)
        if entry is None or entry[0] is not self.w._source:  # an id reused by another image
            return None
        self.cache.move_to_end(key)
        return entry[1]

    def ranking(self) -> list[int] | None:
        """The channels of the view shown by contribution to the chosen class, best first, when
        its evidence is there."""
        w = self.w
        if self.shown is None or w._features is None or self.shown_key != self.key():
            return None
        return [int(c) for c in self.shown.ranked_channels(0)]

    # ------------------------------------------------------------------ jobs
    def show(self) -> None:
        """After a view, class or setting change (under the lock, quietly): the cached evidence
        of what is shown, else a run for it (when `class_evidence` is on), else nothing."""
        w = self.w
        if w._features is None:
            return
        if not w.class_evidence:
            self.clear()
            if w.sort_by == CLASS_CONTRIBUTION:  # no contributions to sort by: the default
                w.sort_by = CORE_SORT_MODES[0]
                self.on_ranking()
            return
        if w._classes.get("count", -1) == 0:
            self.publish_note(w._classes.get("note", ""))
            return
        key = self.key()
        cached = self.cached(key)
        if cached is not None:
            if w._worker.pending(JobState.EVIDENCE):
                w._worker.invalidate(JobState.EVIDENCE)
            self.publish(key, cached)
            return
        if self.shown_key is not None and self.shown_key[:2] != key[:2]:
            self.clear()  # another image's evidence: gone; a layer's or class's stays till then
        if not (w._worker.pending(JobState.EVIDENCE) and self.wanted == key):
            if w._evidence.get("note") == CANCELLED:
                self.clear()
            self.wanted = key
            w._worker.submit(JobState.EVIDENCE, self._run, self.status.report)

    def pause(self) -> None:
        """Stop a queued or running run (a view job needs the worker); `show` starts it again
        for what is shown next."""
        self.w._worker.invalidate(JobState.EVIDENCE)
        self.wanted = None

    def cancel(self) -> None:
        """Stop a queued or running run (Cancel); the panel says so until the next view,
        class or setting change asks again."""
        w = self.w
        running = w._worker.pending(JobState.EVIDENCE)
        self.pause()
        if running and w._features is not None:
            with w._quiet(), w.hold_sync():
                self.publish_note(CANCELLED)

    def publish(self, key: tuple, evidence: ClassEvidence | str) -> None:
        """Set the `_evidence` payload (inside `hold_sync()`, quietly) and, when the grid is
        sorted by class contribution, its order."""
        w = self.w
        if isinstance(evidence, str):
            self.publish_note(evidence)
            return
        self.shown, self.shown_key = evidence, key
        size = w._shown.shape[:2] if w._shown is not None else tuple(w._features.shape[2:])
        names = w._classes.get("names") or []
        chosen = w.target_class is not None
        w._outbox.set("_evidence", *evidence_view(evidence, size, w.image_index, chosen, names))
        if w.sort_by == CLASS_CONTRIBUTION:
            self.on_ranking()

    def publish_note(self, note: str) -> None:
        w = self.w
        self.shown, self.shown_key = None, None
        if w._evidence.get("note") != note:
            w._outbox.set("_evidence", *evidence_note(w._features_layer, note))

    def clear(self) -> None:
        w = self.w
        self.shown, self.shown_key = None, None
        if w._evidence:
            w._outbox.set("_evidence", b"", {})

    def _run(self, job: Job) -> None:
        w = self.w
        with w._lock:
            if w._features is None or not w.class_evidence:
                return
            key = self.key()
            viz, source, layer = w._viz, w._shown_source, w._features_layer
            target, image = w.target_class, w._source
            self.wanted = key
            cached = self.cached(key)
            if cached is not None:
                with w._quiet(), w.hold_sync():
                    self.publish(key, cached)
                return
        name = "top-1 class" if target is None else f"class {target}"
        self.status.start(job, f"class evidence: {layer}, {name}…")
        try:
            evidence: ClassEvidence | str = viz.class_evidence(source, layer, target)
        except ValueError as exc:  # no classifier, a layer without a gradient: said in the panel
            evidence = str(exc)
        with w._lock:
            if isinstance(evidence, str) and target is not None and job.current:
                with w._quiet():  # a class the model does not have (its count was unknown)
                    w.error = evidence
            self.cache[key] = (image, evidence)
            while len(self.cache) > _CACHE_SIZE:
                self.cache.popitem(last=False)
            # Shown if the view still asks for it, though the user may have trained meanwhile
            # (the weights' version moved): the next view computes it again.
            if job.current and self.asked() == key[:-1]:
                with w._quiet(), w.hold_sync():
                    self.publish(key, evidence)
