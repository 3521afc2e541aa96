// @ts-check
// The grid view: a tile per ranked channel; hover shows a value, a click or the arrow keys
// select a channel (painted at once from its tile until Python's payload for it arrives), a
// double click tells the panels that act on a tile (`tile`).

import { GAP, LABEL_H, bitmapCanvas, fitCanvas, mosaic, stamp } from "../canvas.js";
import { dequantise, fmt, hasMaps } from "../numbers.js";
import { selectChannel } from "../panel-host.js";
import { pointer } from "../pointer.js";
import { css, payload, sizedPayload } from "../state.js";

/**
 * @typedef {MapsMeta & { layer: string, sort_by: string, channels: number[], means: (number|null)[],
 *   cols: number }} GridMeta
 *   `_grid`'s metadata: its bytes are the ranked channels' maps, n uint8 maps of h x w, laid out
 *   `cols` to a row.
 */

/** @import { MapsMeta, PanelModule, Payload, PayloadName, Unset, ViewState } from "../types.js" */

const TRAIT = /** @type {PayloadName} */ ("_grid");

/** Its payload, `_grid` (a panel's trait: not in the core's `Model`).
 * @param {ViewState} state @returns {(GridMeta & Payload) | Unset} */
const gridPayload = (state) => /** @type {(GridMeta & Payload) | Unset} */ (/** @type {(key: string) => unknown} */ (/** @type {unknown} */ (state.get))(TRAIT));

/** The grid mosaic: a tile per ranked channel, its caption, the selected channel outlined.
 * @param {ViewState} state */
export function paintGrid(state) {
  const { get, dom, contract } = state;
  const meta = gridPayload(state);
  const data = hasMaps(meta) ? sizedPayload(state, TRAIT, grid.size(meta)) : new Uint8Array(0);
  const width = state.layout.grid;
  if (!hasMaps(meta) || !data.length) {
    fitCanvas(dom.gridCanvas, width, 40).clearRect(0, 0, width, 40);
    dom.gridCaption.textContent = "";
    return;
  }
  const scale = get("color_scale");
  const shared = scale === contract.shared_scale;
  const cols = meta.cols;
  const rows = Math.ceil(meta.n / cols);
  const tile = Math.max(8, Math.floor((width - GAP * (cols - 1)) / cols));
  const key = `${meta.layer}|${meta.sort_by}|${meta.channels.join(",")}|${shared}|${meta.lo.join(",")}`;
  if (!state.gridCache || state.gridCache.key !== key) {
    state.gridCache = { canvas: bitmapCanvas(mosaic(data, meta, cols, shared)), cols, tile, n: meta.n, key };
  }
  const cache = state.gridCache;
  cache.tile = tile;
  const height = rows * (tile + LABEL_H + GAP);
  const ctx = fitCanvas(dom.gridCanvas, width, height);
  ctx.clearRect(0, 0, width, height);
  const fg = css(state, "--fvz-fg", "#222");
  const accent = css(state, "--fvz-accent", "#e91e63");
  const channel = get("channel");
  ctx.font = `11px ${css(state, "--fvz-font", "sans-serif")}`;
  ctx.textBaseline = "bottom";
  for (let i = 0; i < meta.n; i++) {
    const x = (i % cols) * (tile + GAP);
    const y = Math.floor(i / cols) * (tile + LABEL_H + GAP) + LABEL_H;
    ctx.drawImage(cache.canvas, (i % cols) * meta.w, Math.floor(i / cols) * meta.h, meta.w, meta.h, x, y, tile, tile);
    ctx.fillStyle = fg;
    const label = `ch ${meta.channels[i]}  μ ${fmt(meta.means[i])}`;
    ctx.fillText(label, x, y - 2, tile);
    if (meta.channels[i] === channel) {
      ctx.strokeStyle = accent;
      ctx.lineWidth = 3;
      ctx.strokeRect(x + 1.5, y + 1.5, tile - 3, tile - 3);
    }
  }
  dom.gridCaption.textContent = `${meta.layer}: top ${meta.n} by ${meta.sort_by}, ${meta.h}×${meta.w}, ${scale} scale`;
  dom.gridCanvas.dataset.channels = meta.channels.join(",");
  stamp(dom.gridCanvas, `${meta.layer}|${meta.sort_by}|${meta.n}|${scale}|${channel}|${meta.channels.slice(0, 4).join(",")}`);
}

/** The grid tile and map position under the pointer, with its value.
 * @param {ViewState} state @param {MouseEvent} event */
function gridHit(state, event) {
  const { gridCache } = state;
  const meta = gridPayload(state);
  if (!hasMaps(meta) || !gridCache) return null;
  const rect = state.dom.gridCanvas.getBoundingClientRect();
  const x = event.clientX - rect.left;
  const y = event.clientY - rect.top;
  const tile = gridCache.tile;
  const col = Math.floor(x / (tile + GAP));
  const row = Math.floor(y / (tile + LABEL_H + GAP));
  const tx = x - col * (tile + GAP);
  const ty = y - row * (tile + LABEL_H + GAP) - LABEL_H;
  const i = row * gridCache.cols + col;
  if (col >= gridCache.cols || i >= meta.n || tx < 0 || tx >= tile || ty < 0 || ty >= tile) return null;
  const mx = Math.min(meta.w - 1, Math.floor((tx / tile) * meta.w));
  const my = Math.min(meta.h - 1, Math.floor((ty / tile) * meta.h));
  const q = payload(state, TRAIT)[i * meta.h * meta.w + my * meta.w + mx];
  return { i, channel: meta.channels[i], mx, my, value: dequantise(meta, i, q) };
}

/** The channel view's preview of a channel from its grid tile, when the grid shows it.
 * @param {ViewState} state @param {number} channel */
function previewTile(state, channel) {
  const meta = gridPayload(state);
  const at = meta && meta.channels ? meta.channels.indexOf(channel) : -1;
  if (at < 0) {
    state.preview = null;
    return;
  }
  const size = meta.h * meta.w;
  const data = payload(state, TRAIT).slice(at * size, (at + 1) * size);
  const one = { n: 1, h: meta.h, w: meta.w, lo: [meta.lo[at]], hi: [meta.hi[at]], layer: meta.layer, channel, mean: meta.means[at] };
  state.preview = { channel, meta: one, data };
}

/** Hover shows the value, click / arrows select a channel, a double click tells the panels'
 * `tile`; returns the cleanup.
 * @param {ViewState} state */
function wireGrid(state) {
  const { get, dom } = state;
  pointer(state, dom.gridCanvas, (event) => gridHit(state, event), (hit) => `ch ${hit.channel} (${hit.my}, ${hit.mx}): ${fmt(hit.value)}`, (hit) => selectChannel(state, hit.channel));
  /** @param {KeyboardEvent} event */
  const onKey = (event) => {
    const meta = gridPayload(state);
    const cache = state.gridCache;
    if (!hasMaps(meta) || !cache) return;
    /** @type {Record<string, number>} */
    const steps = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cache.cols, ArrowDown: cache.cols };
    const step = steps[event.key];
    if (step === undefined) return;
    event.preventDefault();
    const at = Math.max(0, meta.channels.indexOf(get("channel")));
    const next = Math.min(meta.n - 1, Math.max(0, at + step));
    selectChannel(state, meta.channels[next]);
  };
  /** @param {MouseEvent} event */
  const onTile = (event) => {
    const hit = gridHit(state, event);
    if (!hit) return;
    if (hit.channel !== get("channel")) selectChannel(state, hit.channel);
    for (const { panel } of state.panels) if (panel.tile) panel.tile(state, hit.channel);
  };
  dom.gridCanvas.addEventListener("keydown", onKey);
  dom.gridCanvas.addEventListener("dblclick", onTile);
  return () => {
    dom.gridCanvas.removeEventListener("keydown", onKey);
    dom.gridCanvas.removeEventListener("dblclick", onTile);
  };
}

/** @type {PanelModule} */
export const grid = {
  name: "grid",
  label: "Feature maps: click or use the arrow keys to select a channel",
  views: ["grid"],
  slot: "main",
  painters: [paintGrid],
  // its payload's change, named too: tests/test_contract.py reads what the view listens to
  listens: ["change:_grid", "change:color_scale", "change:channel"],
  exportCanvas: (state) => state.dom.gridCanvas,
  size: (payload) => {
    const meta = /** @type {Partial<GridMeta>} */ (payload);
    return (meta.n || 0) * (meta.h || 0) * (meta.w || 0);
  },
  select: previewTile,
  wire: (state) => wireGrid(state),
};
