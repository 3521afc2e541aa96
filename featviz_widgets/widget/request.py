"""The pending view job's request: what it shows, and what was chosen for it meanwhile."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    position: list[int] | None = None  # the unit chosen for it (checked once it is shown)
    # `position` when it was asked (the unit shown): a failed view puts it back
    unit_shown: list[int] = field(default_factory=list)
    asked: dict[str, Any] = field(default_factory=dict)  # what each panel asks of it, by name
