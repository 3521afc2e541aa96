"""The explorer's analyses in Python: occlusion, "looks for", class evidence and dataset
examples, each a thin front on its job object (`FeatureExplorer` inherits them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.capture import resolve_layers
from ..dataset import DatasetExamples
from ..evidence import ClassEvidence
from ..occlusion.engine import OcclusionResult
from ..optimize.optimizer import OptimizationResult
from .evidence import EvidenceJob
from .examples import ExamplesJob
from .looks_for import LooksForJob
from .occlusion_job import OcclusionJob
from .traits import ExplorerTraits
from .views import contribution_text

__all__ = ["ExplorerAnalyses"]


class ExplorerAnalyses(ExplorerTraits):
    """The analyses' public methods and results; the jobs are made by `FeatureExplorer`."""

    _occlusion_job: OcclusionJob
    _looks_for_job: LooksForJob
    _evidence_job: EvidenceJob
    _examples_job: ExamplesJob

    # ------------------------------------------------------------------ occlusion
    @property
    def occlusion_result(self) -> OcclusionResult | None:
        """The last (possibly partial) occlusion sweep, for every channel of its unit."""
        return self._occlusion_job.result

    def occlusion_map(self, channel: int | None = None, signed: bool = False) -> np.ndarray:
        """The occlusion map (H_in, W_in) of `channel` (default: the selected one)."""
        result = self._occlusion_job.result
        if result is None:
            raise ValueError("no occlusion has run yet; set `position` or call `run_occlusion()`.")
        return result.map(self.channel if channel is None else channel, signed=signed)

    def run_occlusion(self, position: Sequence[int] | None = None) -> None:
        """Start an occlusion sweep for the unit at `position` (default: the current one, or
        the centre of the map) in the background; results stream into the widget."""
        if position is not None and list(position) != self.position:
            self.position = list(position)  # checked; the observer starts the sweep
        else:  # an equal value notifies nobody: start it here
            self._occlusion_job.submit(None if position is None else list(position))

    # ------------------------------------------------------------------ looks for
    def run_looks_for(self, channel: int | None = None) -> None:
        """What does the channel look for? Optimise a picture that excites `channel` (default:
        the selected one; given, it is selected) of the layer shown, in the background, with
        `FeatureVisualizer.optimize`: it refines live in the view and `cancel()` stops it.
        On CUDA the full recipe (512 steps), elsewhere a 128-step preview at
        `model_size=128`; `looks_for_steps` and `looks_for_options` change that. A picture
        made before for the same layer, channel and settings is shown at once, without work.
        Selecting another channel while it runs runs that channel's instead."""
        if channel is not None and channel != self.channel:
            self.channel = channel  # checked
        self._looks_for_job.submit()

    @property
    def looks_for_result(self) -> OptimizationResult | None:
        """The "looks for" result shown (`.images[0]`, possibly partial: `.complete`), or
        None."""
        return self._looks_for_job.shown

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

    # ------------------------------------------------------------------ dataset examples
    @property
    def dataset(self) -> Any:
        """The collection whose top images per channel the explorer shows beside the channel
        (None: none). Assigning one (a folder, a list of paths or images, a Dataset, a
        DataLoader) scans it in the background with `scan_dataset`'s defaults; None hides
        the examples."""
        return self._examples_job.data

    @dataset.setter
    def dataset(self, value: Any) -> None:
        if value is None:
            self._examples_job.clear()
        else:
            self.scan_dataset(value)

    @property
    def dataset_examples(self) -> DatasetExamples | None:
        """The last finished dataset scan (None before one finishes)."""
        return self._examples_job.result

    def scan_dataset(
        self,
        data: Any,
        layers: Sequence[str] | None = None,
        *,
        k: int = 9,
        batch_size: int = 32,
    ) -> None:
        """Scan `data` in the background (progress in `progress`, stopped by `cancel()`) for
        the top `k` images of every channel of `layers` (default: the layer list, and the
        current layer), in one pass; then the view shows the selected channel's, each cut to
        what its unit sees, and follows the layer and channel without scanning again.
        Errors show in `error`."""
        if layers is not None:
            resolve_layers(self._viz.model, list(layers))
        self._examples_job.submit_scan(data, layers, k=k, batch_size=batch_size)

    def show_dataset_image(self, index: int) -> None:
        """Make image `index` of the scanned dataset the explorer's image (what a click on
        one of its examples does)."""
        self._examples_job.show(index)
