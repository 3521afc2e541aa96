// @ts-check
// A snapshot (no kernel answered the first pull: an HTML export, a saved page) shows what was
// saved; whatever would ask Python for more is disabled: the toolbar's controls (the export of a
// view as a PNG, drawn here, stays) and clicks and arrow keys on the canvases. When a kernel
// answers after all, every control gets back the state it had.

/** @import { ViewState } from "./types.js" */

const HELD = "fvzHeld"; // dataset key: the control's `disabled` before the snapshot held it

/** The controls that need a kernel: all of the view's but the PNG export.
 * @param {ViewState} state */
function kernelControls(state) {
  const { dom } = state;
  /** @type {Set<Element>} */
  const local = new Set([dom.exportView, dom.exportButton]);
  /** @type {NodeListOf<HTMLInputElement | HTMLSelectElement | HTMLButtonElement | HTMLTextAreaElement>} */
  const all = dom.root.querySelectorAll("input, select, button, textarea");
  return [...all].filter((control) => !local.has(control));
}

/** Disable the controls that need a kernel while `state.snapshot`; give them back after.
 * @param {ViewState} state */
export function holdControls(state) {
  for (const control of kernelControls(state)) {
    const held = control.dataset[HELD];
    if (state.snapshot && held === undefined) {
      control.dataset[HELD] = control.disabled ? "1" : "0";
      control.disabled = true;
    } else if (!state.snapshot && held !== undefined) {
      control.disabled = held === "1";
      delete control.dataset[HELD];
    }
  }
}

/** Clicks, double clicks and keys on the canvases do nothing in a snapshot (hover still
 * shows the tooltips): caught on the root before the canvases' own listeners.
 * @param {ViewState} state */
export function wireSnapshot(state) {
  /** @param {Event} event */
  const stop = (event) => {
    if (state.snapshot && event.target instanceof HTMLCanvasElement) event.stopPropagation();
  };
  for (const type of ["click", "dblclick", "keydown"]) state.dom.root.addEventListener(type, stop, true);
}
