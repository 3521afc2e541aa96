"""`FeatureExplorer.save_html`: the explorer as one HTML file that works offline.

The page holds the widget's own front end (the bundle and its CSS), the explorer's synced
state with every payload's bytes inline, and, for each saved layer of the image shown, its
statistics, its channel rankings and every channel's map as `encode_maps` tiles. A small
hand-written model (static/offline.js) stands in for the kernel: it cuts `_grid` and `_unit`
from those tiles as `grid_view` and `unit_view` would, so the layer, sort and channel
controls work without Python; the others are disabled and say why.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.capture import resolve_layers
from ..core.json_values import json_safe
from ..visualizer import FeatureVisualizer
from .payload import encode_maps
from .protocol import layer_entry

__all__ = ["LIVE_CONTROLS", "layer_record", "page_html", "save_page"]

_STATIC = Path(__file__).resolve().parents[1] / "static"
# The view's controls that work from the saved data (CSS selectors); offline.js disables the rest.
LIVE_CONTROLS = (
    ".fvz-filter",
    ".fvz-layer",
    ".fvz-sort",
    ".fvz-channel",
    ".fvz-num",
    ".fvz-scale",
    ".fvz-export-view",
    ".fvz-export",
    ".fvz-error-close",
)
HELD_TITLE = "Needs a running kernel: this page is a snapshot saved with save_html()"
# Traits that are the host's business, or the work of a kernel this page does not have.
_SKIP = {"_esm", "_css", "layout", "tabbable", "tooltip"}
_IDLE = {"busy": False, "progress": 0.0, "status": "", "error": "", "_job": "idle"}


def layer_record(features: torch.Tensor, statistics: dict, rankings: dict[str, list[int]]) -> dict:
    """What the page keeps of one layer: `statistics`, `rankings` and every channel of the
    first image of (B, C, H, W) `features` as `encode_maps` tiles (`data`, base64) with each
    channel's mean as `grid_view` (`means`) and `unit_view` (`unit_means`) compute it."""
    count = features.shape[1]
    data, maps = encode_maps(features[0].numpy())
    with np.errstate(all="ignore"):
        # as the views do it, so the page's metadata equals theirs to the bit
        rows = features[0][list(range(count))].numpy().reshape(count, -1)
        means = np.nanmean(rows, axis=1).tolist()
        unit_means = [float(np.nanmean(features[0, c].numpy())) for c in range(count)]
    return json_safe(
        {
            "statistics": statistics,
            "rankings": rankings,
            "maps": maps,
            "data": base64.b64encode(data).decode("ascii"),
            "means": means,
            "unit_means": unit_means,
        }
    )


def save_page(
    explorer: Any,
    path: str | os.PathLike,
    *,
    layers: Sequence[str] | None,
    payloads: Mapping[str, tuple[bytes, dict]],
    rankings: Mapping[str, Mapping[str, list[int]]] | None = None,
) -> Path:
    """Write `explorer` (idle: its worker done) as one offline HTML file at `path`, with the
    layers `layers` (default: its menu) of the image shown, its payload traits as `payloads`
    holds them (bytes, metadata), and the panels' sort modes' `rankings` by layer where they
    are known (the layer shown's class contribution ranking). Nothing is written when
    something fails."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot save {str(path)!r}: the folder {str(path.parent)!r} does not exist."
        )
    viz: FeatureVisualizer = explorer.visualizer
    menu = {entry["name"]: entry for entry in explorer.get_state("_layers")["_layers"]}
    names = list(menu) if layers is None else _checked(viz, layers)
    batch = viz.prepare(explorer.image)
    index = explorer.image_index if explorer.image_index < batch.shape[0] else 0
    source = batch[index : index + 1] if batch.shape[0] > 1 else batch
    missing = [name for name in names if name not in menu]
    if missing:
        menu.update(_entries(viz, source, missing))
    saved_layers = {}
    for name in names:
        view = viz.layer_view(source, name, index=0)
        ranked = {**view.rankings, **(rankings or {}).get(name, {})}
        features = view.features.detach().float().cpu()
        saved_layers[name] = layer_record(features, view.statistics, ranked)
    state = _state(explorer, payloads)
    state["_layers"] = [menu[name] for name in names]
    saved = {
        "esm": (_STATIC / "widget.js").read_text(encoding="utf-8"),
        "state": state,
        "layers": saved_layers,
        "live": list(LIVE_CONTROLS),
        "held": HELD_TITLE,
    }
    model = type(viz.model).__name__
    image = (state.get("_image") or {}).get("name", "")
    text = page_html(saved, title=f"{model} · {image}" if image else model, layers=names)
    _write_atomically(path, text)
    return path


def _checked(viz: FeatureVisualizer, layers: Sequence[str]) -> list[str]:
    """`layers` without repeats; an unknown name raises `resolve_layers`' error (closest names)."""
    if isinstance(layers, str):
        raise TypeError(f"`layers` must be a list of layer names, got the string {layers!r}.")
    names = list(dict.fromkeys(layers))
    if not names:
        raise ValueError("`layers` is empty; pass None to save every layer of the menu.")
    resolve_layers(viz.model, names)
    return names


def _entries(viz: FeatureVisualizer, source: torch.Tensor, names: list[str]) -> dict[str, dict]:
    """The menu entries of layers `names` outside the explorer's menu."""
    found = {info.name: info for info in viz.list_layers(source, include="all")}
    for name in names:
        if name not in found:
            raise ValueError(
                f"layer {name!r} has no output that can be shown as maps, so it cannot be "
                "saved; `explorer.visualizer.list_layers(include='all')` lists those that can."
            )
    return {name: dict(layer_entry(found[name])) for name in names}


def _state(explorer: Any, payloads: Mapping[str, tuple[bytes, dict]]) -> dict:
    """The synced traits as JSON, payloads with their bytes inline, the worker idle."""
    raw = explorer.get_state()
    state = {
        key: value
        for key, value in raw.items()
        if key not in _SKIP and not key.startswith(("_model", "_view", "_dom", "_anywidget"))
    }
    for name, (data, meta) in payloads.items():
        state[name] = {**meta, "data": data} if data or meta else {}
    state.update(_IDLE)
    return json_safe(json.loads(json.dumps(state, default=_b64)))  # NaN: null, as JSON has it


def _b64(value: object) -> dict:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"__b64__": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def page_html(saved: dict, *, title: str, layers: Sequence[str]) -> str:
    """The page: the widget's CSS, the snapshot mark, the saved data as JSON and offline.js."""
    css = (_STATIC / "widget.css").read_text(encoding="utf-8")
    script = (_STATIC / "offline.js").read_text(encoding="utf-8")
    for name, text, end in (("widget.css", css, "</style"), ("offline.js", script, "</script")):
        if end in text.lower():  # they are ours: this would be a bug, not the user's input
            raise RuntimeError(f"{name} contains {end!r} and cannot be inlined")
    # "<" as \u003c: no "</script>" inside the JSON ends its element early
    data = json.dumps(saved, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    count = len(layers)
    mark = (
        f"Snapshot without a kernel, saved {when}. Layer, sort, channel and maps switch "
        f"among the {count} saved layer{'s' if count != 1 else ''}; the other controls need "
        "the notebook running."
    )
    return PAGE.format(
        title=html.escape(f"featviz: {title}"),
        css=css,
        mark=html.escape(mark),
        data=data,
        script=script,
    )


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
<style>
body {{ margin: 16px; font-family: system-ui, sans-serif; }}
.fvz-saved-mark {{ margin: 0 0 12px; padding: 6px 10px; border-left: 4px solid #e91e63;
  background: rgba(233, 30, 99, 0.08); font-size: 13px; }}
</style>
</head>
<body>
<p class="fvz-saved-mark" role="note">{mark}</p>
<div id="fvz-host"></div>
<script type="application/json" id="fvz-saved">{data}</script>
<script type="module">
{script}
</script>
</body>
</html>
"""


def _write_atomically(path: Path, text: str) -> None:
    """`text` at `path`, whole or not at all (a failure leaves no partial file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
