// @ts-check
// The input image (`_image`, a PNG): decoded once for every view that paints it, and the size
// of the side panel's pictures, which the unit view and the side panels share.

import { GAP } from "./canvas.js";
import { payload } from "./state.js";

/** @import { ViewState } from "./types.js" */

/** The CSS size [w, h] of each side view: half the side panel, the input image's aspect.
 * @param {ViewState} state @returns {[number, number]} */
export function sideSize(state) {
  const meta = state.get("_image") || {};
  const aspect = meta.w && meta.h ? meta.h / meta.w : 1;
  const w = Math.max(80, Math.floor((state.layout.side - GAP * 2) / 2));
  return [w, Math.round(w * aspect)];
}

/** Decode the input image into `state.picture`; resolves to whether this decode settled it
 * (false: there is none, or a newer decode began), when the views that show it repaint.
 * @param {ViewState} state @returns {Promise<boolean>} */
export async function loadPicture(state) {
  const token = ++state.pictureToken;
  const data = payload(state, "_image");
  if (!data.length) {
    state.picture = null;
    return false;
  }
  try {
    const bitmap = await createImageBitmap(new Blob([data.slice()], { type: "image/png" }));
    if (token !== state.pictureToken) return false;
    state.picture = bitmap;
  } catch {
    state.picture = null;
  }
  return true;
}
