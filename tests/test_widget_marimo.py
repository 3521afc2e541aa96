"""Every message the explorer sends under marimo fits marimo's output limit, measured with
marimo's own code: the `open` message as `mo.ui.anywidget` builds it (the widget's full state,
every payload trait with its bytes), and every update and custom message (grouped worker
updates, payload chunks), each serialised as marimo sends it to the page, against
`runtime.output_max_bytes` read from the installed marimo. (marimo applies that limit to a
cell's output; `mo.ui.anywidget`'s output is only the model's id, and the state travels in these
messages, which no limit checks today: keeping them under it as well leaves room for versions
that do, and for the page.)"""

from __future__ import annotations

import pytest
import timm
import torch

from featviz_widgets.widget.explorer import FeatureExplorer
from featviz_widgets.widget.protocol import CHUNK_BYTES, INLINE_PAYLOAD_BYTES, MAX_FEATURE_MAPS

marimo_config = pytest.importorskip("marimo._config.config")


def marimo_size(data: dict, buffers: list) -> int:
    """The bytes marimo sends the page for a comm message `data` with `buffers`."""
    from marimo._messaging.notification import ModelLifecycleNotification
    from marimo._messaging.serde import serialize_kernel_message
    from marimo._plugins.ui._impl.comm import _create_model_message

    message = _create_model_message(data, buffers)
    notification = ModelLifecycleNotification(model_id="0" * 32, message=message)
    return len(serialize_kernel_message(notification))


@pytest.mark.slow
def test_every_message_of_a_large_explorer_fits_marimos_output_limit(monkeypatch):
    from marimo._plugins.ui._impl.anywidget.utils import extract_buffer_paths

    limit = marimo_config.DEFAULT_CONFIG["runtime"]["output_max_bytes"]
    sent: list[tuple[dict, list]] = []
    monkeypatch.setattr(
        FeatureExplorer, "_send", lambda self, msg, buffers=None: sent.append((msg, buffers or []))
    )
    torch.manual_seed(0)
    model = timm.create_model(
        "resnet50", pretrained=False, pretrained_cfg_overlay=dict(input_size=(3, 640, 640))
    )
    explorer = FeatureExplorer(model, layer="layer1", num_features=MAX_FEATURE_MAPS)
    try:
        explorer.wait(180)
        assert explorer.error == ""
        grid = explorer._outbox.data("_grid")
        assert len(grid) == MAX_FEATURE_MAPS * 160 * 160 > CHUNK_BYTES  # two chunks
        state, paths, buffers = extract_buffer_paths(explorer.get_state())  # as marimo does
        opened = marimo_size({"method": "open", "state": state, "buffer_paths": paths}, buffers)
        sizes = [marimo_size(msg, bufs) for msg, bufs in sent]
        kinds = {msg.get("content", {}).get("type", msg["method"]) for msg, _ in sent}
        print(f"marimo limit {limit}: open {opened} B, largest of {len(sizes)} {max(sizes)} B")
        assert "chunk" in kinds and "update" in kinds  # the grid's bytes came in pieces
        assert opened < limit
        assert max(sizes) < limit
        # a layer change: the worker's grouped updates and the new grid's chunks, too
        sent.clear()
        explorer.layer = "layer2"
        explorer.wait(180)
        assert explorer.error == "" and sent
        assert max(marimo_size(msg, bufs) for msg, bufs in sent) < limit
    finally:
        explorer.close()


def test_the_protocol_bounds_keep_every_message_under_marimos_limit():
    """Whatever the payloads: a state update with every payload trait at its inline maximum,
    and a chunk at its maximum, each base64-encoded as marimo sends it (4/3), with 1 MB for
    the rest of the state (the front end's code in `_esm`, class names) under the limit; raw,
    each under `MAX_MESSAGE_BYTES` (Colab's bound)."""
    from featviz_widgets.widget.panels import PAYLOADS
    from featviz_widgets.widget.protocol import MAX_MESSAGE_BYTES

    limit = marimo_config.DEFAULT_CONFIG["runtime"]["output_max_bytes"]
    every_payload = len(PAYLOADS) * INLINE_PAYLOAD_BYTES
    assert every_payload * 4 / 3 + 1_000_000 < limit
    assert limit > CHUNK_BYTES * 4 / 3 + 1_000_000
    assert every_payload + 1_000_000 < MAX_MESSAGE_BYTES
    assert marimo_size({"method": "custom", "content": {}}, [b"\0" * CHUNK_BYTES]) < limit
