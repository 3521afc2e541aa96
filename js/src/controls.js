// @ts-check
// Controls -> model: the toolbar's dropdowns, inputs and buttons write the person's choices.

import { selectChannel } from "./panel-host.js";
import { syncLayers } from "./sync.js";
import { exportPng, upload } from "./transport.js";

/** @import { ViewState } from "./types.js" */

/** Dropdowns, inputs and buttons write the person's choices to the model.
 * @param {ViewState} state */
export function wireControls(state) {
  const { model, messages, dom, get, save } = state;
  dom.filter.addEventListener("input", () => syncLayers(state));
  dom.layerSelect.addEventListener("change", () => save({ layer: dom.layerSelect.value }));
  dom.allToggle.addEventListener("change", () => save({ all_layers: dom.allToggle.checked }));
  dom.sortSelect.addEventListener("change", () => save({ sort_by: dom.sortSelect.value }));
  dom.channelSelect.addEventListener("change", () => selectChannel(state, Number(dom.channelSelect.value)));
  dom.scaleSelect.addEventListener("change", () => save({ color_scale: dom.scaleSelect.value }));
  dom.deviceSelect.addEventListener("change", () => save({ device: dom.deviceSelect.value }));
  const commitNum = () => {
    clearTimeout(state.timers.num);
    const value = Math.round(Number(dom.numInput.value));
    if (Number.isFinite(value) && value >= 1 && value !== get("num_features")) save({ num_features: value });
  };
  dom.numInput.addEventListener("input", () => {
    clearTimeout(state.timers.num);
    state.timers.num = setTimeout(commitNum, 300);
  });
  dom.numInput.addEventListener("change", commitNum);
  dom.cancelButton.addEventListener("click", () => model.send({ type: messages.cancel }));
  dom.errorClose.addEventListener("click", () => save({ error: "" }));
  dom.compareButton.addEventListener("click", () => {
    const names = [...(get("compare") || [])];
    const layer = get("layer");
    const at = names.indexOf(layer);
    if (at >= 0) names.splice(at, 1);
    else names.push(layer);
    if (names.length) save({ compare: names });
  });
  dom.fileInput.addEventListener("change", () => {
    const file = dom.fileInput.files && dom.fileInput.files[0];
    dom.fileInput.value = "";
    if (file) void upload(state, file);
  });
  dom.exportButton.addEventListener("click", () => exportPng(state));
  // ◀ ▶ and the arrow keys on the input image step through a batch (`image_index`).
  /** @param {number} step @returns {boolean} whether there was an image to step to */
  const stepImage = (step) => {
    const count = (get("_image") || {}).batch || 1;
    const next = get("image_index") + step;
    if (!step || next < 0 || next >= count) return false;
    save({ image_index: next });
    return true;
  };
  dom.prevImage.addEventListener("click", () => stepImage(-1));
  dom.nextImage.addEventListener("click", () => stepImage(1));
  dom.inputCanvas.tabIndex = 0;
  dom.inputCanvas.addEventListener("keydown", (event) => {
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (stepImage(step)) event.preventDefault();
  });
}
