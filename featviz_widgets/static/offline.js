// @ts-check
// The model a page saved by `FeatureExplorer.save_html` runs the widget against: no kernel, the
// saved state and every saved layer's maps. Hand-written, not part of the bundle: the page
// inlines it beside the bundle (featviz_widgets/widget/saved_page.py).
//
// It plays Python's part for what the saved data can answer: the layer, sort, channel and
// number-of-maps controls switch among the saved views (`_grid` and `_unit` cut from a layer's
// all-channel tiles, as panels/grid.py's grid_view and panels/unit.py's unit_view cut them), and it answers the
// view's pulls with the state it holds. Whatever would need a model (another image, an
// occlusion sweep, a "looks for" run...) is disabled, its title saying why; the page itself
// carries the mark that says it is a snapshot without a kernel.

/**
 * @typedef {{ n: number, h: number, w: number, lo: number[], hi: number[] }} Maps
 * @typedef {{ statistics: object, rankings: Record<string, number[]>, maps: Maps,
 *   data: string, means: (number|null)[], unit_means: (number|null)[] }} SavedLayer
 *   One saved layer: its statistics, its channels under each sort mode, every channel's map
 *   as `encode_maps` tiles (`data`: base64), and each channel's mean as the grid and the
 *   channel view give it.
 * @typedef {{ esm: string, state: Record<string, any>, layers: Record<string, SavedLayer>,
 *   live: string[], held: string }} Saved
 *   What the page holds: the widget's bundle, the synced traits (bytes as {"__b64__": ...}),
 *   the layers, the controls that work offline (CSS selectors) and the title of the others.
 * @typedef {(content?: unknown, buffers?: unknown) => void} Listener
 */

const B64 = "__b64__";
/** The traits a person may change here; any other change is put back. */
const OFFLINE = new Set(["layer", "sort_by", "num_features", "channel", "color_scale", "error"]);
/** The payloads the saved layers make; the others are shown where they belong. */
const MADE = new Set(["_image", "_grid", "_unit"]);

/** Bytes from base64 text.
 * @param {string} text @returns {Uint8Array} */
export function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** `value` with every {"__b64__": ...} in it, at any depth, as a DataView (as hosts hand bytes).
 * @param {any} value @returns {any} */
export function revive(value) {
  if (!value || typeof value !== "object") return value;
  if (typeof value[B64] === "string") return new DataView(fromBase64(value[B64]).buffer);
  for (const key of Object.keys(value)) value[key] = revive(value[key]);
  return value;
}

/**
 * `_grid` of a saved layer: the first `num` channels of `order` (at most `max`), their tiles,
 * ranges and means, as panels/grid.py's grid_view makes it.
 * @param {SavedLayer} layer @param {Uint8Array} bytes the layer's tiles
 * @param {number[]} order @param {number} num @param {string} name @param {string} sortBy
 * @param {number} max
 */
export function cutGrid(layer, bytes, order, num, name, sortBy, max) {
  const { h, w, lo, hi } = layer.maps;
  const channels = order.slice(0, Math.min(Math.max(1, num), max));
  const size = h * w;
  const data = new Uint8Array(channels.length * size);
  channels.forEach((c, i) => data.set(bytes.subarray(c * size, (c + 1) * size), i * size));
  const meta = {
    n: channels.length, h, w,
    lo: channels.map((c) => lo[c]),
    hi: channels.map((c) => hi[c]),
    layer: name,
    sort_by: sortBy,
    channels,
    means: channels.map((c) => layer.means[c]),
    cols: Math.max(1, Math.ceil(Math.sqrt(channels.length))),
  };
  return { meta, data };
}

/**
 * `_unit` of a saved layer: channel `channel`'s map, as panels/unit.py's unit_view makes it.
 * @param {SavedLayer} layer @param {Uint8Array} bytes @param {number} channel @param {string} name
 */
export function cutUnit(layer, bytes, channel, name) {
  const { h, w, lo, hi } = layer.maps;
  const data = bytes.slice(channel * h * w, (channel + 1) * h * w);
  const meta = { n: 1, h, w, lo: [lo[channel]], hi: [hi[channel]], layer: name, channel, mean: layer.unit_means[channel] };
  return { meta, data };
}

/** A saved layer's ranking under `sortBy`, and the mode it is (Python's `ViewJob.order`:
 * by activation while there is no class contribution ranking).
 * @param {SavedLayer} layer @param {string} sortBy @param {string} fallback
 * @returns {[number[], string]} */
export function ranking(layer, sortBy, fallback) {
  const order = layer.rankings[sortBy];
  return order ? [order, sortBy] : [layer.rankings[fallback], fallback];
}

/**
 * What a panel shows where nothing was saved for it: `meta` emptied (no bytes, sizes 0), on
 * layer `layer` (and channel `channel`), its `note` saying where it was saved.
 * @param {Record<string, any>} meta @param {string} layer @param {number} channel
 */
export function notSaved(meta, layer, channel) {
  /** @type {Record<string, any>} */
  const empty = {};
  for (const [key, value] of Object.entries(meta)) {
    if (key === "data" || key === "chunked") continue;
    empty[key] = Array.isArray(value) ? [] : typeof value === "number" ? 0 : typeof value === "boolean" ? false : typeof value === "string" ? "" : value;
  }
  const at = meta.channel === undefined ? meta.layer : `${meta.layer}, channel ${meta.channel}`;
  Object.assign(empty, { layer, note: `saved for ${at} only: open the notebook for this one` });
  if (meta.channel !== undefined) empty.channel = channel;
  if (meta.index !== undefined) empty.index = meta.index; // the image of a batch
  return empty;
}

/**
 * The anywidget-like model of a saved page (get/set/save_changes/on/off/send), over `saved`.
 * @param {Saved} saved
 */
export function offlineModel(saved) {
  const state = revive(saved.state);
  const contract = state._contract;
  /** the payloads as saved: shown on the layer (and channel) they belong to */
  /** @type {Record<string, any>} */
  const kept = {};
  for (const name of contract.payloads) if (!MADE.has(name)) kept[name] = state[name];
  /** @type {Record<string, Uint8Array>} */
  const tiles = {};
  /** @type {Record<string, Listener[]>} */
  const handlers = {};
  /** @type {Record<string, unknown>} */
  let before = {}; // the values the person changed, as they were
  const fallback = contract.sort_modes[0];

  /** @param {string} event @param {...unknown} args */
  const emit = (event, ...args) => {
    for (const f of handlers[event] || []) f(...args);
  };
  /** @param {string} name */
  const bytesOf = (name) => (tiles[name] ||= fromBase64(saved.layers[name].data));
  /** @param {string} key @param {unknown} value @param {Set<string>} changed */
  const put = (key, value, changed) => {
    state[key] = value;
    changed.add(key);
  };
  /** @param {{ meta: object, data: Uint8Array }} cut */
  const payload = ({ meta, data }) => ({ ...meta, data: new DataView(data.buffer) });

  /** What Python would set after the person's changes `keys`: the view of the layer shown.
   * @param {Set<string>} keys @returns {Set<string>} the traits set */
  function answer(keys) {
    /** @type {Set<string>} */
    const changed = new Set();
    for (const key of keys) {
      if (!OFFLINE.has(key) || (key === "layer" && !saved.layers[state.layer])) put(key, before[key], changed);
    }
    const name = state.layer;
    const layer = saved.layers[name];
    const newLayer = keys.has("layer") && !changed.has("layer");
    const [order, mode] = ranking(layer, state.sort_by, fallback);
    if (newLayer) put("statistics", layer.statistics, changed);
    if (newLayer || keys.has("sort_by") || keys.has("num_features")) {
      put("_order", order, changed);
      put("_grid", payload(cutGrid(layer, bytesOf(name), order, state.num_features, name, mode, contract.max_feature_maps)), changed);
    }
    const count = layer.maps.n;
    if (newLayer || !(state.channel >= 0 && state.channel < count)) put("channel", order[0], changed);
    if (newLayer || keys.has("channel") || changed.has("channel")) {
      put("_unit", payload(cutUnit(layer, bytesOf(name), state.channel, name)), changed);
      showKept(changed);
    }
    return changed;
  }

  /** The saved payloads of the layer and channel shown; the others empty (class evidence:
   * saying where it was saved). @param {Set<string>} changed */
  function showKept(changed) {
    for (const [name, value] of Object.entries(kept)) {
      const mine = !value || ((value.layer === undefined || value.layer === state.layer) &&
        (value.channel === undefined || value.channel === state.channel));
      const shown = mine ? value : "note" in value ? notSaved(value, state.layer, state.channel) : {};
      if (state[name] !== shown) put(name, shown, changed);
    }
    const occlusion = state._occlusion || {};
    const position = occlusion.position && occlusion.layer === state.layer ? occlusion.position : [];
    if (JSON.stringify(state.position) !== JSON.stringify(position)) put("position", position, changed);
  }

  const model = {
    /** @param {string} key */
    get: (key) => state[key],
    /** @param {string} key @param {unknown} value */
    set(key, value) {
      if (!(key in before)) before[key] = state[key];
      state[key] = value;
      emit(`change:${key}`);
    },
    save_changes() {
      setTimeout(() => { // as a kernel would: later, every change of one answer together
        const keys = new Set(Object.keys(before));
        if (!keys.size) return;
        const changed = answer(keys);
        before = {};
        for (const key of changed) emit(`change:${key}`);
      }, 0);
    },
    /** A pull is answered with what the model holds: the page keeps its controls.
     * @param {{ type?: string, names?: string[] }} message */
    send(message) {
      if (message && message.type === contract.messages.pull) {
        const names = message.names || contract.payloads;
        setTimeout(() => emit("msg:custom", { type: contract.pushes.pulled, names }), 0);
      }
    },
    /** @param {string} event @param {Listener} f */
    on(event, f) {
      (handlers[event] ||= []).push(f);
    },
    /** @param {string} event @param {Listener} f */
    off(event, f) {
      handlers[event] = (handlers[event] || []).filter((g) => g !== f);
    },
    /** Show saved layer `name` (before the view renders: no events).
     * @param {string} name */
    start(name) {
      before = { layer: state.layer };
      state.layer = name;
      answer(new Set(["layer"]));
      before = {};
    },
    state,
  };
  return model;
}

/**
 * Disable every control of `root` that needs a kernel, and the sort modes the layer shown
 * has no ranking for, each with a title that says why; again whenever the view re-enables one.
 * @param {HTMLElement} root @param {Saved} saved @param {(key: string) => any} get
 */
export function holdControls(root, saved, get) {
  const live = saved.live.join(", ");
  const hold = () => {
    /** @type {NodeListOf<HTMLInputElement | HTMLSelectElement | HTMLButtonElement | HTMLTextAreaElement>} */
    const controls = root.querySelectorAll("input, select, button, textarea");
    for (const control of controls) {
      if (control.matches(live) || control.disabled) continue;
      control.disabled = true;
      control.title = saved.held;
      const label = control.closest("label");
      if (label) label.title = saved.held;
    }
    const layer = saved.layers[get("layer")];
    const sort = root.querySelector("select.fvz-sort");
    for (const option of sort instanceof HTMLSelectElement ? sort.options : []) {
      if (!layer || layer.rankings[option.value] || option.disabled) continue;
      option.disabled = true;
      option.title = `not saved for ${get("layer")}: no class evidence was computed for it before saving`;
    }
  };
  hold();
  const watch = new MutationObserver(hold);
  watch.observe(root, { subtree: true, childList: true, attributes: true, attributeFilter: ["disabled"] });
  return () => watch.disconnect();
}

/** Run the saved widget in the page: the saved state from `#fvz-saved`, in `#fvz-host`. */
export async function boot() {
  const host = /** @type {HTMLElement} */ (document.getElementById("fvz-host"));
  try {
    const element = /** @type {HTMLElement} */ (document.getElementById("fvz-saved"));
    /** @type {Saved} */
    const saved = JSON.parse(element.textContent || "{}");
    const model = offlineModel(saved);
    if (!saved.layers[model.state.layer]) model.start(Object.keys(saved.layers)[0]);
    const url = URL.createObjectURL(new Blob([saved.esm], { type: "text/javascript" }));
    const widget = (await import(url)).default;
    URL.revokeObjectURL(url);
    await widget.render({ model, el: host });
    holdControls(host, saved, model.get);
    host.dataset.ready = "1";
  } catch (error) {
    host.textContent = `This saved page could not start: ${error}`;
    throw error;
  }
}

if (typeof document !== "undefined" && document.getElementById("fvz-saved")) void boot();
