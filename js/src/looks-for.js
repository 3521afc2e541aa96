// @ts-check
// Looks for: the picture a channel looks for, optimised in Python, beside the occlusion map.

import { bitmapCanvas, fitCanvas, rgbImage, stamp } from "./canvas.js";
import { sideSize } from "./detail.js";
import { gridHit, selectChannel } from "./grid.js";
import { css, sizedPayload } from "./state.js";

/** @import { ViewState } from "./types.js" */

/** The picture the channel looks for (a partial one while it refines), beside the occlusion
 * map; faded when it is another channel's than the one selected.
 * @param {ViewState} state */
export function paintLooksFor(state) {
  const { get, dom } = state;
  const [w] = sideSize(state);
  // beside the occlusion map (w + its colour bar and labels, 52 px) when the row has room
  const pair = dom.looksCanvas.closest(".fvz-pair");
  const room = (pair && pair.clientWidth) || state.layout.side;
  const size = Math.max(80, Math.min(w, room - w - 52 - 10));
  const ctx = fitCanvas(dom.looksCanvas, size, size);
  const figure = dom.looksCanvas.parentElement;
  if (figure) figure.style.width = `${size}px`; // its caption wraps: no wider than the picture
  ctx.clearRect(0, 0, size, size);
  ctx.fillStyle = css(state, "--fvz-panel", "#f3f3f3");
  ctx.fillRect(0, 0, size, size);
  const meta = get("_looks_for");
  const data = meta && meta.h ? sizedPayload(state, "_looks_for", meta.h * meta.w * 3) : new Uint8Array(0);
  if (!meta || !meta.h || !data.length) {
    dom.looksCaption.textContent = "Looks for: press Looks for, or double-click a tile";
    stamp(dom.looksCanvas, "empty");
    return;
  }
  const current = meta.channel === get("channel") && meta.layer === get("layer");
  ctx.imageSmoothingEnabled = true;
  ctx.globalAlpha = current ? 1 : 0.35;
  ctx.drawImage(bitmapCanvas(rgbImage(data, meta.w, meta.h)), 0, 0, size, size);
  ctx.globalAlpha = 1;
  const done = meta.complete ? `${meta.steps} steps` : meta.cancelled ? `cancelled at ${meta.step}/${meta.steps}` : `step ${meta.step}/${meta.steps}…`;
  // A complete run whose picture was still improving says so; the tooltip tells why.
  const rising = meta.complete && meta.note ? " · still rising" : "";
  dom.looksCaption.textContent = `ch ${meta.channel} looks for (${done}${rising})`;
  dom.looksCaption.title = meta.complete ? meta.note : "";
  stamp(dom.looksCanvas, `${meta.layer}|${meta.channel}|${meta.step}/${meta.steps}|${meta.complete ? "done" : meta.cancelled ? "cancelled" : "running"}`);
}

/** "Looks for" starts from its button, or from a double click on a grid tile (which selects
 * that channel first); Python optimises the picture in the background.
 * @param {ViewState} state */
export function wireLooksFor(state) {
  const { model, messages, dom } = state;
  dom.looksButton.addEventListener("click", () => model.send({ type: messages.looks_for, channel: state.get("channel") }));
  dom.looksSteps.addEventListener("change", () => state.save({ looks_for_steps: dom.looksSteps.value ? Number(dom.looksSteps.value) : null }));
  dom.gridCanvas.addEventListener("dblclick", (event) => {
    const hit = gridHit(state, event);
    if (!hit) return;
    if (hit.channel !== state.get("channel")) selectChannel(state, hit.channel);
    model.send({ type: messages.looks_for, channel: hit.channel });
  });
}
