"""Run js/widget.js alone in Chromium against a stand-in model holding a real explorer's state."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

from featviz_widgets.widget.explorer import FeatureExplorer, _asset

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style id="css"></style></head>
<body><div id="host" style="width: 1000px"></div></body></html>"""

BOOT = """async ([source, css, state, kernel]) => {
  document.getElementById("css").textContent = css;
  // bytes, at any depth, as the host hands them over: DataViews
  const revive = (value) => {
    if (!value || typeof value !== "object") return value;
    if (value.__b64__ !== undefined) {
      const bytes = Uint8Array.from(atob(value.__b64__), (c) => c.charCodeAt(0));
      return new DataView(bytes.buffer);
    }
    for (const key of Object.keys(value)) value[key] = revive(value[key]);
    return value;
  };
  revive(state);
  const handlers = {};
  window.sets = [];
  window.sent = [];
  const { messages, pushes } = state._contract;
  window.model = {
    get: (key) => state[key],
    set: (key, value) => {
      state[key] = value;
      window.sets.push([key, value]);
      for (const f of handlers["change:" + key] || []) f();
    },
    save_changes() {},
    send(message, callbacks, buffers) {
      window.sent.push([message, (buffers || []).map((b) => b.byteLength)]);
      // a kernel answers a pull (its state is what the view has already)
      if (kernel && message.type === messages.pull) {
        setTimeout(() => window.model.emit("msg:custom", { type: pushes.pulled, names: [] }), 0);
      }
    },
    on(event, f) { (handlers[event] ||= []).push(f); },
    emit(event, ...args) { for (const f of handlers[event] || []) f(...args); },
    off(event, f) { handlers[event] = (handlers[event] || []).filter((g) => g !== f); },
  };
  window.listenerCount = () => Object.values(handlers).reduce((n, list) => n + list.length, 0);
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const widget = (await import(url)).default;
  window.widget = widget;  // a test may render it again elsewhere
  const el = document.getElementById("host");
  window.cleanup = await widget.render({ model: window.model, el });
  window.renderSent = window.sent.splice(0);  // the pull on render: tested on its own
}"""


def synced_state(explorer: FeatureExplorer) -> dict:
    """The explorer's synced traits as JSON (bytes as {"__b64__": ...}); closes the explorer."""
    raw = explorer.get_state()
    explorer.close()
    skip = {"_esm", "_css", "layout", "tabbable", "tooltip"}
    out = {
        key: value
        for key, value in raw.items()
        if key not in skip and not key.startswith(("_model", "_view", "_dom", "_anywidget"))
    }
    return json.loads(json.dumps(out, default=_b64))


def _b64(value: object) -> dict:
    """Bytes, at any depth of the state, as {"__b64__": ...} (BOOT makes them DataViews)."""
    if isinstance(value, (bytes, memoryview)):
        return {"__b64__": base64.b64encode(bytes(value)).decode()}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def open_view(
    browser, state: dict, ready: str, height: int = 1300, kernel: bool = True
) -> Iterator:
    """A page running the widget on `state`, once `ready` (a selector) is painted; asserts on
    leaving that the page raised no error. With `kernel`, the stand-in answers the view's
    pulls; without, nothing does (a saved page)."""
    context = browser.new_context(viewport={"width": 1100, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_content(PAGE)
    assets = [_asset("widget.js").read_text(), _asset("widget.css").read_text()]
    page.evaluate(BOOT, [*assets, state, kernel])
    page.wait_for_selector(ready, state="attached")
    yield page
    assert errors == []
    context.close()
