// @ts-check
// Several models in one explorer: the toolbar's model menu (`model_name`, from `_model_names`),
// hidden for one model. `buildModelsDom` makes its field for `buildDom`; `wireModels` listens
// to the traits it reads and returns its cleanup.

import { h } from "./dom.js";

/** @import { ViewState } from "./types.js" */

/** The model menu (not yet attached). */
export function buildModelsDom() {
  const select = h("select", { class: "fvz-model", "aria-label": "Model" });
  const field = h("label", { class: "fvz-field fvz-model-field", hidden: true }, [h("span", { text: "Model" }), select]);
  return { field, select };
}

/** The menu from the traits.
 * @param {ViewState} state */
export function syncModels(state) {
  const { get, dom } = state;
  const names = get("_model_names") || [];
  const { select, field } = dom.models;
  if (select.options.length !== names.length || names.some((name, i) => select.options[i].value !== name)) {
    select.replaceChildren(...names.map((name) => h("option", { value: name, text: name })));
  }
  select.value = get("model_name");
  field.hidden = names.length < 2;
}

/** The menu writes `model_name`; the traits resync it (coalesced per microtask). Returns the
 * cleanup.
 * @param {ViewState} state */
export function wireModels(state) {
  const { model, dom, save } = state;
  let queued = false;
  const later = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      if (!state.closed) syncModels(state);
    });
  };
  const events = ["change:_model_names", "change:model_name"];
  for (const event of events) model.on(event, later);
  const onChange = () => save({ model_name: dom.models.select.value });
  dom.models.select.addEventListener("change", onChange);
  later();
  return () => {
    for (const event of events) model.off(event, later);
    dom.models.select.removeEventListener("change", onChange);
  };
}
