// @ts-check
// Class evidence: the class menu (the image's top-5 predicted classes and a search over every
// class name), the Grad-CAM toggle, and what the evidence says of the view shown. Python
// computes it (`class_evidence`); this module reads `_classes` and `_evidence` and writes
// `class_evidence`, `target_class` and `show_cam`.

import { h } from "./dom.js";
import { fmt, hasMaps } from "./numbers.js";

/** @import { EvidenceMeta, Unset, ViewState } from "./types.js" */

const MAX_MATCHES = 50; // search results listed in the menu

/**
 * The evidence metadata when they belong to the view shown (its layer, image of a batch and
 * chosen class) and hold a map; null while Python computes them or when there are none.
 * @param {ViewState} state @returns {EvidenceMeta | null}
 */
export function freshEvidence(state) {
  const { get } = state;
  /** @type {EvidenceMeta | Unset} */
  const meta = get("_evidence");
  if (!hasMaps(meta) || !get("class_evidence")) return null;
  const target = get("target_class");
  const same = meta.layer === get("layer") && meta.index === get("image_index");
  const chosen = target == null ? !meta.chosen : meta.chosen && meta.target === target;
  return same && chosen ? meta : null;
}

/** A probability as a percentage for the menu. @param {number} p */
function percent(p) {
  return p >= 0.1 ? `${(p * 100).toFixed(0)}%` : `${(p * 100).toPrecision(2)}%`;
}

/** A signed number with 3 significant digits, as Python's `{:+.3g}` writes ordinary ones.
 * @param {number | null | undefined} value */
export function signed(value) {
  if (value == null || Number.isNaN(value)) return "–";
  const text = Math.abs(value) >= 1e-4 && Math.abs(value) < 1e6 ? String(Number(value.toPrecision(3))) : fmt(value);
  return value >= 0 ? `+${text}` : text;
}

/** What the channel view says of a channel: its contribution to the chosen class and rank.
 * @param {ViewState} state @param {number} channel */
export function contributionText(state, channel) {
  const meta = freshEvidence(state);
  if (!meta || !(channel >= 0 && channel < meta.contributions.length)) return "";
  const name = meta.target_name || `class ${meta.target}`;
  return `contribution to '${name}': ${signed(meta.contributions[channel])} (rank ${meta.ranks[channel]} of ${meta.contributions.length})`;
}

/** Controls <- model: the class menu, the toggles and the note, and the sort menu's class
 * contribution option (disabled for a model without a classifier).
 * @param {ViewState} state */
export function syncClasses(state) {
  const { get, dom, contract } = state;
  const classes = get("_classes") || {};
  const names = classes.names || [];
  const noClassifier = classes.count === 0;
  const on = !!get("class_evidence");
  const target = get("target_class");
  /** @type {EvidenceMeta | Unset} */
  const meta = get("_evidence") || {};
  const fresh = freshEvidence(state);
  dom.classToggle.checked = on;
  dom.camToggle.checked = !!get("show_cam");
  for (const control of [dom.classToggle, dom.classSearch, dom.classSelect, dom.camToggle]) control.disabled = noClassifier;
  dom.classes.classList.toggle("fvz-disabled", noClassifier);

  const top = fresh ? fresh.top : meta.top && meta.index === get("image_index") ? meta.top : [];
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
  const needle = dom.classSearch.value.trim().toLowerCase();
  if (needle && names.length) {
    const group = h("optgroup", { label: `Matching “${dom.classSearch.value.trim()}”` });
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
  dom.classSelect.replaceChildren(...options);
  dom.classSelect.value = target == null ? "" : String(target);

  let note = "";
  if (noClassifier) note = classes.note || "";
  else if (!on) note = "turn on to see the classes the model predicts";
  else if (meta.note && !meta.n) note = meta.note;
  else if (!fresh) note = "computing…";
  else note = `${fresh.chosen ? "" : "top-1 "}'${fresh.target_name}' at ${fresh.layer}`;
  dom.classNote.textContent = note;
  dom.classNote.title = note;
  dom.classSelect.title = noClassifier ? classes.note || "" : "The class whose evidence is shown: the image's top-5 predicted classes, or search all class names";

  for (const option of dom.sortSelect.options) {
    if (option.value !== contract.class_contribution) continue;
    option.disabled = noClassifier;
    option.title = noClassifier ? classes.note || "" : "Channels by their contribution (gradient × activation) to the chosen class";
  }
  dom.classes.dataset.state = `${on ? "on" : "off"}|${target == null ? "top" : target}|${fresh ? `${fresh.layer}:${fresh.target}` : "none"}`;
}

/** Controls -> model: the toggles, the search box and the class menu.
 * @param {ViewState} state */
export function wireClasses(state) {
  const { dom, save } = state;
  dom.classToggle.addEventListener("change", () => save({ class_evidence: dom.classToggle.checked }));
  dom.camToggle.addEventListener("change", () => save({ show_cam: dom.camToggle.checked }));
  dom.classSearch.addEventListener("input", () => syncClasses(state));
  dom.classSelect.addEventListener("change", () => {
    const value = dom.classSelect.value;
    save({ target_class: value === "" ? null : Number(value) });
  });
}
