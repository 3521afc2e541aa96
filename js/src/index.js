// @ts-check
// featviz_widgets front end: ES modules in js/src, no runtime dependency. esbuild bundles them
// into one module, featviz_widgets/static/widget.js (`npm run build` in js/), the file anywidget
// loads; `tsc -p js` type-checks every module here (JSDoc types, `@ts-check`).
//
// Python owns the state (traits); this view only renders it and writes back what the person
// chose. Feature maps arrive as uint8 tiles with a [lo, hi] range per tile (see
// featviz_widgets/widget/payload.py) and are painted on <canvas>; UI-only state (filter text, hover,
// cursor) never leaves the browser.
//
// Modules: types (the JSDoc typedefs); helpers colours, numbers, canvas, dom; state (view state
// and its DOM); picture (the input image's decode, the side views' size); stats and models (the
// model menu), with sync (controls <- model) and controls (controls -> model); panels/ (one
// module per panel of the registry: the grid, the unit (input and channel views), then the
// side and bottom panels; built, listened to, painted and wired by panel-host); pointer (hover
// and click on a canvas); repaint (coalesced repaints, size and theme); pull (asking Python for
// the current state); transport (payload chunks, custom messages, model events, upload,
// export); and this entry, whose `render` wires them.

import { wireControls } from "./controls.js";
import { wireModels } from "./models.js";
import { measure, paintAll, schedule, watchSize, watchTheme } from "./repaint.js";
import { buildDom, createState } from "./state.js";
import { paintStats } from "./stats.js";
import { syncChannels, syncLayers, syncSimple, syncStatus } from "./sync.js";
import { buildPanels, showPicture, wirePanels } from "./panel-host.js";
import { pull } from "./pull.js";
import { modelListeners } from "./transport.js";
import { wireSnapshot } from "./snapshot.js";

/** @import { AnyModel } from "./types.js" */

/** @param {{ model: AnyModel, el: HTMLElement }} ctx */
function render({ model, el }) {
  const state = createState(model, buildDom(model.get("_contract")));
  el.append(state.dom.root);
  buildPanels(state);
  const listeners = modelListeners(state);
  for (const [event, callback] of Object.entries(listeners)) model.on(event, callback);
  wireControls(state);
  wireSnapshot(state);
  const stops = [watchSize(state), watchTheme(state), wireModels(state), wirePanels(state)];
  state.onSnapshot = () => schedule(state, syncStatus);

  measure(state);
  syncLayers(state);
  syncChannels(state);
  syncSimple(state);
  syncStatus(state);
  paintStats(state);
  paintAll(state);
  showPicture(state);
  pull(state); // what it painted may be old or partial: a late view, a reload, another host

  return () => {
    state.closed = true;
    clearTimeout(state.pulling);
    for (const stop of stops) stop();
    clearTimeout(state.timers.num);
    clearTimeout(state.timers.channels);
    for (const [event, callback] of Object.entries(listeners)) model.off(event, callback);
    state.dom.root.remove();
  };
}

export default { render };
