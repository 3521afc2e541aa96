// @ts-check
// The dataset examples: the selected channel's top dataset images; a click on one makes it
// the explorer's image.

import { GAP, LABEL_H, bitmapCanvas, fitCanvas, rgbImage, stamp } from "./canvas.js";
import { fmt } from "./numbers.js";
import { pointer } from "./pointer.js";
import { css, sizedPayload } from "./state.js";

/** @import { ExamplesMeta, Unset, ViewState } from "./types.js" */

/**
 * Whether `_examples` is set: `{}` until a dataset is given, and again once it is cleared.
 * @param {ExamplesMeta | Unset | null | undefined} meta
 * @returns {meta is ExamplesMeta}
 */
function hasExamples(meta) {
  return !!meta && typeof meta.layer === "string";
}

/** Columns and the CSS side of a tile of the examples in the side panel.
 * @param {ViewState} state @param {ExamplesMeta} meta */
function examplesLayout(state, meta) {
  const cols = Math.max(1, meta.cols);
  const fit = Math.floor((state.layout.side - GAP * (cols - 1)) / cols);
  return { cols, tile: Math.max(24, Math.min(2 * meta.size, fit)) };
}

/** The selected channel's top dataset images, each labelled with its rank and score; the
 * note instead when there are none (a layer the scan did not cover, a scan under way).
 * @param {ViewState} state */
export function paintExamples(state) {
  const { get, dom } = state;
  const { figure, canvas, caption } = dom.examples;
  const meta = get("_examples");
  figure.hidden = !hasExamples(meta);
  if (!hasExamples(meta)) return;
  const data = meta.n > 0 ? sizedPayload(state, "_examples", meta.n * meta.size * meta.size * 3) : new Uint8Array(0);
  const ready = data.length > 0;
  const { cols, tile } = examplesLayout(state, meta);
  const rows = ready ? Math.ceil(meta.n / cols) : 0;
  const width = cols * (tile + GAP);
  const height = Math.max(1, rows * (tile + LABEL_H + GAP));
  const ctx = fitCanvas(canvas, width, height);
  ctx.clearRect(0, 0, width, height);
  if (!ready) {
    caption.textContent = `Dataset examples: ${meta.note || "…"}`;
    stamp(canvas, `${meta.layer}|${meta.channel}|0`);
    return;
  }
  // the thumbnails are stacked row-major: one RGB image, a column of `n` tiles
  const strip = bitmapCanvas(rgbImage(data, meta.size, meta.n * meta.size));
  ctx.imageSmoothingEnabled = true;
  ctx.font = `11px ${css(state, "--fvz-font", "sans-serif")}`;
  ctx.textBaseline = "bottom";
  ctx.fillStyle = css(state, "--fvz-fg", "#222");
  for (let i = 0; i < meta.n; i++) {
    const x = (i % cols) * (tile + GAP);
    const y = Math.floor(i / cols) * (tile + LABEL_H + GAP) + LABEL_H;
    ctx.drawImage(strip, 0, i * meta.size, meta.size, meta.size, x, y, tile, tile);
    ctx.fillText(`#${i + 1}  ${fmt(meta.scores[i])}`, x, y - 2, tile);
  }
  caption.textContent = `Top ${meta.n} of ${meta.images} dataset images: ${meta.layer}, ch ${meta.channel} (click one to show it)`;
  canvas.dataset.indices = meta.indices.join(",");
  stamp(canvas, `${meta.layer}|${meta.channel}|${meta.n}`);
}

/** The example under the pointer: its rank i and dataset image index.
 * @param {ViewState} state @param {MouseEvent} event */
function examplesHit(state, event) {
  const meta = state.get("_examples");
  if (!hasExamples(meta) || !meta.n) return null;
  const { cols, tile } = examplesLayout(state, meta);
  const rect = state.dom.examples.canvas.getBoundingClientRect();
  const x = event.clientX - rect.left;
  const y = event.clientY - rect.top;
  const col = Math.floor(x / (tile + GAP));
  const row = Math.floor(y / (tile + LABEL_H + GAP));
  const i = row * cols + col;
  const tx = x - col * (tile + GAP);
  const ty = y - row * (tile + LABEL_H + GAP);
  if (col >= cols || i >= meta.n || tx >= tile || ty >= tile + LABEL_H) return null;
  return { i, index: meta.indices[i], meta };
}

/** Examples: hover names the image and its score, a click makes it the explorer's image.
 * @param {ViewState} state */
export function wireExamples(state) {
  const { model, messages, dom } = state;
  pointer(
    state,
    dom.examples.canvas,
    (event) => examplesHit(state, event),
    ({ i, meta }) => `#${i + 1} ${meta.names[i]}: ${fmt(meta.scores[i])} at (${meta.positions[i].join(", ")})`,
    ({ index }) => model.send({ type: messages.example, index }),
  );
}
