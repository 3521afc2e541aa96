// @ts-check
// The registry's panels (panels/index.js) in the view: each gets a figure in its slot (the side
// panel, or below the statistics) and an export canvas, or paints the core's canvases of its
// slot (the grid, the input and channel views), is painted from its own payload trait,
// `_<name>`, and the traits it lists, and wires its own controls and pointer.

import { fitCanvas, stamp } from "./canvas.js";
import { h } from "./dom.js";
import { PANELS } from "./panels/index.js";
import { loadPicture, sideSize } from "./picture.js";
import { schedule } from "./repaint.js";
import { css, sizedPayload } from "./state.js";

/** @import { Listener, Model, Painter, PanelEntry, PanelModule, PayloadName, Theme, ViewState } from "./types.js" */

/** The painters of the core's canvases, in the registry's order (what a repaint runs first).
 * @param {string} [slot] those of this slot only @returns {Painter[]} */
export function corePainters(slot) {
  return PANELS.flatMap((panel) => (!slot || panel.slot === slot ? panel.painters || [] : []));
}

/** A figure for each panel in its slot; its canvas is an export view.
 * @param {ViewState} state */
export function buildPanels(state) {
  const side = h("div", { class: "fvz-pair fvz-wrap fvz-panels" });
  for (const panel of PANELS) {
    const views = panel.views || [panel.name];
    const cls = `fvz-${views[0].replace(/_/g, "-")}`; // a view "a_b": fvz-a-b
    const canvas = panel.exportCanvas ? panel.exportCanvas(state) : h("canvas", { class: cls, "aria-label": panel.label });
    if (panel.painters) canvas.setAttribute("aria-label", panel.label);
    const caption = h("span", { class: "fvz-caption" });
    const below = panel.slot === "below";
    // a panel that draws over the core's views, or paints them, has no figure (its canvas is theirs)
    const own = panel.figure !== false && !panel.painters;
    const figure = !own ? h("span", { hidden: true })
      : below ? h("section", { class: `fvz-panel ${cls}-panel` }, [h("h4", {}, [h("span", { text: `${panel.title || ""} ` }), caption]), canvas])
        : h("figure", { class: `${cls}-figure` }, [h("figcaption", {}, [caption]), canvas]);
    if (own) (below ? state.dom.below : side).append(figure);
    const trait = /** @type {keyof Model} */ (`_${panel.name}`);
    const payload = () => /** @type {object} */ (state.get(trait) || {});
    const controls = panel.controls ? panel.controls(state) : {};
    const outer = Object.values(controls).filter((control) => !control.parentElement);
    (panel.controlsRow ? state.dom.rows : state.dom.tools).append(...outer);
    state.panels.push({ panel, canvas, caption, figure, payload, controls });
    for (const view of views) state.dom.exportCanvases[view] = canvas;
  }
  state.dom.side.append(side);
}

/** The payload trait of each panel.
 * @returns {PayloadName[]} */
export function panelTraits() {
  return PANELS.map((panel) => /** @type {PayloadName} */ (`_${panel.name}`));
}

/** Repaint `panel`: its painters, or the panels (and the input and unit views, for a panel
 * that draws over them).
 * @param {ViewState} state @param {PanelModule} panel */
export function repaintPanel(state, panel) {
  if (panel.painters) schedule(state, ...panel.painters);
  else if (panel.overInput || panel.unitNote) schedule(state, paintPanels, ...corePainters("detail"));
  else schedule(state, paintPanels);
}

/** Decode the input image again, then repaint the views that show it.
 * @param {ViewState} state */
export function showPicture(state) {
  void loadPicture(state).then((decoded) => schedule(state, paintPanels, ...(decoded ? corePainters("detail") : [])));
}

/** Select a channel: the panels hear of it first (`select`: the grid's preview of it).
 * @param {ViewState} state @param {number} channel */
export function selectChannel(state, channel) {
  for (const { panel } of state.panels) if (panel.select) panel.select(state, channel);
  state.save({ channel });
}

/** What repaints the panels: their payload traits' changes and the events they list.
 * @param {ViewState} state @returns {Record<string, Listener>} */
export function panelListeners(state) {
  /** @type {Record<string, Listener>} */
  const listeners = {};
  for (const panel of PANELS) {
    for (const event of new Set([`change:_${panel.name}`, ...(panel.listens || [])])) {
      const first = listeners[event];
      const repaint = () => repaintPanel(state, panel);
      listeners[event] = first ? () => (first(), repaint()) : repaint;
    }
  }
  return listeners;
}

/** What the panels draw over the input image (`overInput`); returns their stamps.
 * @param {ViewState} state @param {CanvasRenderingContext2D} ctx @param {number} width
 * @param {number} height */
export function overInput(state, ctx, width, height) {
  return PANELS.map((panel) => (panel.overInput ? panel.overInput(state, ctx, width, height) : "")).filter(Boolean).join("|");
}

/** What the panels say of the given channel under the unit view (`unitNote`).
 * @param {ViewState} state @param {number} channel */
export function unitNotes(state, channel) {
  return PANELS.map((panel) => (panel.unitNote ? panel.unitNote(state, channel) : "")).filter(Boolean).join(" · ");
}

/** Wire every panel's own controls; returns the cleanup.
 * @param {ViewState} state */
export function wirePanels(state) {
  const stops = state.panels.map((entry) => (entry.panel.wire ? entry.panel.wire(state, entry) : () => {}));
  return () => stops.forEach((stop) => stop());
}

/** Paint every panel from its payload (nothing partial: a payload not all here is pulled).
 * @param {ViewState} state */
export function paintPanels(state) {
  const style = getComputedStyle(state.dom.root);
  const theme = {
    fg: css(state, "--fvz-fg", "#222"),
    grid: style.getPropertyValue("--fvz-border").trim() || "#ccc",
    font: css(state, "--fvz-font", "sans-serif"),
    panel: css(state, "--fvz-panel", "#f3f3f3"),
  };
  for (const entry of state.panels) paintPanel(state, entry, theme);
}

/** @param {ViewState} state @param {PanelEntry} entry @param {Theme} theme */
function paintPanel(state, entry, theme) {
  const { panel, canvas, caption, figure, payload: read } = entry;
  if (panel.sync) panel.sync(state, entry);
  if (panel.figure === false || !panel.paint) return; // it draws over, or paints, the core's views
  const trait = /** @type {PayloadName} */ (`_${panel.name}`);
  const payload = read();
  const hidden = panel.shown ? !panel.shown(payload, state.get) : false;
  figure.hidden = hidden;
  if (hidden) return;
  const side = state.layout.side;
  const fit = sideSize(state);
  const room = { payload, side, width: figure.clientWidth || state.dom.root.clientWidth || 640, fit };
  const [width, height] = panel.box ? panel.box(room) : fit;
  const data = sizedPayload(state, trait, panel.size(payload));
  const ctx = fitCanvas(canvas, width, height);
  ctx.clearRect(0, 0, width, height);
  const scene = { ctx, width, height, side, payload, data, picture: state.picture, get: state.get, theme, canvas };
  const painted = panel.paint(scene);
  caption.textContent = painted.caption;
  caption.title = painted.title || "";
  stamp(canvas, painted.stamp);
}
