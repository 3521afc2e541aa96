"""The explorer's class evidence in Python, a thin front on its job object (`FeatureExplorer`
inherits it)."""

from __future__ import annotations

from ..evidence import ClassEvidence
from .evidence import EvidenceJob
from .traits import ExplorerTraits
from .views import contribution_text

__all__ = ["ExplorerAnalyses"]


class ExplorerAnalyses(ExplorerTraits):
    """The analyses' public methods and results; the jobs are made by `FeatureExplorer`."""

    _evidence_job: EvidenceJob

    # ------------------------------------------------------------------ class evidence
    @property
    def class_names(self) -> list[str]:
        """The model's class names, by index (ImageNet's for 1000 classes, else "class i");
        empty for a model without a classifier or one that does not say its class count."""
        return list(self._classes.get("names", []))

    @property
    def class_evidence_result(self) -> ClassEvidence | None:
        """The `ClassEvidence` (`FeatureVisualizer.class_evidence`) of the image and layer
        shown for `target_class`, or None (`class_evidence` off, not computed yet, or no
        classifier: `_evidence`'s `note` says why)."""
        with self._lock:
            return self._evidence_job.shown

    def channel_contribution(self, channel: int | None = None) -> dict | None:
        """What `channel` (default: the selected one) contributes to the chosen class:
        `value` (gradient x activation summed over positions), `rank` (1-based, of `of`
        channels), `target`, `name` and the `text` the channel view shows, e.g.
        "contribution to 'tabby cat': +0.123 (rank 3 of 256)". None without class evidence."""
        with self._lock:
            meta = self._outbox.meta("_evidence")
        channel = self.channel if channel is None else channel
        values = meta.get("contributions") or []
        if not 0 <= channel < len(values):
            return None
        return {
            "value": values[channel],
            "rank": meta["ranks"][channel],
            "of": len(values),
            "target": meta["target"],
            "name": meta["target_name"],
            "text": contribution_text(meta, channel),
        }
