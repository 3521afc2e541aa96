// @ts-check
// The model comparison: with several models, every model's mean activation and sparsity
// against relative depth, one line per model on each of two charts, the layer shown of the
// model shown ringed; across the view under the statistics. Python profiles the models
// (featviz_widgets/widget/panels/comparison.py); this painter gets that payload, metadata
// only, and the traits it lists.

import { fmt } from "../numbers.js";

/**
 * @typedef {{ models: string[], rows: LayerProfile[], image: string, done: number,
 *   total: number, note: string }} ComparisonMeta
 *   `_comparison`'s metadata: the models' profiles on the image shown, `done` of `total`.
 * @typedef {{ model: string, layer: string, depth: number, mean: number|null,
 *   sparsity: number|null, channels: number, height: number, width: number }} LayerProfile
 */

/** @import { PanelModule, Theme } from "../types.js" */

// Line colours are data, not chrome (matplotlib's tab10): they do not change with the theme.
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/** @param {number} i */
export function modelColour(i) {
  return PALETTE[i % PALETTE.length];
}

/** @type {PanelModule} */
export const comparison = {
  name: "comparison",
  views: ["models"],
  slot: "below",
  title: "Compare models",
  label: "Model comparison: mean activation and sparsity against relative depth, one line per model",
  listens: ["change:_model_names", "change:model_name", "change:layer"],
  shown: (_payload, get) => (get("_model_names") || []).length > 1,
  box: ({ width }) => [Math.max(320, Math.min(900, width - 8)), HEIGHT],
  size: () => 0,
  paint({ ctx, width, payload, get, theme, canvas }) {
    const meta = /** @type {Partial<ComparisonMeta>} */ (payload);
    const comparison = meta.models ? /** @type {ComparisonMeta} */ (meta) : null;
    const state = paintChart(ctx, canvas, comparison, width, get("model_name"), get("layer"), theme);
    const busy = comparison && comparison.done < comparison.total ? ` · ${comparison.done}/${comparison.total} models` : "";
    const caption = comparison ? `on ${comparison.image || "the image"}${busy}${comparison.note ? ` · ${comparison.note}` : ""}` : "";
    return { caption, stamp: state };
  },
};

const HEIGHT = 230;

/**
 * Paint `meta` at `width` CSS px, the point of `layer` of `current` ringed; sets the canvas's
 * `data-lines` (the lines drawn) and `data-models` (their names), and returns its state,
 * `models|done/total|model|layer`.
 * @param {CanvasRenderingContext2D} ctx @param {HTMLCanvasElement} canvas
 * @param {ComparisonMeta | null} meta @param {number} width
 * @param {string} current @param {string} layer @param {Theme} theme
 */
function paintChart(ctx, canvas, meta, width, current, layer, theme) {
  const height = HEIGHT;
  ctx.imageSmoothingEnabled = true;
  ctx.font = `11px ${theme.font}`;
  ctx.fillStyle = theme.fg;
  const rows = meta ? meta.rows : [];
  const names = meta ? meta.models.filter((name) => rows.some((row) => row.model === name)) : [];
  canvas.dataset.lines = String(names.length);
  canvas.dataset.models = names.join(",");
  if (!meta || !names.length) {
    ctx.fillText(meta && meta.note ? meta.note : "no comparison yet", 8, 20);
    return "models|empty";
  }
  const panelW = (width - 24) / 2;
  /** @type {[keyof LayerProfile, string][]} */
  const panels = [["mean", "Mean activation"], ["sparsity", "Sparsity (fraction of 0s)"]];
  panels.forEach(([key, title], p) => {
    const left = 8 + p * (panelW + 8);
    const box = { x: left + 42, y: 22, w: panelW - 50, h: height - 78 };
    const values = rows.map((row) => Number(row[key])).filter(Number.isFinite);
    let lo = key === "sparsity" ? 0 : Math.min(...values);
    let hi = key === "sparsity" ? 1 : Math.max(...values);
    if (!(hi > lo)) [lo, hi] = [lo - 1, hi + 1];
    /** @param {number} depth @param {number} value @returns {[number, number]} */
    const at = (depth, value) => [box.x + depth * box.w, box.y + box.h - ((value - lo) / (hi - lo)) * box.h];
    axes(ctx, box, title, lo, hi, theme);
    names.forEach((name, i) => {
      const points = rows.filter((row) => row.model === name && Number.isFinite(Number(row[key])));
      ctx.strokeStyle = ctx.fillStyle = modelColour(meta.models.indexOf(name));
      ctx.lineWidth = name === current ? 2.5 : 1.5;
      ctx.beginPath();
      points.forEach((row, j) => (j ? ctx.lineTo : ctx.moveTo).apply(ctx, at(row.depth, Number(row[key]))));
      ctx.stroke();
      for (const row of points) {
        const [x, y] = at(row.depth, Number(row[key]));
        ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
        if (name === current && row.layer === layer) {
          ctx.strokeStyle = theme.fg;
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.arc(x, y, 6, 0, 2 * Math.PI);
          ctx.stroke();
        }
      }
      if (p === 0) legend(ctx, 8 + i * Math.max(110, width / names.length), height - 12, name, modelColour(meta.models.indexOf(name)), name === current, theme);
    });
  });
  return `models|${meta.done}/${meta.total}|${current}|${layer}`;
}

/**
 * A panel's frame, title, value range and depth axis.
 * @param {CanvasRenderingContext2D} ctx @param {{ x: number, y: number, w: number, h: number }} box
 * @param {string} title @param {number} lo @param {number} hi @param {{ fg: string, grid: string }} theme
 */
function axes(ctx, box, title, lo, hi, theme) {
  ctx.strokeStyle = theme.grid;
  ctx.lineWidth = 1;
  ctx.strokeRect(box.x, box.y, box.w, box.h);
  ctx.fillStyle = theme.fg;
  ctx.fillText(title, box.x, box.y - 8);
  ctx.textAlign = "right";
  ctx.fillText(fmt(hi), box.x - 4, box.y + 8);
  ctx.fillText(fmt(lo), box.x - 4, box.y + box.h);
  ctx.textAlign = "center";
  ctx.fillText("0", box.x, box.y + box.h + 13);
  ctx.fillText("relative depth", box.x + box.w / 2, box.y + box.h + 13);
  ctx.fillText("1", box.x + box.w, box.y + box.h + 13);
  ctx.textAlign = "left";
}

/**
 * One legend entry: the model's colour and name (bold for the model shown).
 * @param {CanvasRenderingContext2D} ctx @param {number} x @param {number} y @param {string} name
 * @param {string} colour @param {boolean} current @param {{ fg: string, font: string }} theme
 */
function legend(ctx, x, y, name, colour, current, theme) {
  ctx.fillStyle = colour;
  ctx.fillRect(x, y - 8, 14, 4);
  ctx.fillStyle = theme.fg;
  ctx.font = `${current ? "bold " : ""}11px ${theme.font}`;
  ctx.fillText(name, x + 18, y - 3);
  ctx.font = `11px ${theme.font}`;
}
