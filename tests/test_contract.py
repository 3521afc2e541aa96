"""The front end (js/src) and `FeatureExplorer` agree: one contract, `protocol`.

Reads the JS source, all of js/src's modules together (no browser): every model key it reads,
writes or listens to is a synced trait, every trait is used, the message kinds it sends are the
ones Python handles, and no enum value or limit of the protocol is spelled in the JS (it reads
them from `_contract`).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import anywidget
import pytest
import traitlets

from featviz_widgets.plotting.figures import grid_columns
from featviz_widgets.widget import protocol as _protocol
from featviz_widgets.widget.explorer import FeatureExplorer, _asset
from featviz_widgets.widget.panels import CONTRACT, EXPORT_VIEWS, PANELS, PAYLOADS, SORT_MODES
from featviz_widgets.widget.protocol import (
    CHUNK_BYTES,
    COLOR_SCALES,
    MAX_FEATURE_MAPS,
    MAX_UPLOAD_BYTES,
    UPLOAD_DATA_KEY,
    JobState,
    Message,
    Push,
)

REPO = Path(__file__).resolve().parents[1]
# the front end's modules, read together: the checks below span them all
MODULES = sorted((REPO / "js" / "src").rglob("*.js"))  # src/panels/ too
JS = "\n".join(path.read_text() for path in MODULES)
TYPES = (REPO / "js" / "src" / "types.js").read_text()

READS = set(re.findall(r"""\bget\(\s*["'](\w+)["']\s*\)""", JS))
SETS = set(re.findall(r"""\bmodel\.set\(\s*["'](\w+)["']""", JS))
SAVES = set(re.findall(r"""\bsave\(\s*\{\s*(\w+)\s*[:,}]""", JS))
LISTENS = set(re.findall(r"""["'`]change:(\w+)["'`]""", JS))
# the JS with model keys taken out: what is left must not spell a protocol value
WITHOUT_KEYS = re.sub(
    r"""\bget\(\s*["']\w+["']\s*\)|\bmodel\.set\(\s*["']\w+["']|["'`]change:\w+["'`]""", "", JS
)
# a panel's module names itself (its trait) and its export views: the registries check them
WITHOUT_KEYS = re.sub(r'^  (name: "\w+"|views: \[[^\]]*\]),$', "", WITHOUT_KEYS, flags=re.M)

BASE_TRAITS = set(anywidget.AnyWidget.class_traits(sync=True)) | {"_esm", "_css"}
# the panels' payload traits are read through the registries (test_every_panel_... below)
PANEL_TRAITS = {panel.trait for panel in PANELS}
# a panel's own synced traits are declared in its JS module (test_every_panel_... below)
OWN_TRAITS = {
    name for panel in PANELS for name, trait in panel.traits.items() if trait.metadata.get("sync")
}
SYNCED = set(FeatureExplorer.class_traits(sync=True)) - BASE_TRAITS - PANEL_TRAITS
PANEL_JS = REPO / "js" / "src" / "panels"
STATIC = {"_contract"}  # set once, when the widget is created: read without a listener


def test_the_widget_loads_the_bundle_of_these_modules():
    assert len(MODULES) >= 10 and "types.js" in {path.name for path in MODULES}
    static = REPO / "featviz_widgets" / "static"
    assert _asset("widget.js") == static / "widget.js"  # tests/test_js.py: it is fresh
    assert _asset("widget.css") == static / "widget.css"


def test_the_parsers_find_the_model_keys():
    # a refactor that hides keys from the regexes must not make the checks below vacuous
    assert {"layer", "_image", "_contract", "_job"} <= READS  # panels read theirs typed
    assert {"layer", "channel", "position"} <= SAVES
    assert {"layer", "_grid", "busy", "_job"} <= LISTENS


def test_every_key_the_view_uses_is_a_synced_trait():
    unknown = (READS | SETS | SAVES | LISTENS) - SYNCED - PANEL_TRAITS  # those: registry's
    assert not unknown, f"js/src uses model keys FeatureExplorer does not sync: {unknown}"


def test_every_synced_trait_is_used_by_the_view():
    unused = SYNCED - READS
    assert not unused, f"synced traits js/src never reads: {unused}"


def test_every_key_the_view_reads_is_listened_to():
    stale = READS - LISTENS - STATIC - PANEL_TRAITS  # panel-host listens to those
    assert not stale, f"js/src reads these keys but does not repaint on change: {stale}"


def test_the_view_writes_only_what_python_lets_it():
    # read-only traits (results, job state, payloads) are Python's; `error` may be dismissed
    read_only = {"statistics", "compare_statistics", "busy", "progress", "status", "_job"}
    written = (SAVES | SETS) & (read_only | {name for name in SYNCED if name.startswith("_")})
    assert not written, f"js/src writes Python-owned traits: {written}"


def test_message_kinds_sent_are_exactly_the_ones_python_handles():
    sent = re.findall(r"""model\.send\(\s*\{\s*type:\s*([^,}\s]+)""", JS)
    # a message built first and sent after (the upload's chunks)
    sent += re.findall(r"""const message = \{\s*type:\s*([^,}\s]+)""", JS)
    assert sent, "no model.send({type: ...}) found in js/src"
    sent = [kind.removeprefix("state.") for kind in sent]
    literal = [kind for kind in sent if not kind.startswith("messages.")]
    assert not literal, f"message kinds spelled in the JS, not read from the contract: {literal}"
    names = {kind.removeprefix("messages.") for kind in sent}
    assert names == set(CONTRACT["messages"])
    panels = {kind: (panel, method) for panel in PANELS for kind, method in panel.messages.items()}
    values = {kind.value for kind in Message} | set(panels)
    assert {CONTRACT["messages"][name] for name in names} == values
    handled = FeatureExplorer._message_handlers(SimpleNamespace())  # type: ignore[arg-type]
    assert set(handled) == set(Message) and not set(panels) & set(Message)
    for kind, (panel, method) in panels.items():  # a panel answers its own messages
        assert callable(getattr(panel, method, None)), (kind, panel.name, method)


def test_every_message_kind_python_sends_is_handled_by_the_view():
    handled = set(re.findall(r"\bpushes\.(\w+)", JS))
    assert handled == set(CONTRACT["pushes"]) == {kind.name.lower() for kind in Push}
    assert re.search(r"""["']msg:custom["']\s*:""", JS), "js/src has no msg:custom listener"


def test_the_contract_trait_carries_the_protocol():
    assert FeatureExplorer.class_traits()["_contract"].default() == CONTRACT
    assert {
        "sort_modes": list(SORT_MODES),
        "color_scales": list(COLOR_SCALES),
        "shared_scale": _protocol.SHARED_SCALE,
        "export_views": list(EXPORT_VIEWS),
        "max_feature_maps": MAX_FEATURE_MAPS,
        "max_upload_bytes": MAX_UPLOAD_BYTES,
        "chunk_bytes": CHUNK_BYTES,
        "pull_timeout_ms": _protocol.PULL_TIMEOUT_MS,
        "payloads": list(PAYLOADS),
        "upload_data_key": UPLOAD_DATA_KEY,
        "messages": {
            **{kind.name.lower(): kind.value for kind in Message},
            **{kind: kind for panel in PANELS for kind in panel.messages},
        },
        "pushes": {kind.name.lower(): kind.value for kind in Push},
        "cancellable_jobs": [panel.name for panel in PANELS if panel.cancellable],
        "panels": {panel.name: panel.contract for panel in PANELS},
    } == CONTRACT
    assert FeatureExplorer.class_traits()["sort_by"].values == SORT_MODES
    assert FeatureExplorer.class_traits()["color_scale"].values == COLOR_SCALES
    jobs = {job.value for job in JobState} | {panel.name for panel in PANELS}
    assert set(FeatureExplorer.class_traits()["_job"].values) == jobs


ENUMS = {
    "sort_by": SORT_MODES,
    "color_scale": COLOR_SCALES,
    "export": EXPORT_VIEWS,
    "message": tuple(kind.value for kind in Message),
    "push": tuple(kind.value for kind in Push),
    "job": (*(job.value for job in JobState), *(panel.name for panel in PANELS)),
}


@pytest.mark.parametrize(
    "value",
    [value for values in ENUMS.values() for value in values],
    ids=[f"{name}={value}" for name, values in ENUMS.items() for value in values],
)
def test_no_enum_value_is_spelled_in_the_js(value):
    quoted = [f'"{value}"', f"'{value}'", f"`{value}`"]
    found = [q for q in quoted if q in WITHOUT_KEYS]
    assert not found, f"js/src spells {found}: read it from `_contract` instead"


def test_no_limit_is_spelled_in_the_js():
    megabytes = MAX_UPLOAD_BYTES >> 20
    assert not re.search(rf"\bmax:\s*{MAX_FEATURE_MAPS}\b", JS), "the maps limit is hard-coded"
    for spelled in (str(MAX_UPLOAD_BYTES), f"{megabytes} MB", f"{megabytes} * 1024"):
        assert spelled not in JS, f"the upload cap is hard-coded as {spelled!r}"
    assert "contract.max_feature_maps" in JS and "contract.max_upload_bytes" in JS
    assert str(CHUNK_BYTES) not in JS and "contract.chunk_bytes" in JS


def test_cancel_follows_the_job_not_the_status_text():
    assert not re.search(r"""get\(\s*["']status["']\s*\)[^;\n]*\.startsWith""", JS)
    assert re.search(r"cancelButton\.disabled\s*=.*cancellable_jobs.*_job", JS)


def test_every_export_view_has_a_canvas():
    table = re.search(r"const exportCanvases = \{([^}]*)\}", JS)
    assert table, "js/src has no exportCanvases table"
    keys = re.findall(r"(\w+)\s*:", table.group(1))
    # each panel's canvas joins the table when the view builds it (panel-host.js)
    assert "for (const view of views) state.dom.exportCanvases[view] = canvas;" in JS
    assert keys + [view for panel in PANELS for view in panel.export_views()] == list(EXPORT_VIEWS)


def test_the_grid_layout_comes_from_the_payload():
    assert "Math.sqrt" not in JS  # columns are `_grid`'s `cols` (`grid_columns`)
    assert [grid_columns(n) for n in (1, 2, 4, 5, 9, 10, 256)] == [1, 2, 2, 3, 3, 4, 16]


def _typedef_blocks() -> list[str]:
    """js/src/types.js's header, and each panel module's typedef comment (the grid's `GridMeta`
    and the unit's `UnitMeta` live in js/src/panels/grid.js and unit.js)."""
    blocks = []
    for path in sorted(PANEL_JS.glob("*.js")):
        source = path.read_text()
        if "@typedef" in source:
            start = source.rindex("/**", 0, source.index("@typedef"))
            blocks.append(source[start : source.index("*/", start)])
    return [*blocks, TYPES[: TYPES.index("*/")]]


def _typedefs() -> dict[str, set[str]]:
    """The keys of each object `@typedef` in js/src/types.js's header and the panel modules'
    (`_typedef_blocks`), `MapsMeta & {...}` too."""
    header = "\n".join(_typedef_blocks()).replace("\n *", " ")
    bodies = {name: body for body, name in re.findall(r"@typedef \{(.*?)\} (\w+)", header)}
    keys = {name: set(re.findall(r"(\w+)\??\s*:", body)) for name, body in bodies.items()}
    for name, body in bodies.items():
        if body.startswith("MapsMeta &"):
            keys[name] |= keys["MapsMeta"]
    return keys


@pytest.mark.parametrize(
    "meta",
    [
        _protocol.LayerEntry,
        _protocol.ImageMeta,
        _protocol.ChunkedMeta,
        _protocol.Payload,
        _protocol.MapsMeta,
    ],
    ids=lambda meta: meta.__name__,
)
def test_payload_meta_types_match_the_js_typedefs(meta):
    python_keys = set(meta.__required_keys__ | meta.__optional_keys__)
    assert _typedefs().get(meta.__name__) == python_keys


def _model_typedef() -> dict[str, str]:
    """The `Model` typedef of js/src/types.js: each synced key's declared type."""
    header = TYPES[: TYPES.index("*/")].replace("\n *", " ")
    end = header.index("}} Model")
    body = header[header.rindex("@typedef {{", 0, end) + len("@typedef {{") : end]
    entries, depth, current = [], 0, ""
    for char in body:  # split at the commas outside <...>, (...), {...}, [...]
        depth += char in "<({[" and 1 or char in ">)}]" and -1 or 0
        if char == "," and depth == 0:
            entries.append(current)
            current = ""
        else:
            current += char
    entries.append(current)
    pairs = [entry.split(":", 1) for entry in entries if entry.strip()]
    return {key.strip(): " ".join(value.split()) for key, value in pairs}


def test_the_js_model_type_declares_every_synced_trait_and_each_payload_its_meta():
    declared = _model_typedef()
    assert set(declared) == SYNCED - OWN_TRAITS
    core = {name: meta for name, meta in PAYLOADS.items() if name not in PANEL_TRAITS}
    assert {name for name in declared if "Payload" in declared[name]} == set(core)
    for name, meta in core.items():
        assert declared[name] == f"({meta.__name__} & Payload) | Unset", name
        assert isinstance(FeatureExplorer.class_traits()[name], traitlets.Dict), name
    assert CONTRACT["payloads"] == list(PAYLOADS)
    names = re.search(r"@typedef \{([^}]*)\} PayloadName", TYPES.replace("\n *", " ")).group(1)
    assert re.findall(r'"(\w+)"', names) == list(core)


def test_no_payload_travels_as_bytes_beside_separate_metadata():
    assert not [name for name in SYNCED if name.endswith("_meta")]
    byte_traits = [
        name
        for name, trait in FeatureExplorer.class_traits(sync=True).items()
        if isinstance(trait, traitlets.Bytes) and name not in BASE_TRAITS
    ]
    assert byte_traits == []
    assert "resend" not in JS and "_meta" not in re.sub(r"@typedef.*", "", JS)


def _js_panels() -> list[str]:
    """The panel modules js/src/panels/index.js registers, in order."""
    registry = (PANEL_JS / "index.js").read_text()
    listed = re.search(r"export const PANELS = \[([^\]]*)\]", registry)
    assert listed, "js/src/panels/index.js has no PANELS list"
    imports = dict(re.findall(r'import \{ (\w+) \} from "\./([\w-]+)\.js"', registry))
    return [imports[name.strip()] for name in listed.group(1).split(",") if name.strip()]


def test_every_panel_is_registered_on_both_sides_with_the_same_payload_type():
    assert [panel.name for panel in PANELS] == _js_panels()
    for panel in PANELS:
        source = (PANEL_JS / f"{panel.name}.js").read_text()
        assert re.search(rf'\bname: "{panel.name}"', source), panel.name
        header = source.replace("\n *", " ")
        body = re.search(
            rf"@typedef \{{(MapsMeta & )?\{{(.*?)\}}\}} {panel.meta.__name__}\b", header
        )
        assert body, f"js/src/panels/{panel.name}.js does not type {panel.meta.__name__}"
        js_keys = set(re.findall(r"(\w+)\??\s*:", body.group(2)))
        if body.group(1):  # maps: `MapsMeta` (js/src/types.js) and its keys
            js_keys |= _typedefs()["MapsMeta"]
        assert js_keys == set(panel.meta.__annotations__), panel.name
        assert panel.trait in PAYLOADS
        assert set(panel.export_views()) <= set(EXPORT_VIEWS), panel.name
        views = re.search(r"\bviews: \[([^\]]*)\]", source)
        js_views = re.findall(r'"(\w+)"', views.group(1)) if views else [panel.name]
        assert js_views == list(panel.export_views()), panel.name
        trait = FeatureExplorer.class_traits(sync=True).get(panel.trait)
        assert isinstance(trait, traitlets.Dict), panel.trait
        own = {name for name in panel.traits if name in OWN_TRAITS}
        if own:  # its synced traits: typed in its module, as `<Name>Traits`
            body = re.search(r"@typedef \{\{([^}]*)\}\} \w+Traits\b", header)
            assert body and set(re.findall(r"(\w+)\??\s*:", body.group(1))) == own, panel.name
