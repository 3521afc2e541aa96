// @ts-check
// The side views of the selected channel: the input image as the model sees it and the channel
// (click a unit to select it: `position`, which the panels that analyse a unit follow).

import { bitmapCanvas, fitCanvas, markerAt, mosaic, stamp } from "../canvas.js";
import { overInput, unitNotes } from "../panel-host.js";
import { dequantise, fmt, hasMaps } from "../numbers.js";
import { sideSize } from "../picture.js";
import { pointer } from "../pointer.js";
import { payload, sizedPayload } from "../state.js";

/**
 * @typedef {MapsMeta & { layer: string, channel: number, mean: number|null }} UnitMeta
 *   `_unit`'s metadata: its bytes are the selected channel's map, one uint8 map of h x w.
 */

/** @import { MapsMeta, PanelModule, Payload, PayloadName, Unset, ViewState } from "../types.js" */

const TRAIT = /** @type {PayloadName} */ ("_unit");

/** Its payload, `_unit` (a panel's trait: not in the core's `Model`).
 * @param {ViewState} state @returns {(UnitMeta & Payload) | Unset} */
const unitPayload = (state) => /** @type {(UnitMeta & Payload) | Unset} */ (/** @type {(key: string) => unknown} */ (/** @type {unknown} */ (state.get))(TRAIT));

/** The selected unit (h, w) on the layer map, or its centre when none was chosen.
 * @param {ViewState} state @returns {number[] | null} */
function unitPosition(state) {
  const pos = state.get("position") || [];
  const meta = unitPayload(state);
  if (pos.length === 2) return pos;
  if (meta && meta.h) return [Math.floor(meta.h / 2), Math.floor(meta.w / 2)];
  return null;
}

/** The input image as the model sees it, with the selected unit marked, under what panels
 * draw over it (the Grad-CAM of the chosen class).
 * @param {ViewState} state */
function paintInput(state) {
  const { get, dom } = state;
  const [w, hgt] = sideSize(state);
  const ctx = fitCanvas(dom.inputCanvas, w, hgt);
  ctx.clearRect(0, 0, w, hgt);
  if (!state.picture) return;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(state.picture, 0, 0, w, hgt);
  const overlay = overInput(state, ctx, w, hgt);
  const meta = unitPayload(state);
  if (meta && meta.h) markerAt(ctx, unitPosition(state), meta.h, meta.w, w, hgt);
  stamp(dom.inputCanvas, `${(get("_image") || {}).name || ""}|${state.pictureToken}|${overlay}`);
}

/** The selected channel (Python's payload, or the grid tile's preview until it comes).
 * @param {ViewState} state */
function paintUnit(state) {
  const { get, dom, preview } = state;
  const [w, hgt] = sideSize(state);
  const ctx = fitCanvas(dom.unitCanvas, w, hgt);
  ctx.clearRect(0, 0, w, hgt);
  /** @type {UnitMeta | Unset} */
  let meta = unitPayload(state);
  const channel = get("channel");
  let source = "python";
  /** @type {Uint8Array} */
  let data;
  if (preview && preview.channel === channel && (!meta || meta.channel !== channel)) {
    ({ meta, data } = preview);
    source = "preview";
  } else {
    data = hasMaps(meta) ? sizedPayload(state, TRAIT, unit.size(meta)) : new Uint8Array(0);
  }
  if (!hasMaps(meta) || data.length < meta.h * meta.w) return;
  ctx.drawImage(bitmapCanvas(mosaic(data, meta, 1, false)), 0, 0, w, hgt);
  markerAt(ctx, state.cursor || unitPosition(state), meta.h, meta.w, w, hgt);
  dom.unitCaption.textContent = `Channel ${meta.channel} (μ ${fmt(meta.mean)}): click a unit`;
  dom.unitNote.textContent = unitNotes(state, meta.channel);
  dom.unitCanvas.dataset.source = source;
  stamp(dom.unitCanvas, `${meta.layer}|${meta.channel}`);
}

/** The unit under the pointer on the channel view, with its value.
 * @param {ViewState} state @param {MouseEvent} event */
function unitHit(state, event) {
  const meta = unitPayload(state);
  if (!hasMaps(meta)) return null;
  const rect = state.dom.unitCanvas.getBoundingClientRect();
  const mx = Math.floor(((event.clientX - rect.left) / rect.width) * meta.w);
  const my = Math.floor(((event.clientY - rect.top) / rect.height) * meta.h);
  if (mx < 0 || my < 0 || mx >= meta.w || my >= meta.h) return null;
  const q = payload(state, TRAIT)[my * meta.w + mx];
  return { pos: [my, mx], value: dequantise(meta, 0, q) };
}

/** Select unit `pos`; the panels hear of it (their unit hook), also when it is the selected
 * one again.
 * @param {ViewState} state @param {number[]} pos */
function selectUnit(state, pos) {
  const current = state.get("position") || [];
  const again = current.length === 2 && current[0] === pos[0] && current[1] === pos[1];
  if (!again) state.save({ position: pos });
  for (const { panel } of state.panels) if (panel.unit) panel.unit(state, pos, again);
}

/** Channel view: hover shows the value, click / Enter selects the unit (the panels that
 * analyse one follow it), arrows move the cursor, which a new `position` drops; returns the
 * cleanup.
 * @param {ViewState} state */
function wireUnit(state) {
  const { get, dom, model } = state;
  pointer(state, dom.unitCanvas, (event) => unitHit(state, event), (hit) => `ch ${get("channel")} (${hit.pos[0]}, ${hit.pos[1]}): ${fmt(hit.value)}`, (hit) => selectUnit(state, hit.pos));
  /** @param {KeyboardEvent} event */
  const onKey = (event) => {
    const meta = unitPayload(state);
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
  };
  const dropCursor = () => (state.cursor = null);
  dom.unitCanvas.addEventListener("keydown", onKey);
  model.on("change:position", dropCursor);
  return () => {
    dom.unitCanvas.removeEventListener("keydown", onKey);
    model.off("change:position", dropCursor);
  };
}

/** @type {PanelModule} */
export const unit = {
  name: "unit",
  label: "Selected channel: click or use arrows and Enter to pick a unit",
  views: ["channel"],
  slot: "detail",
  painters: [paintUnit, paintInput],
  // its payload's change, named too: tests/test_contract.py reads what the view listens to
  listens: ["change:_unit", "change:color_scale", "change:channel", "change:position"],
  exportCanvas: (state) => state.dom.unitCanvas,
  size: (payload) => {
    const meta = /** @type {Partial<UnitMeta>} */ (payload);
    return (meta.h || 0) * (meta.w || 0);
  },
  wire: (state) => wireUnit(state),
};
