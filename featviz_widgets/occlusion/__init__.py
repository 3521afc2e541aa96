"""Occlusion sensitivity: how much each input region drives one unit (layer, position), for
every channel in one sweep. `engine` defines the sweep and its result, `incremental` and
`stage_reach` recompute only what a patch changes, `runner` sizes and runs sweeps on a
device, `receptive` gives each unit's exact input region. Depends on `core` only."""

from .engine import OcclusionCancelled, OcclusionResult
from .receptive import receptive_boxes
from .runner import OcclusionRunner

__all__ = ["OcclusionCancelled", "OcclusionResult", "OcclusionRunner", "receptive_boxes"]
