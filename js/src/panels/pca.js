// @ts-check
// The layer as colour: the first three principal components of the layer's activations over
// its positions as red, green and blue, over the input image. Python computes them
// (featviz_widgets/widget/panels/pca.py); this painter gets that payload only.

import { bitmapCanvas, rgbImage } from "../canvas.js";

/**
 * @typedef {{ layer: string, h: number, w: number, explained: number[], note: string }} PcaMeta
 *   `_pca`'s metadata: its bytes are the colours, uint8 RGB, h x w x 3 (one per position).
 */

/** @import { PanelModule } from "../types.js" */

/** @type {PanelModule} */
export const pca = {
  name: "pca",
  label: "The layer as colour: its first three principal components over the input image",
  size: (payload) => {
    const meta = /** @type {Partial<PcaMeta>} */ (payload);
    return (meta.h || 0) * (meta.w || 0) * 3;
  },
  paint({ ctx, width, height, payload, data, picture }) {
    const meta = /** @type {Partial<PcaMeta>} */ (payload);
    if (!meta.layer) return { caption: "Layer as colour: computing…", stamp: "empty" };
    if (!meta.h || !meta.w || !data.length) return { caption: `Layer as colour: ${meta.note || "not available"}`, stamp: `${meta.layer}|note` };
    if (picture) ctx.drawImage(picture, 0, 0, width, height);
    ctx.globalAlpha = picture ? 0.6 : 1;
    ctx.imageSmoothingEnabled = false; // one block per position
    ctx.drawImage(bitmapCanvas(rgbImage(data, meta.w, meta.h)), 0, 0, width, height);
    ctx.globalAlpha = 1;
    const share = Math.round(100 * (meta.explained || []).reduce((a, b) => a + b, 0));
    return { caption: `${meta.layer} as colour: PCA 1–3, ${share}% of the variance`, stamp: `${meta.layer}|${meta.h}x${meta.w}|${share}` };
  },
};
