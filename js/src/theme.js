// @ts-check
// Whether the page around a view is dark, wherever the host says so: JupyterLab's and VS Code's
// body attributes, a class on <html> (marimo), inside a shadow root (marimo renders widgets in
// one, where no `body.dark .fvz` selector can reach), or only the OS scheme. Read from what the
// page paints: the first opaque background at or above the view.

/** The element above `node`, through a shadow root to its host.
 * @param {Element} node @returns {Element | null} */
function above(node) {
  if (node.parentElement) return node.parentElement;
  const root = node.getRootNode();
  return root instanceof ShadowRoot ? root.host : null;
}

/** A computed colour's lightness in [0, 1] and its alpha, or null. Computed styles keep the
 * colour space the page wrote: `rgb()`/`rgba()` (0-255), `color(srgb …)` (0-1, as marimo's
 * theme gives them), `oklch()`/`oklab()` (L 0-1 or %), `lch()`/`lab()` (L 0-100).
 * @param {string} css @returns {[number, number] | null} */
export function lightness(css) {
  const space = css.slice(0, css.indexOf("(")).trim();
  const body = css.slice(css.indexOf("(") + 1, css.lastIndexOf(")")).replace(/^\s*srgb\s+/, "");
  const [channels, alphaText] = body.includes("/") ? body.split("/") : [body, ""];
  const parts = channels.split(/[\s,]+/).filter(Boolean);
  const value = (/** @type {string} */ text, /** @type {number} */ scale) =>
    text.endsWith("%") ? parseFloat(text) / 100 : parseFloat(text) / scale;
  const alpha = alphaText.trim() ? value(alphaText.trim(), 1) : parts.length > 3 ? value(parts[3], 1) : 1;
  if (parts.length < 3 || Number.isNaN(alpha)) return null;
  if (space === "oklch" || space === "oklab") return [value(parts[0], 1), alpha];
  if (space === "lch" || space === "lab") return [value(parts[0], 100), alpha];
  const scale = space === "color" ? 1 : 255;
  if (space !== "color" && space !== "rgb" && space !== "rgba") return null;
  const [r, g, b] = parts.slice(0, 3).map((p) => value(p, scale));
  return [0.2126 * r + 0.7152 * g + 0.0722 * b, alpha];
}

/** The lightness of the first opaque background at or above `node`, or null.
 * @param {Element} node @returns {number | null} */
function backdrop(node) {
  for (let at = above(node); at; at = above(at)) {
    const colour = lightness(getComputedStyle(at).backgroundColor);
    if (colour && colour[1] > 0.5) return colour[0];
  }
  return null;
}

/** Whether the page behind `root` is dark (with no opaque background: the OS scheme).
 * @param {HTMLElement} root */
export function isDarkAround(root) {
  const light = backdrop(root);
  if (light === null) return window.matchMedia("(prefers-color-scheme: dark)").matches;
  return light < 0.4;
}

/** Mark the view dark or light (`fvz-dark`: the CSS's dark fallbacks) from what is behind it.
 * @param {HTMLElement} root */
export function markTheme(root) {
  root.classList.toggle("fvz-dark", isDarkAround(root));
}
