// @ts-check
// Occlusion: which parts of the input the selected unit depends on. Python sweeps
// (featviz_widgets/widget/panels/occlusion.py) and streams the map; this painter draws it over
// the dimmed input, the unit marked, with its colour bar. A unit chosen on the channel view
// runs it (Python follows `position`); choosing the selected one again, or "Run occlusion",
// runs it again.

import { GAP, bitmapCanvas, hotImage, markerAt } from "../canvas.js";
import { HOT } from "../colours.js";
import { h } from "../dom.js";

/**
 * @typedef {{ n: number, h: number, w: number, lo: number[], hi: number[], layer: string,
 *   channel: number, position: number[], map_size: number[], done: number, total: number,
 *   complete: boolean, cancelled: boolean }} OcclusionMeta
 *   `_occlusion`'s metadata: its bytes are the (partial) sensitivity map of the channel at
 *   `position`, one uint8 map of h x w (`MapsMeta`); `done` of `total` placements in.
 */

/** @import { PanelModule, Theme } from "../types.js" */

const BAR = 14; // the colour bar's width
const LABELS = 34; // its labels'

/** The colour bar right of the map: 1 at the top, 0 at the bottom, in theme text.
 * @param {CanvasRenderingContext2D} ctx @param {Theme} theme
 * @param {number} x @param {number} hgt */
function paintColourBar(ctx, theme, x, hgt) {
  for (let y = 0; y < hgt; y++) {
    const c = Math.round((1 - y / Math.max(1, hgt - 1)) * 255) * 3;
    ctx.fillStyle = `rgb(${HOT[c]},${HOT[c + 1]},${HOT[c + 2]})`;
    ctx.fillRect(x, y, BAR, 1);
  }
  ctx.fillStyle = theme.fg;
  ctx.font = `10px ${theme.font}`;
  ctx.textBaseline = "top";
  ctx.fillText("1", x + BAR + 3, 0);
  ctx.textBaseline = "bottom";
  ctx.fillText("0", x + BAR + 3, hgt);
  ctx.save();
  ctx.translate(x + BAR + 14, hgt / 2);
  ctx.rotate(Math.PI / 2);
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText("|Δunit| / max", 0, -4);
  ctx.restore();
}

/** @type {PanelModule} */
export const occlusion = {
  name: "occlusion",
  label: "Occlusion sensitivity map",
  // the side panel's picture, and its colour bar beside it
  box: ({ fit }) => [fit[0] + GAP + BAR + LABELS, fit[1]],
  size: (payload) => {
    const meta = /** @type {Partial<OcclusionMeta>} */ (payload);
    return meta.n ? (meta.h || 0) * (meta.w || 0) : 0;
  },
  paint({ ctx, width, height, payload, data, picture, theme }) {
    const meta = /** @type {Partial<OcclusionMeta>} */ (payload);
    const w = width - GAP - BAR - LABELS;
    ctx.fillStyle = theme.panel;
    ctx.fillRect(0, 0, w, height);
    if (picture) {
      ctx.imageSmoothingEnabled = true;
      ctx.globalAlpha = 0.45;
      ctx.drawImage(picture, 0, 0, w, height);
      ctx.globalAlpha = 1;
    }
    paintColourBar(ctx, theme, w + GAP, height);
    if (!meta.n || !meta.h || !meta.w || !meta.lo || !meta.hi || !meta.position || !meta.map_size || !data.length) {
      return { caption: "Occlusion: click a unit on the channel view, or Run occlusion", stamp: "empty" };
    }
    ctx.globalAlpha = 0.65;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(bitmapCanvas(hotImage(data, { n: meta.n, h: meta.h, w: meta.w, lo: meta.lo, hi: meta.hi })), 0, 0, w, height);
    ctx.globalAlpha = 1;
    markerAt(ctx, meta.position, meta.map_size[0], meta.map_size[1], w, height);
    const done = meta.complete ? "done" : meta.cancelled ? `cancelled at ${meta.done}/${meta.total}` : `${meta.done}/${meta.total}…`;
    return {
      caption: `Occlusion: ${meta.layer}, ch ${meta.channel} at (${meta.position.join(", ")}) — ${done}`,
      stamp: `${meta.layer}|${meta.channel}|${meta.position.join(",")}|${meta.done}/${meta.total}`,
    };
  },
  controls: () => ({ run: h("button", { type: "button", class: "fvz-occlude", text: "Run occlusion" }) }),
  // the unit selected chosen again: `position` does not change, so it asks Python to run again
  unit(state, _unit, again) {
    if (again) state.model.send({ type: state.messages.occlude });
  },
  wire(state, { controls }) {
    const run = () => state.model.send({ type: state.messages.occlude });
    controls.run.addEventListener("click", run);
    return () => controls.run.removeEventListener("click", run);
  },
};
