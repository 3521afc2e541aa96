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

/** The first opaque background colour at or above `node` as [r, g, b], or null.
 * @param {Element} node @returns {number[] | null} */
function backdrop(node) {
  for (let at = above(node); at; at = above(at)) {
    const parts = (getComputedStyle(at).backgroundColor.match(/[\d.]+/g) || []).map(Number);
    if (parts.length >= 3 && (parts.length < 4 || parts[3] > 0.5)) return parts.slice(0, 3);
  }
  return null;
}

/** Whether the page behind `root` is dark (with no opaque background: the OS scheme).
 * @param {HTMLElement} root */
export function isDarkAround(root) {
  const colour = backdrop(root);
  if (!colour) return window.matchMedia("(prefers-color-scheme: dark)").matches;
  const [r, g, b] = colour.map((v) => v / 255);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.4;
}

/** Mark the view dark or light (`fvz-dark`: the CSS's dark fallbacks) from what is behind it.
 * @param {HTMLElement} root */
export function markTheme(root) {
  root.classList.toggle("fvz-dark", isDarkAround(root));
}
