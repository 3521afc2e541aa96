"""The pending view job's request: what it shows, and what was chosen for it meanwhile."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.inputs import ImageInput

__all__ = ["ViewRequest"]


@dataclass
class ViewRequest:
    """What the pending view job shows, and what was chosen for it while it computes."""

    source: ImageInput
    name: str | None
    layer: str | None  # None: the default layer, decided by the job
    compare: list[str] | None
    relist: bool
    rebuild_device: str | None
    channel: int | None = None
    image_index: int = 0  # which image of a batch is shown
    position: list[int] | None = None  # an occlusion to run once shown ([]: the centre)
