// @ts-check
// Repaints: coalesced per microtask (`schedule`), everything at once after a resize, and the
// canvases again when the host changes theme.

import { corePainters, paintPanels } from "./panel-host.js";
import { css } from "./state.js";
import { markTheme } from "./theme.js";
import { paintChart, paintStats } from "./stats.js";
import { syncChannels, syncLayers, syncSimple, syncStatus } from "./sync.js";

/** @import { Painter, ViewState } from "./types.js" */

/** Every canvas and the chart (after a resize).
 * @param {ViewState} state */
export function paintAll(state) {
  for (const paint of corePainters()) paint(state);
  paintPanels(state);
  paintChart(state);
}

// Coalesced repaints: paint functions run at most once per microtask, canvases first (the
// grid, the channel and input views, then the panels'): they are what a person waits for. A
// ranking of thousands of channels is a big <select>: rebuilt after the paint. Read when it
// runs: the registry is not there yet while the modules load.
/** @returns {Painter[]} */
const paintOrder = () => [...corePainters(), paintPanels, syncStatus, syncSimple, syncLayers, paintStats, paintChart];

/** Queue `parts` for the next coalesced repaint.
 * @param {ViewState} state @param {...Painter} parts */
export function schedule(state, ...parts) {
  for (const p of parts) state.dirty.add(p);
  if (state.scheduled) return;
  state.scheduled = true;
  queueMicrotask(() => {
    state.scheduled = false;
    const todo = new Set(state.dirty);
    state.dirty.clear();
    if (state.closed) return;
    for (const paint of paintOrder()) if (todo.has(paint)) paint(state);
    if (todo.has(syncChannels)) {
      clearTimeout(state.timers.channels);
      state.timers.channels = setTimeout(() => syncChannels(state), 0);
    }
  });
}

/** The panels' widths from the view's width; whether they changed.
 * @param {ViewState} state */
export function measure(state) {
  const { root } = state.dom;
  const width = root.clientWidth;
  if (!width) return false;
  const wide = width >= 720;
  const grid = wide ? Math.floor(width * 0.5) - 16 : width - 16;
  const side = wide ? width - grid - 40 : width - 16;
  const changed = grid !== state.layout.grid || side !== state.layout.side;
  state.layout = { grid, side };
  root.classList.toggle("fvz-narrow", !wide);
  return changed;
}

/** Repaint at the new size when the view is resized; returns the cleanup.
 * @param {ViewState} state */
export function watchSize(state) {
  const observer = new ResizeObserver(() => {
    retheme(state); // laid out: now the page behind the view can be read (theme.js)
    if (measure(state)) paintAll(state);
  });
  observer.observe(state.dom.root);
  return () => observer.disconnect();
}

/** Read the theme again; repaint the canvases drawn in its colours when it changed.
 * @param {ViewState} state */
function retheme(state) {
  markTheme(state.dom.root);
  const key = themeKey(state);
  if (key === state.theme) return;
  state.theme = key;
  schedule(state, ...corePainters(), paintPanels);
}

/** The theme colours canvases are painted with.
 * @param {ViewState} state */
function themeKey(state) {
  return ["--fvz-fg", "--fvz-panel", "--fvz-accent", "--fvz-font"].map((v) => css(state, v, "")).join("|");
}

/**
 * Canvas text and marks take the theme's colours when they are painted: repaint them when the
 * host changes theme (JupyterLab's body data attributes, VS Code's body classes, a class or
 * data-theme on <html> or <body>, the OS); `fvz-dark` follows what is behind the view.
 * Returns the cleanup.
 * @param {ViewState} state
 */
export function watchTheme(state) {
  markTheme(state.dom.root);
  state.theme = themeKey(state);
  const onTheme = () => retheme(state);
  const observer = new MutationObserver(onTheme);
  for (const node of [document.documentElement, document.body]) {
    observer.observe(node, { attributes: true, attributeFilter: ["class", "style", "data-theme", "data-jp-theme-name", "data-jp-theme-light"] });
  }
  const darkScheme = window.matchMedia("(prefers-color-scheme: dark)");
  darkScheme.addEventListener("change", onTheme);
  return () => {
    observer.disconnect();
    darkScheme.removeEventListener("change", onTheme);
  };
}
