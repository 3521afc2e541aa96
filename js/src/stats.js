// @ts-check
// The bottom panels: the layer's statistics and bar charts of the compared layers.

import { h, svgEl } from "./dom.js";
import { fmt } from "./numbers.js";

/** @import { Stats, ViewState } from "./types.js" */

/** @param {ViewState} state */
export function paintStats(state) {
  const stats = state.get("statistics") || {};
  const rows = [
    ["mean", fmt(stats.mean)],
    ["std", fmt(stats.std)],
    ["sparsity", stats.sparsity == null ? "–" : `${(stats.sparsity * 100).toFixed(1)}%`],
    ["min", fmt(stats.min)],
    ["max", fmt(stats.max)],
    ["active channels", `${fmt(stats.active_channels)} / ${fmt(stats.num_channels)}`],
    ["spatial size", Array.isArray(stats.spatial_size) ? stats.spatial_size.join(" × ") : "–"],
  ];
  if (stats.non_finite) rows.push(["non-finite values", fmt(stats.non_finite)]);
  state.dom.statsList.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
}

/** Bar charts of the compared layers' statistics; a click on a layer's name selects it.
 * @param {ViewState} state */
export function paintChart(state) {
  const { get, dom } = state;
  const all = get("compare_statistics") || {};
  const names = (get("compare") || []).filter((n) => all[n]);
  const current = get("layer");
  /** @type {[keyof Stats, string][]} */
  const panels = [
    ["mean", "Mean activation"],
    ["std", "Std"],
    ["sparsity", "Sparsity"],
    ["active_channels", "Active channels"],
  ];
  dom.chart.replaceChildren();
  if (!names.length) return;
  const panelW = 240; // viewBox units: the SVG scales to its grid cell
  const panelH = 120;
  const labelH = 56;
  for (const [key, title] of panels) {
    const svg = svgEl("svg", { viewBox: `0 0 ${panelW} ${panelH + labelH + 18}`, class: "fvz-bars", role: "img", "aria-label": `${title} per layer` });
    svg.append(svgEl("text", { x: 4, y: 12, class: "fvz-bar-title" }, title));
    const values = names.map((n) => Number(all[n][key]) || 0);
    const max = Math.max(...values.map(Math.abs), 1e-12);
    const step = (panelW - 24) / names.length;
    names.forEach((name, i) => {
      const v = values[i];
      const barH = (Math.abs(v) / max) * (panelH - 14);
      const x = 4 + i * step + step * 0.15;
      const rect = svgEl("rect", { x, y: 18 + panelH - barH, width: step * 0.7, height: Math.max(barH, 0.5), class: name === current ? "fvz-bar fvz-bar-current" : "fvz-bar" });
      rect.append(svgEl("title", {}, `${name}: ${fmt(v)}`));
      svg.append(rect);
      const label = svgEl("text", { x: x + step * 0.35, y: 18 + panelH + 4, class: "fvz-bar-label", transform: `rotate(45 ${x + step * 0.35} ${18 + panelH + 4})` }, name.length > 12 ? `…${name.slice(-11)}` : name);
      label.addEventListener("click", () => state.save({ layer: name }));
      svg.append(label);
    });
    dom.chart.append(svg);
  }
}
