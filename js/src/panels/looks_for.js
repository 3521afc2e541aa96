// @ts-check
// Looks for: the picture a channel looks for, optimised in Python
// (featviz_widgets/widget/panels/looks_for.py) and painted from that payload; faded when it is
// another channel's than the one selected. It starts from its button, or from a double click on
// a grid tile (which selects that channel first); its menu sets the steps.

import { bitmapCanvas, rgbImage } from "../canvas.js";
import { h } from "../dom.js";

/**
 * @typedef {{ h: number, w: number, layer: string, channel: number, step: number, steps: number,
 *   complete: boolean, cancelled: boolean, objective: number|null, device: string,
 *   note: string }} LooksForMeta
 *   `_looks_for`'s metadata: its bytes are the picture, uint8 RGB, h x w x 3, row-major.
 * @typedef {{ looks_for_steps: number | null }} LooksForTraits its own synced traits
 * @typedef {{ steps: number[] }} LooksForContract `_contract.panels.looks_for`
 */

/** @import { PanelModule, ViewState } from "../types.js" */

/** Its own traits (`LooksForTraits`, not in the core's `Model`).
 * @param {ViewState} state */
const ownTraits = (state) => /** @type {(key: keyof LooksForTraits) => unknown} */ (state.get);

/** @type {PanelModule} */
export const looks_for = {
  name: "looks_for",
  label: "What the selected channel looks for: a picture optimised to excite it",
  listens: ["change:channel", "change:layer", "change:looks_for_steps"],
  size: (payload) => {
    const meta = /** @type {Partial<LooksForMeta>} */ (payload);
    return (meta.h || 0) * (meta.w || 0) * 3;
  },
  controls(state) {
    const { steps } = /** @type {LooksForContract} */ (state.contract.panels.looks_for);
    const title = "What does the selected channel look for? Optimises a picture that excites it (or double-click a tile)";
    const menuTitle = "Steps of Looks for: more give a cleaner picture and take longer (auto: 512 on a GPU, a 128-step preview on a CPU)";
    return {
      button: h("button", { type: "button", class: "fvz-looks", text: "Looks for", title }),
      steps: h("select", { class: "fvz-looks-steps", "aria-label": "Looks for: optimization steps", title: menuTitle },
        [h("option", { value: "", text: "auto steps" }), ...steps.map((n) => h("option", { value: String(n), text: `${n} steps` }))]),
    };
  },
  // the steps menu shows `looks_for_steps`; a value it does not offer gets one extra option
  sync(state, { controls }) {
    const menu = /** @type {HTMLSelectElement} */ (controls.steps);
    const get = ownTraits(state);
    const steps = get("looks_for_steps");
    const value = steps == null ? "" : String(steps);
    if (![...menu.options].some((o) => o.value === value)) {
      const extra = /** @type {HTMLOptionElement | null} */ (menu.querySelector("option[data-extra]")) ?? menu.appendChild(h("option", { "data-extra": "1" }));
      extra.value = value;
      extra.textContent = `${value} steps`;
    }
    menu.value = value;
  },
  paint({ ctx, width, height, payload, data, get, theme }) {
    const meta = /** @type {Partial<LooksForMeta>} */ (payload);
    ctx.fillStyle = theme.panel;
    ctx.fillRect(0, 0, width, height);
    if (!meta.h || !meta.w || !data.length) return { caption: "Looks for: press Looks for, or double-click a tile", stamp: "empty" };
    const current = meta.channel === get("channel") && meta.layer === get("layer");
    const side = Math.min(width, height);
    ctx.imageSmoothingEnabled = true;
    ctx.globalAlpha = current ? 1 : 0.35;
    ctx.drawImage(bitmapCanvas(rgbImage(data, meta.w, meta.h)), (width - side) / 2, (height - side) / 2, side, side);
    ctx.globalAlpha = 1;
    const done = meta.complete ? `${meta.steps} steps` : meta.cancelled ? `cancelled at ${meta.step}/${meta.steps}` : `step ${meta.step}/${meta.steps}…`;
    // A complete run whose picture was still improving says so (its tooltip tells why).
    const rising = meta.complete && meta.note ? " · still rising" : "";
    const state = meta.complete ? "done" : meta.cancelled ? "cancelled" : "running";
    return { caption: `ch ${meta.channel} looks for (${done}${rising})`, title: meta.complete ? meta.note : "", stamp: `${meta.layer}|${meta.channel}|${meta.step}/${meta.steps}|${state}` };
  },
  // a tile double-clicked on the grid (its channel selected already)
  tile(state, channel) {
    state.model.send({ type: state.messages.looks_for, channel });
  },
  wire(state, { controls }) {
    const { model, messages } = state;
    const button = /** @type {HTMLButtonElement} */ (controls.button);
    const menu = /** @type {HTMLSelectElement} */ (controls.steps);
    const ask = () => model.send({ type: messages.looks_for, channel: state.get("channel") });
    const steps = () => state.save(/** @type {object} */ ({ looks_for_steps: menu.value ? Number(menu.value) : null }));
    button.addEventListener("click", ask);
    menu.addEventListener("change", steps);
    return () => {
      button.removeEventListener("click", ask);
      menu.removeEventListener("change", steps);
    };
  },
};
