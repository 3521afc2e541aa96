// @ts-check
// Canvas helpers: uint8 maps and RGB bytes as ImageData, crisp canvases at CSS size, and the
// paint stamps the tests read, the unit marker. LABEL_H and GAP are the tile layout every view
// shares.

import { HOT, JET, VIRIDIS } from "./colours.js";
import { dequantise } from "./numbers.js";

/** @import { MapsMeta } from "./types.js" */

export const LABEL_H = 15;
export const GAP = 4;

/**
 * Paint N uint8 maps into one RGBA ImageData (a cols x rows mosaic at native resolution).
 * @param {Uint8Array} data @param {MapsMeta} meta @param {number} cols
 * @param {boolean} shared one colour range for every tile
 */
export function mosaic(data, meta, cols, shared) {
  const { n, h, w, lo, hi } = meta;
  const rows = Math.ceil(n / cols);
  const image = new ImageData(Math.max(1, cols * w), Math.max(1, rows * h));
  const out = image.data;
  let gmin = Infinity;
  let gmax = -Infinity;
  for (let i = 0; i < n; i++) {
    gmin = Math.min(gmin, lo[i] ?? 0);
    gmax = Math.max(gmax, hi[i] ?? 0);
  }
  const lut = new Uint8Array(256);
  for (let i = 0; i < n; i++) {
    for (let q = 0; q < 256; q++) {
      if (!shared) lut[q] = q;
      else if (gmax > gmin) lut[q] = Math.round(((dequantise(meta, i, q) - gmin) / (gmax - gmin)) * 255);
      else lut[q] = 0;
    }
    const ox = (i % cols) * w;
    const oy = Math.floor(i / cols) * h;
    const base = i * h * w;
    for (let y = 0; y < h; y++) {
      let o = ((oy + y) * cols * w + ox) * 4;
      let s = base + y * w;
      for (let x = 0; x < w; x++, o += 4, s++) {
        const c = lut[data[s]] * 3;
        out[o] = VIRIDIS[c];
        out[o + 1] = VIRIDIS[c + 1];
        out[o + 2] = VIRIDIS[c + 2];
        out[o + 3] = 255;
      }
    }
  }
  return image;
}

/**
 * One uint8 map as "hot" RGBA, its values clipped to [0, 1] (a sensitivity map).
 * @param {Uint8Array} data @param {MapsMeta} meta
 */
export function hotImage(data, meta) {
  const image = new ImageData(meta.w, meta.h);
  for (let i = 0, o = 0; i < meta.w * meta.h; i++, o += 4) {
    const v = Math.min(1, Math.max(0, dequantise(meta, 0, data[i])));
    const c = Math.round(v * 255) * 3;
    image.data[o] = HOT[c];
    image.data[o + 1] = HOT[c + 1];
    image.data[o + 2] = HOT[c + 2];
    image.data[o + 3] = 255;
  }
  return image;
}

/**
 * One uint8 map as opaque "jet" RGBA over its own range (the Grad-CAM: 0 blue, its max red).
 * @param {Uint8Array} data @param {MapsMeta} meta
 */
export function jetImage(data, meta) {
  const image = new ImageData(meta.w, meta.h);
  for (let i = 0, o = 0; i < meta.w * meta.h; i++, o += 4) {
    const c = data[i] * 3;
    image.data[o] = JET[c];
    image.data[o + 1] = JET[c + 1];
    image.data[o + 2] = JET[c + 2];
    image.data[o + 3] = 255;
  }
  return image;
}

/**
 * uint8 RGB bytes (h x w x 3, row-major) as opaque RGBA: a picture (the panels' colours, thumbnails, optimised pictures).
 * @param {Uint8Array} data @param {number} w @param {number} hgt
 */
export function rgbImage(data, w, hgt) {
  const image = new ImageData(w, hgt);
  for (let i = 0, s = 0, o = 0; i < w * hgt; i++, s += 3, o += 4) {
    image.data[o] = data[s];
    image.data[o + 1] = data[s + 1];
    image.data[o + 2] = data[s + 2];
    image.data[o + 3] = 255;
  }
  return image;
}

/**
 * The 2-D context of `canvas` (every canvas here has one).
 * @param {HTMLCanvasElement} canvas
 */
function context2d(canvas) {
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("featviz_widgets: this browser gives no 2-D canvas context");
  return ctx;
}

/**
 * An off-screen canvas holding `image`, to be scaled with drawImage.
 * @param {ImageData} image
 */
export function bitmapCanvas(image) {
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  context2d(canvas).putImageData(image, 0, 0);
  return canvas;
}

/**
 * Make `canvas` draw crisply at its CSS size; returns its 2-D context scaled to CSS px.
 * @param {HTMLCanvasElement} canvas @param {number} cssWidth @param {number} cssHeight
 */
export function fitCanvas(canvas, cssWidth, cssHeight) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(cssWidth * ratio));
  const height = Math.max(1, Math.round(cssHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  const ctx = context2d(canvas);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.imageSmoothingEnabled = false;
  return ctx;
}

/**
 * Bump a canvas's paint counter and stamp the time (read by the tests and the benchmark).
 * @param {HTMLCanvasElement} canvas @param {string} state
 */
export function stamp(canvas, state) {
  canvas.dataset.paints = String(Number(canvas.dataset.paints || 0) + 1);
  canvas.dataset.paintedAt = String(performance.now());
  canvas.dataset.state = state;
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

/** The marker at unit `pos` of a mapH x mapW map drawn over width x height.
 * @param {CanvasRenderingContext2D} ctx @param {number[] | null} pos
 * @param {number} mapH @param {number} mapW @param {number} width @param {number} height */
export function markerAt(ctx, pos, mapH, mapW, width, height) {
  if (!pos) return;
  drawMarker(ctx, ((pos[1] + 0.5) * width) / mapW, ((pos[0] + 0.5) * height) / mapH, Math.max(6, width / 18));
}
