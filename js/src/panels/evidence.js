// @ts-check
// Class evidence: the class bar (the image's top-5 predicted classes and a search over every
// class name, the Grad-CAM toggle), the Grad-CAM over the input image and each channel's
// contribution under the unit view. Python computes it
// (featviz_widgets/widget/panels/evidence.py); this module reads `_classes` and `_evidence`
// and writes `class_evidence`, `target_class` and `show_cam`.

import { bitmapCanvas, jetImage } from "../canvas.js";
import { h } from "../dom.js";
import { fmt, hasMaps } from "../numbers.js";
import { payload } from "../state.js";

/**
 * @typedef {MapsMeta & { layer: string, index: number, target: number, target_name: string,
 *   chosen: boolean, top: [number, string, number][], contributions: (number|null)[],
 *   ranks: number[], note: string }} EvidenceMeta
 *   `_evidence`'s metadata: the Grad-CAM of `target` (one map at the input image's size), the
 *   top-5 classes [index, name, probability], each channel's contribution and rank.
 * @typedef {{ count: number, names: string[], note: string }} ClassesMeta
 *   `_classes`: count 0 (with a note) for a model without a classifier, -1 unknown.
 * @typedef {{ class_evidence: boolean, target_class: number | null, show_cam: boolean,
 *   _classes: ClassesMeta }} EvidenceTraits its own synced traits
 * @typedef {{ sort_mode: string }} EvidenceContract `_contract.panels.evidence`
 * @typedef {{ row: HTMLElement, toggle: HTMLInputElement, search: HTMLInputElement,
 *   select: HTMLSelectElement, cam: HTMLInputElement, note: HTMLElement }} Controls
 */

/** @import { MapsMeta, Model, PanelModule, PayloadName, ViewState } from "../types.js" */

/** Its own traits (`EvidenceTraits`, not in the core's `Model`).
 * @param {ViewState} state */
const own = (state) => /** @type {<K extends keyof EvidenceTraits>(key: K) => EvidenceTraits[K] | undefined} */ (/** @type {unknown} */ (state.get));

const MAX_MATCHES = 50; // search results listed in the menu

/**
 * The evidence metadata when they belong to the view shown (its layer, image of a batch and
 * chosen class) and hold a map; null while Python computes them or when there are none.
 * @param {ViewState} state @returns {EvidenceMeta | null}
 */
function freshEvidence(state) {
  const get = own(state);
  const meta = /** @type {EvidenceMeta | undefined} */ (state.get(/** @type {keyof Model} */ ("_evidence")));
  if (!meta || !hasMaps(meta) || !get("class_evidence")) return null;
  const target = get("target_class");
  const same = meta.layer === state.get("layer") && meta.index === state.get("image_index");
  const chosen = target == null ? !meta.chosen : meta.chosen && meta.target === target;
  return same && chosen ? meta : null;
}

/** A probability as a percentage for the menu. @param {number} p */
function percent(p) {
  return p >= 0.1 ? `${(p * 100).toFixed(0)}%` : `${(p * 100).toPrecision(2)}%`;
}

/** A signed number with 3 significant digits, as Python's `{:+.3g}` writes ordinary ones.
 * @param {number | null | undefined} value */
function signed(value) {
  if (value == null || Number.isNaN(value)) return "–";
  const text = Math.abs(value) >= 1e-4 && Math.abs(value) < 1e6 ? String(Number(value.toPrecision(3))) : fmt(value);
  return value >= 0 ? `+${text}` : text;
}

/** What the channel view says of a channel: its contribution to the chosen class and rank.
 * @param {ViewState} state @param {number} channel */
function contributionText(state, channel) {
  const meta = freshEvidence(state);
  if (!meta || !(channel >= 0 && channel < meta.contributions.length)) return "";
  const name = meta.target_name || `class ${meta.target}`;
  return `contribution to '${name}': ${signed(meta.contributions[channel])} (rank ${meta.ranks[channel]} of ${meta.contributions.length})`;
}

/** Controls <- model: the class menu, the toggles and the note, and the sort menu's class
 * contribution option (disabled for a model without a classifier).
 * @param {ViewState} state @param {Record<string, HTMLElement>} controls */
function syncClasses(state, controls) {
  const { dom } = state;
  const get = own(state);
  const { row, toggle, search, select, cam, note: noteText } = /** @type {Controls} */ (/** @type {unknown} */ (controls));
  const classes = /** @type {Partial<ClassesMeta>} */ (get("_classes") || {});
  const names = classes.names || [];
  const noClassifier = classes.count === 0;
  const on = !!get("class_evidence");
  const target = get("target_class");
  const meta = /** @type {Partial<EvidenceMeta>} */ (state.get(/** @type {keyof Model} */ ("_evidence")) || {});
  const fresh = freshEvidence(state);
  toggle.checked = on;
  cam.checked = !!get("show_cam");
  for (const control of [toggle, search, select, cam]) control.disabled = noClassifier;
  row.classList.toggle("fvz-disabled", noClassifier);

  const top = fresh ? fresh.top : meta.top && meta.index === state.get("image_index") ? meta.top : [];
  /** @param {number} index */
  const nameOf = (index) => names[index] || (top.find((t) => t[0] === index) || [])[1] || `class ${index}`;
  const first = top.length ? `top-1: ${top[0][1]} (${percent(top[0][2])})` : "top-1 class";
  /** @type {Node[]} */
  const options = [h("option", { value: "", text: noClassifier ? "no classes" : first })];
  const listed = new Set();
  if (top.length) {
    const group = h("optgroup", { label: "Top 5 predicted" });
    for (const [index, name, p] of top) {
      group.append(h("option", { value: String(index), text: `${name} · ${percent(p)}` }));
      listed.add(index);
    }
    options.push(group);
  }
  const needle = search.value.trim().toLowerCase();
  if (needle && names.length) {
    const group = h("optgroup", { label: `Matching “${search.value.trim()}”` });
    let found = 0;
    for (let index = 0; index < names.length && found < MAX_MATCHES; index++) {
      if (!names[index].toLowerCase().includes(needle) && String(index) !== needle) continue;
      group.append(h("option", { value: String(index), text: `${names[index]} (${index})` }));
      listed.add(index);
      found++;
    }
    if (!found) group.append(h("option", { value: "", text: "no class matches", disabled: true }));
    options.push(group);
  }
  if (target != null && !listed.has(target)) options.push(h("option", { value: String(target), text: `${nameOf(target)} (${target})` }));
  select.replaceChildren(...options);
  select.value = target == null ? "" : String(target);

  let note = "";
  if (noClassifier) note = classes.note || "";
  else if (!on) note = "turn on to see the classes the model predicts";
  else if (meta.note && !meta.n) note = meta.note;
  else if (!fresh) note = "computing…";
  else note = `${fresh.chosen ? "" : "top-1 "}'${fresh.target_name}' at ${fresh.layer}`;
  noteText.textContent = note;
  noteText.title = note;
  select.title = noClassifier ? classes.note || "" : "The class whose evidence is shown: the image's top-5 predicted classes, or search all class names";

  const { sort_mode: mode } = /** @type {EvidenceContract} */ (state.contract.panels.evidence);
  for (const option of dom.sortSelect.options) {
    if (option.value !== mode) continue;
    option.disabled = noClassifier;
    option.title = noClassifier ? classes.note || "" : "Channels by their contribution (gradient × activation) to the chosen class";
  }
  row.dataset.state = `${on ? "on" : "off"}|${target == null ? "top" : target}|${fresh ? `${fresh.layer}:${fresh.target}` : "none"}`;
}

/** @type {PanelModule} */
export const evidence = {
  name: "evidence",
  label: "Class evidence",
  views: ["cam"],
  figure: false, // it draws over the input and unit views
  exportCanvas: (state) => state.dom.inputCanvas,
  controlsRow: true,
  listens: ["change:_classes", "change:class_evidence", "change:target_class", "change:show_cam", "change:layer", "change:image_index"],
  size: (payload) => {
    const meta = /** @type {Partial<EvidenceMeta>} */ (payload);
    return meta.n ? (meta.h || 0) * (meta.w || 0) : 0;
  },
  controls() {
    const toggle = h("input", { type: "checkbox", class: "fvz-classes-on", "aria-label": "Class evidence" });
    const search = h("input", { type: "search", class: "fvz-class-search", placeholder: "search classes", "aria-label": "Search class names" });
    const select = h("select", { class: "fvz-class", "aria-label": "Class to explain" });
    const cam = h("input", { type: "checkbox", class: "fvz-cam", "aria-label": "Grad-CAM overlay on the input image" });
    const note = h("span", { class: "fvz-class-note" });
    const row = h("div", { class: "fvz-toolbar fvz-classes" }, [
      h("label", { class: "fvz-check", title: "Class evidence: the classes the model predicts, where it sees them (Grad-CAM) and which channels speak for them (one forward and backward of the whole model)" }, [toggle, h("span", { text: "classes" })]),
      h("label", { class: "fvz-field" }, [h("span", { text: "Class" }), search, select]),
      h("label", { class: "fvz-check" }, [cam, h("span", { text: "Grad-CAM on the input" })]),
      note,
    ]);
    return { row, toggle, search, select, cam, note };
  },
  sync: (state, { controls }) => syncClasses(state, controls),
  paint: () => ({ caption: "", stamp: "" }),
  // the Grad-CAM of the chosen class over the input image (jet, half opaque) when `show_cam`
  overInput(state, ctx, width, height) {
    const fresh = own(state)("show_cam") ? freshEvidence(state) : null;
    const cam = fresh ? payload(state, /** @type {PayloadName} */ ("_evidence")) : null;
    if (!fresh || !cam || cam.length < fresh.h * fresh.w) return "cam:off";
    ctx.globalAlpha = 0.5;
    ctx.drawImage(bitmapCanvas(jetImage(cam, fresh)), 0, 0, width, height);
    ctx.globalAlpha = 1;
    return `cam:${fresh.layer}:${fresh.target}`;
  },
  unitNote: (state, channel) => contributionText(state, channel),
  wire(state, { controls }) {
    const { save } = state;
    const { toggle, search, select, cam } = /** @type {Controls} */ (/** @type {unknown} */ (controls));
    const write = /** @param {object} values */ (values) => save(values);
    const onToggle = () => write({ class_evidence: toggle.checked });
    const onCam = () => write({ show_cam: cam.checked });
    const onSearch = () => syncClasses(state, controls);
    const onSelect = () => write({ target_class: select.value === "" ? null : Number(select.value) });
    toggle.addEventListener("change", onToggle);
    cam.addEventListener("change", onCam);
    search.addEventListener("input", onSearch);
    select.addEventListener("change", onSelect);
    return () => {
      toggle.removeEventListener("change", onToggle);
      cam.removeEventListener("change", onCam);
      search.removeEventListener("input", onSearch);
      select.removeEventListener("change", onSelect);
    };
  },
};
