"""The contract between `FeatureExplorer` (Python) and its front end (js/widget.js).

One source for what both sides must agree on: the message kinds the view sends, the job
states it shows, the enums its dropdowns offer, the limits it enforces, and the shape of the
payload metadata. The front end hard-codes none of these: it reads them from the widget's
`_contract` trait, which is `contract()`. tests/test_contract.py checks the JS against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any, Protocol, TypedDict

from ..core.json_values import json_safe
from ..core.layers import LayerInfo
from ..core.stats import SORT_MODES as CORE_SORT_MODES
from ..plotting.figures import MAX_FEATURE_MAPS
from .payload import MAX_UPLOAD_BYTES, MapsMeta

__all__ = [
    "CORE_SORT_MODES",
    "COLOR_SCALES",
    "CHUNK_BYTES",
    "INLINE_PAYLOAD_BYTES",
    "MAX_FEATURE_MAPS",
    "MAX_MESSAGE_BYTES",
    "MAX_UPLOAD_BYTES",
    "UPLOAD_DATA_KEY",
    "UPLOAD_TIMEOUT_S",
    "SHARED_SCALE",
    "CORE_PAYLOADS",
    "ChunkedMeta",
    "ColorScale",
    "ImageMeta",
    "JobState",
    "LayerEntry",
    "MapsMeta",
    "Message",
    "PanelParts",
    "Payload",
    "PULL_TIMEOUT_MS",
    "Push",
    "contract",
    "export_views",
    "json_safe",
    "layer_entry",
    "payloads",
    "sort_modes",
]


class ColorScale(str, Enum):
    """`color_scale`: each map over its own range, or one range for all."""

    PER_TILE = "per-tile"
    SHARED = "shared"


COLOR_SCALES = tuple(scale.value for scale in ColorScale)
SHARED_SCALE = ColorScale.SHARED.value


class PanelParts(Protocol):
    """What the contract reads of a panel class (`panels.base.Panel`): the registry is passed
    in, so that this module imports no panel."""

    name: str
    trait: str
    meta: type
    cancellable: bool
    messages: dict[str, str]
    contract: dict[str, Any]
    sort_modes: tuple[str, ...]

    @classmethod
    def export_views(cls) -> tuple[str, ...]: ...


def sort_modes(panels: Sequence[PanelParts]) -> tuple[str, ...]:
    """The explorer's sort modes (`sort_by`): the core's rankings and the panels' ("class
    contribution")."""
    return (*CORE_SORT_MODES, *(mode for panel in panels for mode in panel.sort_modes))


def export_views(panels: Sequence[PanelParts]) -> tuple[str, ...]:
    """The views `save_png` and the front end's "Save PNG" export: every panel's."""
    return tuple(view for panel in panels for view in panel.export_views())


UPLOAD_TIMEOUT_S = 60.0
"""An upload whose next chunk has not come this many seconds after the last is dropped."""
UPLOAD_DATA_KEY = "data"
"""The upload message field carrying its bytes as base64 text where a front end cannot send
binary buffers (Colab's JSON round trip); a message with a buffer needs no such field."""
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""The most bytes one comm message carries either way: larger ones drop Colab's connection."""
CHUNK_BYTES = MAX_MESSAGE_BYTES // 2
"""The bytes one chunk of a payload or upload carries (the rest of a message: its JSON)."""
INLINE_PAYLOAD_BYTES = MAX_MESSAGE_BYTES // 16
"""The most bytes a payload trait holds itself (as `data`). One state update may carry every
payload trait (`payloads()`, 9 today): half the bound, and under marimo's output limit (8 MB)
once marimo base64-encodes it (tests/test_widget_marimo.py). A larger payload's bytes travel
in `Push.CHUNK` messages, and its trait says `chunked` instead."""
PULL_TIMEOUT_MS = 5000
"""A view whose `Message.PULL` has no answer within this time has no kernel behind it (a saved
page, an HTML export): it keeps what it shows, marked as a snapshot."""


class Message(str, Enum):
    """The `type` of a message the front end sends (`model.send({type, ...})`)."""

    CANCEL = "cancel"  # stop the cancellable panels' jobs (`contract()['cancellable_jobs']`)
    # {name, id, index, count, size} + one buffer, or the bytes as base64 text in the field
    # `UPLOAD_DATA_KEY`: a chunk of an image file (no `count`: the whole file)
    UPLOAD = "upload"
    # {names?}: answer with the current state of payload traits `names` (every synced trait
    # when absent: a view that just rendered), their chunks, then `Push.PULLED`
    PULL = "pull"


class Push(str, Enum):
    """The `type` of a message Python sends the front end (`model.on("msg:custom")`)."""

    CHUNK = "chunk"  # {name, id, index, count, size} + one buffer: a piece of a payload
    PULLED = "pulled"  # {names}: the answer to a `Message.PULL` has been sent


class JobState(str, Enum):
    """What the background worker runs (a job kind), or `IDLE`; the `_job` trait."""

    IDLE = "idle"
    VIEW = "view"  # image, layer list, features, statistics, rankings
    COMPARE = "compare"
    SWITCH_MODEL = "switch_model"  # another model of a mapping: its layer aligned by depth


class LayerEntry(TypedDict):
    """One layer of the dropdown (`core.layers`)."""

    name: str
    type: str
    shape: list[int]
    layout: str


def layer_entry(info: LayerInfo) -> LayerEntry:
    """The dropdown's entry for `info`."""
    return LayerEntry(
        name=info.name, type=info.module_type, shape=list(info.shape), layout=info.layout
    )


class ImageMeta(TypedDict):
    """`_image`'s metadata: the input image as the model sees it (its `data` is a PNG)."""

    h: int
    w: int
    name: str
    batch: int  # how many images the input holds
    index: int  # which of them is shown (`image_index`)


class ChunkedMeta(TypedDict):
    """`chunked` in a payload trait when its bytes travel in `Push.CHUNK` messages."""

    id: int
    size: int
    count: int


class Payload(TypedDict, total=False):
    """What a payload trait holds besides its metadata (one of `payloads()`' types): its bytes
    as `data` (a binary buffer of the comm message), or, past `INLINE_PAYLOAD_BYTES`, the
    `chunked` note of the `Push.CHUNK` messages that carry them. `{}`: nothing to show."""

    data: bytes
    chunked: ChunkedMeta


CORE_PAYLOADS: dict[str, type] = {"_image": ImageMeta}
"""The payload no panel owns: the image shown, which every view draws on."""


def payloads(panels: Sequence[PanelParts]) -> dict[str, type]:
    """The payload traits and their metadata types: the image's and each panel's, `_<name>`.
    Each trait holds its metadata and its bytes together (`Payload`), so a view never sees one
    without the other. js/src/types.js and the panels' JS modules declare the same
    (tests/test_contract.py)."""
    return {**CORE_PAYLOADS, **{panel.trait: panel.meta for panel in panels}}


def contract(panels: Sequence[PanelParts]) -> dict[str, Any]:
    """The enums and limits the front end reads (the `_contract` trait's value), for the
    registry `panels`."""
    return {
        "sort_modes": list(sort_modes(panels)),
        "color_scales": list(COLOR_SCALES),
        "shared_scale": SHARED_SCALE,
        "export_views": list(export_views(panels)),
        "max_feature_maps": MAX_FEATURE_MAPS,
        "max_upload_bytes": MAX_UPLOAD_BYTES,
        "chunk_bytes": CHUNK_BYTES,
        "pull_timeout_ms": PULL_TIMEOUT_MS,
        "payloads": list(payloads(panels)),
        "upload_data_key": UPLOAD_DATA_KEY,
        "messages": {
            **{kind.name.lower(): kind.value for kind in Message},
            **{kind: kind for panel in panels for kind in panel.messages},
        },
        "pushes": {kind.name.lower(): kind.value for kind in Push},
        "cancellable_jobs": [panel.name for panel in panels if panel.cancellable],
        "panels": {panel.name: dict(panel.contract) for panel in panels},
    }
