"""The explorer's occlusion in Python: a thin front on its job object (`FeatureExplorer`
inherits it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..occlusion.engine import OcclusionResult
from .occlusion_job import OcclusionJob
from .traits import ExplorerTraits

__all__ = ["ExplorerAnalyses"]


class ExplorerAnalyses(ExplorerTraits):
    """The analyses' public methods and results; the jobs are made by `FeatureExplorer`."""

    _occlusion_job: OcclusionJob

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
