// @ts-check
// Controls <- model: the toolbar's menus, inputs and status line show the traits.

import { h } from "./dom.js";
import { holdControls } from "./snapshot.js";

/** @import { ViewState } from "./types.js" */

/** @param {ViewState} state */
export function syncLayers(state) {
  const { get, dom } = state;
  const layers = get("_layers") || [];
  const current = get("layer");
  const needle = dom.filter.value.trim().toLowerCase();
  dom.layerSelect.replaceChildren();
  for (const info of layers) {
    const hay = `${info.name} ${info.type}`.toLowerCase();
    if (needle && !hay.includes(needle) && info.name !== current) continue;
    const shape = info.shape.join("×");
    dom.layerSelect.append(h("option", { value: info.name, text: `${info.name} · ${shape}`, title: `${info.type} (${info.layout})` }));
  }
  if (current && ![...dom.layerSelect.options].some((o) => o.value === current)) {
    dom.layerSelect.append(h("option", { value: current, text: current }));
  }
  dom.layerSelect.value = current;
  dom.allToggle.checked = !!get("all_layers");
}

/** @param {ViewState} state */
export function syncChannels(state) {
  const { get, dom } = state;
  const order = get("_order") || [];
  const options = document.createDocumentFragment();
  order.forEach((c, rank) => options.append(new Option(`#${rank + 1}: ch ${c}`, String(c))));
  dom.channelSelect.replaceChildren(options);
  dom.channelSelect.value = String(get("channel"));
}

/** @param {ViewState} state */
export function syncSimple(state) {
  const { get, dom } = state;
  dom.sortSelect.value = get("sort_by");
  dom.numInput.value = String(get("num_features"));
  dom.scaleSelect.value = get("color_scale");
  dom.channelSelect.value = String(get("channel"));
  const devices = get("_devices") || [];
  dom.deviceSelect.replaceChildren(...devices.map((d) => h("option", { value: d, text: d })));
  dom.deviceSelect.value = get("device");
  dom.deviceField.hidden = devices.length < 2;
  dom.deviceLabel.textContent = devices.length < 2 ? `device: ${get("device")}` : "";
  const meta = get("_image") || {};
  const batch = meta.batch > 1;
  const index = get("image_index");
  const of = batch ? ` · image ${index + 1} of ${meta.batch}` : "";
  dom.prevImage.hidden = dom.nextImage.hidden = !batch;
  dom.prevImage.disabled = index <= 0;
  dom.nextImage.disabled = index >= meta.batch - 1;
  dom.imageName.textContent = (meta.name ? `${meta.name} (${meta.w}×${meta.h})` : meta.w ? `${meta.w}×${meta.h}` : "") + of;
  const inCompare = (get("compare") || []).includes(get("layer"));
  dom.compareButton.textContent = inCompare ? "− remove current layer" : "+ add current layer";
}

/** Busy, progress, status text, error, and Cancel (enabled for the contract's cancellable jobs).
 * @param {ViewState} state */
export function syncStatus(state) {
  const { get, dom, contract, snapshot } = state;
  const busy = !snapshot && !!get("busy"); // a snapshot's saved "busy" will never end
  const value = get("progress");
  dom.root.classList.toggle("fvz-snapshot", snapshot);
  dom.root.classList.toggle("fvz-busy", busy);
  dom.root.dataset.busy = busy ? "1" : "0";
  dom.progress.hidden = !busy;
  if (busy && value >= 0) dom.progress.value = value;
  else dom.progress.removeAttribute("value");
  dom.statusText.textContent = snapshot
    ? "Snapshot: no kernel answered, so this shows what was saved. Run the notebook to explore."
    : busy ? get("status") || "working…" : "";
  holdControls(state); // before Cancel's own rule
  dom.cancelButton.disabled = !(busy && contract.cancellable_jobs.includes(get("_job")));
  const error = get("error");
  dom.errorBox.hidden = !error;
  dom.errorText.textContent = error || "";
}
