// @ts-check
// Pointer on a canvas: hover shows a tooltip, a click selects what is under the pointer.

/** @import { ViewState } from "./types.js" */

/**
 * @template H
 * Hover shows `describe(hit)` in the tooltip; a click on a hit calls `select(hit)`.
 * @param {ViewState} state @param {HTMLCanvasElement} canvas
 * @param {(event: MouseEvent) => H | null} hitTest @param {(hit: H) => string} describe
 * @param {(hit: H) => void} select
 */
export function pointer(state, canvas, hitTest, describe, select) {
  const { tooltip } = state.dom;
  canvas.addEventListener("mousemove", (event) => {
    const hit = hitTest(event);
    if (hit) showTooltip(state, event, describe(hit));
    else tooltip.hidden = true;
  });
  canvas.addEventListener("mouseleave", () => (tooltip.hidden = true));
  canvas.addEventListener("click", (event) => {
    const hit = hitTest(event);
    if (hit) select(hit);
  });
}

/** @param {ViewState} state @param {MouseEvent} event @param {string} text */
function showTooltip(state, event, text) {
  const { root, tooltip } = state.dom;
  const box = root.getBoundingClientRect();
  tooltip.hidden = false;
  tooltip.textContent = text;
  tooltip.style.left = `${event.clientX - box.left + 12}px`;
  tooltip.style.top = `${event.clientY - box.top + 12}px`;
}
