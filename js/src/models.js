// @ts-check
// Several models in one explorer: the toolbar's model menu (`model_name`, from `_model_names`)
// and the comparison panel under the statistics (`_comparison`), both hidden for one model.
// `buildModelsDom` makes their elements for `buildDom`; `wireModels` listens to the traits it
// reads and returns its cleanup.

import { paintComparison } from "./comparison.js";
import { h } from "./dom.js";

/** @import { ComparisonMeta, ViewState } from "./types.js" */

/** The model menu and the comparison panel (not yet attached). */
export function buildModelsDom() {
  const select = h("select", { class: "fvz-model", "aria-label": "Model" });
  const field = h("label", { class: "fvz-field fvz-model-field", hidden: true }, [h("span", { text: "Model" }), select]);
  const canvas = h("canvas", { class: "fvz-models", "aria-label": "Model comparison: mean activation and sparsity against relative depth, one line per model" });
  const caption = h("span", { class: "fvz-caption" });
  const panel = h("section", { class: "fvz-panel fvz-models-panel", hidden: true }, [h("h4", {}, [h("span", { text: "Compare models " }), caption]), canvas]);
  return { field, select, panel, canvas, caption };
}

/** The menu and the panel from the traits.
 * @param {ViewState} state */
export function syncModels(state) {
  const { get, dom } = state;
  const names = get("_model_names") || [];
  const { select, field, panel } = dom.models;
  if (select.options.length !== names.length || names.some((name, i) => select.options[i].value !== name)) {
    select.replaceChildren(...names.map((name) => h("option", { value: name, text: name })));
  }
  select.value = get("model_name");
  field.hidden = panel.hidden = names.length < 2;
}

/** The comparison chart, at the panel's width.
 * @param {ViewState} state */
export function paintModels(state) {
  const { get, dom } = state;
  const { panel, canvas, caption } = dom.models;
  if (panel.hidden) return;
  const meta = get("_comparison");
  const style = getComputedStyle(dom.root);
  const theme = {
    fg: style.getPropertyValue("--fvz-fg").trim() || "#222",
    grid: style.getPropertyValue("--fvz-border").trim() || "#ccc",
    font: style.getPropertyValue("--fvz-font").trim() || "sans-serif",
  };
  const width = Math.max(320, Math.min(900, (panel.clientWidth || dom.root.clientWidth || 640) - 8));
  const comparison = meta && meta.models ? /** @type {ComparisonMeta} */ (meta) : null;
  paintComparison(canvas, comparison, width, get("model_name"), get("layer"), theme);
  const busy = comparison && comparison.done < comparison.total ? ` · ${comparison.done}/${comparison.total} models` : "";
  caption.textContent = comparison ? `on ${comparison.image || "the image"}${busy}${comparison.note ? ` · ${comparison.note}` : ""}` : "";
}

/** The menu writes `model_name`; the traits repaint the menu and the chart (coalesced per
 * microtask), as does a resize. Returns the cleanup.
 * @param {ViewState} state */
export function wireModels(state) {
  const { model, dom, save } = state;
  let queued = false;
  const later = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      if (state.closed) return;
      syncModels(state);
      paintModels(state);
    });
  };
  const events = ["change:_model_names", "change:model_name", "change:_comparison", "change:layer"];
  for (const event of events) model.on(event, later);
  const onChange = () => save({ model_name: dom.models.select.value });
  dom.models.select.addEventListener("change", onChange);
  const observer = new ResizeObserver(later);
  observer.observe(dom.models.panel);
  later();
  return () => {
    for (const event of events) model.off(event, later);
    dom.models.select.removeEventListener("change", onChange);
    observer.disconnect();
  };
}
