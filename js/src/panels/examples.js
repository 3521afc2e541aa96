// @ts-check
// The dataset examples: the selected channel's top dataset images, each labelled with its rank
// and score; a click on one makes it the explorer's image. Python scans and cuts them
// (featviz_widgets/widget/panels/examples.py); this painter gets that payload only. Hidden until
// a dataset is given.

import { GAP, LABEL_H, bitmapCanvas, rgbImage } from "../canvas.js";
import { fmt } from "../numbers.js";
import { pointer } from "../pointer.js";

/**
 * @typedef {{ layer: string, channel: number, n: number, size: number, cols: number,
 *   indices: number[], scores: (number|null)[], positions: number[][], names: string[],
 *   images: number, note: string }} ExamplesMeta
 *   `_examples`'s metadata: the selected channel's top dataset images, n RGB thumbnails of
 *   size x size (uint8, row-major); with none (`n` 0), `note` says why.
 */

/** @import { PanelModule } from "../types.js" */

/**
 * Whether `_examples` is set: `{}` until a dataset is given, and again once it is cleared.
 * @param {object} payload @returns {payload is ExamplesMeta}
 */
function hasExamples(payload) {
  return typeof (/** @type {Partial<ExamplesMeta>} */ (payload).layer) === "string";
}

/** Columns and the CSS side of a tile of the examples in `width` px.
 * @param {ExamplesMeta} meta @param {number} width */
function tiles(meta, width) {
  const cols = Math.max(1, meta.cols);
  const fit = Math.floor((width - GAP * (cols - 1)) / cols);
  return { cols, tile: Math.max(24, Math.min(2 * meta.size, fit)) };
}

/** @type {PanelModule} */
export const examples = {
  name: "examples",
  label: "Top dataset images of the selected channel: click one to show it",
  shown: (payload) => hasExamples(payload),
  box: ({ payload, side }) => {
    if (!hasExamples(payload)) return [1, 1];
    const { cols, tile } = tiles(payload, side);
    const rows = payload.n > 0 ? Math.ceil(payload.n / cols) : 0;
    return [cols * (tile + GAP), Math.max(1, rows * (tile + LABEL_H + GAP))];
  },
  size: (payload) => (hasExamples(payload) ? payload.n * payload.size * payload.size * 3 : 0),
  paint({ ctx, side, payload, data, theme, canvas }) {
    const meta = /** @type {ExamplesMeta} */ (payload);
    if (!data.length) return { caption: `Dataset examples: ${meta.note || "…"}`, stamp: `${meta.layer}|${meta.channel}|0` };
    const { cols, tile } = tiles(meta, side);
    // the thumbnails are stacked row-major: one RGB image, a column of `n` tiles
    const strip = bitmapCanvas(rgbImage(data, meta.size, meta.n * meta.size));
    ctx.imageSmoothingEnabled = true;
    ctx.font = `11px ${theme.font}`;
    ctx.textBaseline = "bottom";
    ctx.fillStyle = theme.fg;
    for (let i = 0; i < meta.n; i++) {
      const x = (i % cols) * (tile + GAP);
      const y = Math.floor(i / cols) * (tile + LABEL_H + GAP) + LABEL_H;
      ctx.drawImage(strip, 0, i * meta.size, meta.size, meta.size, x, y, tile, tile);
      ctx.fillText(`#${i + 1}  ${fmt(meta.scores[i])}`, x, y - 2, tile);
    }
    canvas.dataset.indices = meta.indices.join(",");
    const caption = `Top ${meta.n} of ${meta.images} dataset images: ${meta.layer}, ch ${meta.channel} (click one to show it)`;
    return { caption, stamp: `${meta.layer}|${meta.channel}|${meta.n}` };
  },
  // hover names the image and its score, a click sends `messages.example`: show that image
  wire(state, { canvas, payload }) {
    /** @param {MouseEvent} event */
    const hit = (event) => {
      const meta = payload();
      if (!hasExamples(meta) || !meta.n) return null;
      const { cols, tile } = tiles(meta, state.layout.side);
      const rect = canvas.getBoundingClientRect();
      const x = event.clientX - rect.left;
      const y = event.clientY - rect.top;
      const col = Math.floor(x / (tile + GAP));
      const row = Math.floor(y / (tile + LABEL_H + GAP));
      const i = row * cols + col;
      const tx = x - col * (tile + GAP);
      const ty = y - row * (tile + LABEL_H + GAP);
      if (col >= cols || i >= meta.n || tx >= tile || ty >= tile + LABEL_H) return null;
      return { i, index: meta.indices[i], meta };
    };
    pointer(
      state,
      canvas,
      hit,
      ({ i, meta }) => `#${i + 1} ${meta.names[i]}: ${fmt(meta.scores[i])} at (${meta.positions[i].join(", ")})`,
      ({ index }) => state.model.send({ type: state.messages.example, index }),
    );
    return () => {};
  },
};
