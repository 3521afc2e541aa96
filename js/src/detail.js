// @ts-check
// The side views of the selected channel: the input image as the model sees it, the channel
// (click a unit to run occlusion) and the occlusion map with its colour bar.

import { GAP, bitmapCanvas, fitCanvas, hotImage, mosaic, stamp } from "./canvas.js";
import { overInput, unitNotes } from "./panel-host.js";
import { HOT } from "./colours.js";
import { dequantise, fmt, hasMaps } from "./numbers.js";
import { pointer } from "./pointer.js";
import { css, payload, sizedPayload } from "./state.js";

/** @import { UnitMeta, Unset, ViewState } from "./types.js" */

/** The CSS size [w, h] of each side view: half the side panel, the input image's aspect.
 * @param {ViewState} state @returns {[number, number]} */
export function sideSize(state) {
  const meta = state.get("_image") || {};
  const aspect = meta.w && meta.h ? meta.h / meta.w : 1;
  const w = Math.max(80, Math.floor((state.layout.side - GAP * 2) / 2));
  return [w, Math.round(w * aspect)];
}

/** A cross-hair at (cx, cy); its colour is data, not chrome: the same in every theme.
 * @param {CanvasRenderingContext2D} ctx @param {number} cx @param {number} cy @param {number} size */
function drawMarker(ctx, cx, cy, size) {
  ctx.save();
  ctx.strokeStyle = "#00e5ff";
  ctx.lineWidth = 2.5;
  ctx.beginPath();
  ctx.moveTo(cx - size, cy);
  ctx.lineTo(cx + size, cy);
  ctx.moveTo(cx, cy - size);
  ctx.lineTo(cx, cy + size);
  ctx.stroke();
  ctx.restore();
}

/** The selected unit (h, w) on the layer map, or its centre when none was chosen.
 * @param {ViewState} state @returns {number[] | null} */
function unitPosition(state) {
  const pos = state.get("position") || [];
  const meta = state.get("_unit");
  if (pos.length === 2) return pos;
  if (meta && meta.h) return [Math.floor(meta.h / 2), Math.floor(meta.w / 2)];
  return null;
}

/** The marker at unit `pos` of a mapH x mapW map drawn over width x height.
 * @param {CanvasRenderingContext2D} ctx @param {number[] | null} pos
 * @param {number} mapH @param {number} mapW @param {number} width @param {number} height */
function markerAt(ctx, pos, mapH, mapW, width, height) {
  if (!pos) return;
  drawMarker(ctx, ((pos[1] + 0.5) * width) / mapW, ((pos[0] + 0.5) * height) / mapH, Math.max(6, width / 18));
}

/** The input image as the model sees it, with the selected unit marked, under what panels
 * draw over it (the Grad-CAM of the chosen class).
 * @param {ViewState} state */
export function paintInput(state) {
  const { get, dom } = state;
  const [w, hgt] = sideSize(state);
  const ctx = fitCanvas(dom.inputCanvas, w, hgt);
  ctx.clearRect(0, 0, w, hgt);
  if (!state.picture) return;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(state.picture, 0, 0, w, hgt);
  const overlay = overInput(state, ctx, w, hgt);
  const meta = get("_unit");
  if (meta && meta.h) markerAt(ctx, unitPosition(state), meta.h, meta.w, w, hgt);
  stamp(dom.inputCanvas, `${(get("_image") || {}).name || ""}|${state.pictureToken}|${overlay}`);
}

/** The selected channel (Python's payload, or the grid tile's preview until it comes).
 * @param {ViewState} state */
export function paintUnit(state) {
  const { get, dom, preview } = state;
  const [w, hgt] = sideSize(state);
  const ctx = fitCanvas(dom.unitCanvas, w, hgt);
  ctx.clearRect(0, 0, w, hgt);
  /** @type {UnitMeta | Unset} */
  let meta = get("_unit");
  const channel = get("channel");
  let source = "python";
  /** @type {Uint8Array} */
  let data;
  if (preview && preview.channel === channel && (!meta || meta.channel !== channel)) {
    ({ meta, data } = preview);
    source = "preview";
  } else {
    data = hasMaps(meta) ? sizedPayload(state, "_unit", meta.h * meta.w) : new Uint8Array(0);
  }
  if (!hasMaps(meta) || data.length < meta.h * meta.w) return;
  ctx.drawImage(bitmapCanvas(mosaic(data, meta, 1, false)), 0, 0, w, hgt);
  markerAt(ctx, state.cursor || unitPosition(state), meta.h, meta.w, w, hgt);
  dom.unitCaption.textContent = `Channel ${meta.channel} (μ ${fmt(meta.mean)}): click a unit`;
  dom.unitNote.textContent = unitNotes(state, meta.channel);
  dom.unitCanvas.dataset.source = source;
  stamp(dom.unitCanvas, `${meta.layer}|${meta.channel}`);
}

/** The colour bar right of the occlusion map: 1 at the top, 0 at the bottom, in theme text.
 * @param {ViewState} state @param {CanvasRenderingContext2D} ctx
 * @param {number} x @param {number} bar @param {number} hgt */
function paintColourBar(state, ctx, x, bar, hgt) {
  for (let y = 0; y < hgt; y++) {
    const c = Math.round((1 - y / Math.max(1, hgt - 1)) * 255) * 3;
    ctx.fillStyle = `rgb(${HOT[c]},${HOT[c + 1]},${HOT[c + 2]})`;
    ctx.fillRect(x, y, bar, 1);
  }
  ctx.fillStyle = css(state, "--fvz-fg", "#222");
  ctx.font = `10px ${css(state, "--fvz-font", "sans-serif")}`;
  ctx.textBaseline = "top";
  ctx.fillText("1", x + bar + 3, 0);
  ctx.textBaseline = "bottom";
  ctx.fillText("0", x + bar + 3, hgt);
  ctx.save();
  ctx.translate(x + bar + 14, hgt / 2);
  ctx.rotate(Math.PI / 2);
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText("|Δunit| / max", 0, -4);
  ctx.restore();
}

/** The occlusion overlay: the input dimmed, the sensitivity map over it, its colour bar.
 * @param {ViewState} state */
export function paintOcclusion(state) {
  const { get, dom } = state;
  const [w, hgt] = sideSize(state);
  const bar = 14;
  const labels = 34;
  const width = w + GAP + bar + labels;
  const ctx = fitCanvas(dom.occCanvas, width, hgt);
  ctx.clearRect(0, 0, width, hgt);
  const meta = get("_occlusion");
  const data = hasMaps(meta) ? sizedPayload(state, "_occlusion", meta.h * meta.w) : new Uint8Array(0);
  ctx.fillStyle = css(state, "--fvz-panel", "#f3f3f3");
  ctx.fillRect(0, 0, w, hgt);
  if (state.picture) {
    ctx.imageSmoothingEnabled = true;
    ctx.globalAlpha = 0.45;
    ctx.drawImage(state.picture, 0, 0, w, hgt);
    ctx.globalAlpha = 1;
  }
  paintColourBar(state, ctx, w + GAP, bar, hgt);
  if (!hasMaps(meta) || !data.length) {
    dom.occCaption.textContent = "Occlusion: click a unit on the channel view, or Run occlusion";
    stamp(dom.occCanvas, "empty");
    return;
  }
  ctx.globalAlpha = 0.65;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(bitmapCanvas(hotImage(data, meta)), 0, 0, w, hgt);
  ctx.globalAlpha = 1;
  markerAt(ctx, meta.position, meta.map_size[0], meta.map_size[1], w, hgt);
  const done = meta.complete ? "done" : meta.cancelled ? `cancelled at ${meta.done}/${meta.total}` : `${meta.done}/${meta.total}…`;
  dom.occCaption.textContent = `Occlusion: ${meta.layer}, ch ${meta.channel} at (${meta.position.join(", ")}) — ${done}`;
  stamp(dom.occCanvas, `${meta.layer}|${meta.channel}|${meta.position.join(",")}|${meta.done}/${meta.total}`);
}

/** Decode the input image (`_image`, a PNG) and repaint the views drawn over it.
 * @param {ViewState} state */
export async function loadPicture(state) {
  const token = ++state.pictureToken;
  const data = payload(state, "_image");
  if (!data.length) {
    state.picture = null;
    return;
  }
  try {
    const bitmap = await createImageBitmap(new Blob([data.slice()], { type: "image/png" }));
    if (token !== state.pictureToken) return;
    state.picture = bitmap;
  } catch {
    state.picture = null;
  }
  paintInput(state);
  paintOcclusion(state);
}

/** The unit under the pointer on the channel view, with its value.
 * @param {ViewState} state @param {MouseEvent} event */
function unitHit(state, event) {
  const { get } = state;
  const meta = get("_unit");
  if (!hasMaps(meta)) return null;
  const rect = state.dom.unitCanvas.getBoundingClientRect();
  const mx = Math.floor(((event.clientX - rect.left) / rect.width) * meta.w);
  const my = Math.floor(((event.clientY - rect.top) / rect.height) * meta.h);
  if (mx < 0 || my < 0 || mx >= meta.w || my >= meta.h) return null;
  const q = payload(state, "_unit")[my * meta.w + mx];
  return { pos: [my, mx], value: dequantise(meta, 0, q) };
}

/** Select unit `pos` (which starts occlusion in Python); the selected one again: run it again.
 * @param {ViewState} state @param {number[]} pos */
function selectUnit(state, pos) {
  const { model, messages } = state;
  const current = state.get("position") || [];
  if (current.length === 2 && current[0] === pos[0] && current[1] === pos[1]) model.send({ type: messages.occlude });
  else state.save({ position: pos });
}

/** Channel view: hover shows the value, click / Enter selects the unit (runs occlusion),
 * arrows move the cursor.
 * @param {ViewState} state */
export function wireUnitPointer(state) {
  const { get, dom } = state;
  pointer(state, dom.unitCanvas, (event) => unitHit(state, event), (hit) => `ch ${get("channel")} (${hit.pos[0]}, ${hit.pos[1]}): ${fmt(hit.value)}`, (hit) => selectUnit(state, hit.pos));
  dom.unitCanvas.addEventListener("keydown", (event) => {
    const meta = get("_unit");
    if (!hasMaps(meta)) return;
    const at = state.cursor || unitPosition(state);
    if (!at) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      selectUnit(state, at);
      return;
    }
    /** @type {Record<string, number[]>} */
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const [y, x] = at;
    state.cursor = [Math.min(meta.h - 1, Math.max(0, y + move[0])), Math.min(meta.w - 1, Math.max(0, x + move[1]))];
    paintUnit(state);
  });
}
