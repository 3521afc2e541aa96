// @ts-check
// One view's state and DOM: `createState` (UI-only, never synced) over the elements `buildDom`
// makes from the contract; `css` reads the theme, `payload` a payload trait's bytes.

import { h } from "./dom.js";
import { buildModelsDom } from "./models.js";
import { bytesOf } from "./numbers.js";
import { pullOnce } from "./pull.js";

/** @import { AnyModel, Contract, Dom, Model, Payload, PayloadName, ViewState } from "./types.js" */

/**
 * The view state of one view of `model`, over the DOM `buildDom` made.
 * @param {AnyModel} model @param {Dom} dom
 * @returns {ViewState}
 */
export function createState(model, dom) {
  const contract = model.get("_contract");
  return {
    model,
    contract,
    messages: contract.messages,
    pushes: contract.pushes,
    get: (key) => model.get(key),
    save: (values) => {
      for (const [key, value] of Object.entries(values)) {
        model.set(/** @type {keyof Model} */ (key), /** @type {Model[keyof Model]} */ (value));
      }
      model.save_changes();
    },
    dom,
    incoming: {},
    received: {},
    asked: {},
    pulling: 0,
    snapshot: false,
    onSnapshot: () => {},
    gridCache: null,
    picture: null,
    pictureToken: 0,
    cursor: null,
    layout: { grid: 300, side: 300 },
    preview: null,
    dirty: new Set(),
    scheduled: false,
    timers: { channels: 0, num: 0 },
    theme: "",
    closed: false,
    panels: [],
  };
}

/**
 * The view's DOM (not yet attached): controls from the contract's enums and limits, canvases.
 * @param {Contract} contract
 */
export function buildDom(contract) {
  const filter = h("input", { type: "search", class: "fvz-filter", placeholder: "filter layers", "aria-label": "Filter layers" });
  const layerSelect = h("select", { class: "fvz-layer", "aria-label": "Layer" });
  const allToggle = h("input", { type: "checkbox", class: "fvz-all" });
  const sortSelect = h("select", { class: "fvz-sort", "aria-label": "Sort channels by" },
    contract.sort_modes.map((m) => h("option", { value: m, text: m })));
  const channelSelect = h("select", { class: "fvz-channel", "aria-label": "Channel (in ranking order)" });
  const numInput = h("input", { type: "number", min: 1, max: contract.max_feature_maps, step: 1, class: "fvz-num", "aria-label": "Number of maps" });
  const scaleSelect = h("select", { class: "fvz-scale", "aria-label": "Colour scale" },
    contract.color_scales.map((s) => h("option", { value: s, text: s.replace("-", " ") })));
  const deviceSelect = h("select", { class: "fvz-device", "aria-label": "Device" });
  const deviceLabel = h("span", { class: "fvz-device-label" });
  const fileInput = h("input", { type: "file", accept: "image/*", class: "fvz-file", "aria-label": "Upload an image" });
  const imageName = h("span", { class: "fvz-image-name" });
  const prevImage = h("button", { type: "button", class: "fvz-prev-image", text: "◀", "aria-label": "Previous image of the batch", title: "Previous image of the batch (or ← on the input image)", hidden: true });
  const nextImage = h("button", { type: "button", class: "fvz-next-image", text: "▶", "aria-label": "Next image of the batch", title: "Next image of the batch (or → on the input image)", hidden: true });
  const cancelButton = h("button", { type: "button", class: "fvz-cancel", text: "Cancel", disabled: true });
  const exportView = h("select", { class: "fvz-export-view", "aria-label": "View to export" },
    contract.export_views.map((v) => h("option", { value: v, text: v })));
  const exportButton = h("button", { type: "button", class: "fvz-export", text: "Save PNG" });
  const progress = h("progress", { class: "fvz-progress", max: 1 });
  const statusText = h("span", { class: "fvz-status-text" });
  const errorText = h("span", { class: "fvz-error-text" });
  const errorClose = h("button", { type: "button", class: "fvz-error-close", "aria-label": "Dismiss", text: "×" });
  const errorBox = h("div", { class: "fvz-error", role: "alert", hidden: true }, [errorText, errorClose]);
  // the grid's and the channel view's canvases: their panels (panels/) label and paint them
  const gridCanvas = h("canvas", { class: "fvz-grid", tabindex: 0 });
  const gridCaption = h("span", { class: "fvz-caption" });
  const inputCanvas = h("canvas", { class: "fvz-input", "aria-label": "Input image as the model sees it" });
  const unitCanvas = h("canvas", { class: "fvz-unit", tabindex: 0 });
  const unitCaption = h("span", { class: "fvz-caption" });
  const statsList = h("dl", { class: "fvz-stats" });
  const chart = h("div", { class: "fvz-chart" });
  const compareButton = h("button", { type: "button", class: "fvz-compare-toggle" });
  const tooltip = h("div", { class: "fvz-tooltip", role: "tooltip", hidden: true });
  const unitNote = h("span", { class: "fvz-contribution" }); // what panels say of the channel
  const models = buildModelsDom(); // the model menu, shown for several models
  // the canvas that shows each of the contract's export views (tests/test_contract.py)
  /** @type {Record<string, HTMLCanvasElement>} */
  const exportCanvases = {}; // each panel's views join it (panel-host.js)

  /** @type {HTMLElement} */
  let side; // the side panel, where the registry's panels go too (panel-host.js)
  /** @type {HTMLElement} */
  let below; // across the view under the statistics: the registry's panels with slot "below"
  /** @type {HTMLElement} */
  let tools; // the panels' own controls, in the second toolbar
  /** @type {HTMLElement} */
  let rows; // the panels' own toolbars, under the second
  /** @param {string} label @param {HTMLElement[]} controls */
  const field = (label, ...controls) => h("label", { class: "fvz-field" }, [h("span", { text: label }), ...controls]);
  const deviceField = field("Device", deviceSelect);
  const root = h("div", { class: "fvz" }, [
    h("div", { class: "fvz-toolbar" }, [
      models.field,
      field("Layer", filter, layerSelect),
      h("label", { class: "fvz-check" }, [allToggle, h("span", { text: "all modules" })]),
      field("Sort", sortSelect),
      field("Channel", channelSelect),
      field("Maps", numInput),
      field("Scale", scaleSelect),
      deviceField,
      deviceLabel,
    ]),
    h("div", { class: "fvz-toolbar" }, [
      h("label", { class: "fvz-upload fvz-button" }, [h("span", { text: "Upload image…" }), fileInput]),
      prevImage,
      imageName,
      nextImage,
      tools = h("span", { class: "fvz-tools" }),
      cancelButton,
      h("span", { class: "fvz-spacer" }),
      field("Export", exportView),
      exportButton,
    ]),
    rows = h("div", { class: "fvz-rows" }),
    h("div", { class: "fvz-status", role: "status" }, [progress, statusText]),
    errorBox,
    h("div", { class: "fvz-main" }, [
      h("section", { class: "fvz-panel fvz-grid-panel" }, [h("h4", {}, [h("span", { text: "Feature maps " }), gridCaption]), gridCanvas]),
      side = h("section", { class: "fvz-panel fvz-side" }, [
        h("div", { class: "fvz-pair" }, [
          h("figure", {}, [h("figcaption", { text: "Input (as the model sees it)" }), inputCanvas]),
          h("figure", {}, [h("figcaption", {}, [unitCaption, unitNote]), unitCanvas]),
        ]),
      ]),
    ]),
    h("div", { class: "fvz-bottom" }, [
      h("section", { class: "fvz-panel" }, [h("h4", { text: "Layer statistics" }), statsList]),
      h("section", { class: "fvz-panel fvz-compare" }, [h("h4", {}, [h("span", { text: "Compare layers " }), compareButton]), chart]),
    ]),
    below = h("div", { class: "fvz-below" }),
    tooltip,
  ]);
  return {
    root, side, below, tools, rows, filter, layerSelect, allToggle, sortSelect, channelSelect, numInput, scaleSelect,
    deviceSelect, deviceField, deviceLabel, fileInput, imageName, prevImage, nextImage, cancelButton,
    exportView, exportButton, exportCanvases, progress, statusText, errorBox, errorText,
    errorClose, gridCanvas, gridCaption, inputCanvas, unitCanvas, unitCaption, statsList, chart, compareButton, tooltip,
    unitNote,
    models,
  };
}

/**
 * The theme's value of CSS variable `name` on the view, or `fallback`.
 * @param {ViewState} state @param {string} name @param {string} fallback
 */
export function css(state, name, fallback) {
  return getComputedStyle(state.dom.root).getPropertyValue(name).trim() || fallback;
}

/**
 * The bytes of payload trait `name` once they are all here: its `data`, or the chunks its
 * `chunked` names; otherwise none.
 * @param {ViewState} state @param {PayloadName} name
 */
export function payload(state, name) {
  const value = /** @type {Payload} */ (state.get(name) || {});
  if (!value.chunked) return value.data ? bytesOf(value.data) : new Uint8Array(0);
  const got = state.received[name];
  return got && got.id === value.chunked.id ? got.data : new Uint8Array(0);
}

/**
 * The bytes of payload trait `name` when they are the `expected` count its metadata call for;
 * otherwise none, never a part: the view pulls that payload from Python once (a host dropped
 * its buffers, a chunk was lost), so it does not stay blank.
 * @param {ViewState} state @param {PayloadName} name @param {number} expected
 */
export function sizedPayload(state, name, expected) {
  const data = payload(state, name);
  if (data.length === expected) return data;
  const value = /** @type {Payload} */ (state.get(name) || {});
  if (expected > 0 && !state.incoming[name]) pullOnce(state, name, value.chunked ? value.chunked.id : value);
  return new Uint8Array(0);
}
