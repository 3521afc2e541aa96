// @ts-check
// The registry's panels (panels/index.js) in the view: each gets a figure in the side panel
// and an export canvas, and is painted from its own payload trait, `_<name>`, only.

import { fitCanvas, stamp } from "./canvas.js";
import { sideSize } from "./detail.js";
import { h } from "./dom.js";
import { PANELS } from "./panels/index.js";
import { sizedPayload } from "./state.js";

/** @import { Model, PayloadName, ViewState } from "./types.js" */

/** A figure for each panel, after the side panel's views; its canvas is an export view.
 * @param {ViewState} state */
export function buildPanels(state) {
  const row = h("div", { class: "fvz-pair fvz-wrap fvz-panels" });
  for (const panel of PANELS) {
    const canvas = h("canvas", { class: `fvz-${panel.name}`, "aria-label": panel.label });
    const caption = h("span", { class: "fvz-caption" });
    row.append(h("figure", {}, [h("figcaption", {}, [caption]), canvas]));
    state.panels.push({ panel, canvas, caption });
    state.dom.exportCanvases[panel.name] = canvas;
  }
  state.dom.side.append(row);
}

/** The payload trait of each panel.
 * @returns {PayloadName[]} */
export function panelTraits() {
  return PANELS.map((panel) => /** @type {PayloadName} */ (`_${panel.name}`));
}

/** Paint every panel from its payload (nothing partial: a payload not all here is pulled).
 * @param {ViewState} state */
export function paintPanels(state) {
  const [width, height] = sideSize(state);
  for (const { panel, canvas, caption } of state.panels) {
    const trait = /** @type {PayloadName} */ (`_${panel.name}`);
    const payload = /** @type {object} */ (state.get(/** @type {keyof Model} */ (trait)) || {});
    const data = sizedPayload(state, trait, panel.size(payload));
    const ctx = fitCanvas(canvas, width, height);
    ctx.clearRect(0, 0, width, height);
    const painted = panel.paint({ ctx, width, height, payload, data, picture: state.picture });
    caption.textContent = painted.caption;
    stamp(canvas, painted.stamp);
  }
}
