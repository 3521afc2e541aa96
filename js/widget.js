// featviz_widgets front end: a hand-written ES module, no build step, no runtime dependency.
//
// Python owns the state (traits); this view only renders it and writes back what the person
// chose. Feature maps arrive as uint8 tiles with a [lo, hi] range per tile (see
// featviz_widgets/_payload.py) and are painted on <canvas>; UI-only state (filter text, hover,
// cursor) never leaves the browser.

/**
 * @typedef {{ name: string, type: string, shape: number[], layout: string }} LayerEntry
 * @typedef {{ id: number, size: number, count: number }} ChunkedMeta
 * @typedef {{ n: number, h: number, w: number, lo: number[], hi: number[] }} MapsMeta
 * @typedef {MapsMeta & { layer: string, sort_by: string, channels: number[], means: (number|null)[],
 *   cols: number }} GridMeta
 * @typedef {MapsMeta & { layer: string, channel: number, mean: number|null }} UnitMeta
 * @typedef {MapsMeta & { layer: string, channel: number, position: number[], map_size: number[],
 *   done: number, total: number, complete: boolean, cancelled: boolean }} OcclusionMeta
 * @typedef {{ h: number, w: number, name: string, batch: number }} ImageMeta
 * @typedef {Record<string, number|number[]|null>} Stats
 * @typedef {{ sort_modes: string[], color_scales: string[], shared_scale: string,
 *   export_views: string[], max_feature_maps: number, max_upload_bytes: number,
 *   chunk_bytes: number, messages: Record<string, string>, pushes: Record<string, string>,
 *   cancellable_jobs: string[] }} Contract
 * @typedef {{
 *   layer: string, sort_by: string, channel: number,
 *   num_features: number, color_scale: string, all_layers: boolean,
 *   device: string, position: number[], compare: string[], statistics: Stats,
 *   compare_statistics: Record<string, Stats>, busy: boolean, progress: number,
 *   status: string, error: string, _layers: LayerEntry[], _devices: string[],
 *   _order: number[], _image: DataView, _image_meta: ImageMeta, _grid: DataView,
 *   _grid_meta: GridMeta, _unit: DataView, _unit_meta: UnitMeta, _occlusion: DataView,
 *   _occlusion_meta: OcclusionMeta, _contract: Contract, _job: string,
 * }} Model
 * The enums, limits and message kinds come from `_contract` (featviz_widgets/_protocol.py);
 * this file spells none of them. Messages to Python (model.send): {type: messages.upload, name,
 * id, index, count, size} + [a chunk of the file] | {type: messages.occlude} |
 * {type: messages.cancel} | {type: messages.resend, name}. From Python (msg:custom):
 * {type: pushes.chunk, name, id, index, count, size} + [a chunk of payload `name`], for a
 * payload whose metadata say `chunked` (its trait is then empty).
 */

// Colormaps are data, not chrome: the same in every theme (matplotlib's viridis and hot).
const VIRIDIS_STOPS = [
  0x440154, 0x48186a, 0x472d7b, 0x424086, 0x3b528b, 0x33638d, 0x2c728e, 0x26828e, 0x21918c,
  0x1fa088, 0x28ae80, 0x3fbc73, 0x5ec962, 0x84d44b, 0xaddc30, 0xd8e219, 0xfde725,
];

/** @returns {Uint8ClampedArray} 256 RGB triples interpolated from the stops. */
function viridisTable() {
  const table = new Uint8ClampedArray(256 * 3);
  const last = VIRIDIS_STOPS.length - 1;
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * last;
    const k = Math.min(Math.floor(x), last - 1);
    const f = x - k;
    for (let c = 0; c < 3; c++) {
      const shift = 16 - 8 * c;
      const a = (VIRIDIS_STOPS[k] >> shift) & 255;
      const b = (VIRIDIS_STOPS[k + 1] >> shift) & 255;
      table[i * 3 + c] = Math.round(a + (b - a) * f);
    }
  }
  return table;
}

/** @returns {Uint8ClampedArray} matplotlib's "hot": black, red, yellow, white. */
function hotTable() {
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    table[i * 3] = 255 * Math.min(1, Math.max(0, (x + 0.0416) / 0.3958));
    table[i * 3 + 1] = 255 * Math.min(1, Math.max(0, (x - 0.3651) / 0.3651));
    table[i * 3 + 2] = 255 * Math.min(1, Math.max(0, (x - 0.7460) / 0.2540));
  }
  return table;
}

const VIRIDIS = viridisTable();
const HOT = hotTable();
const LABEL_H = 15;
const GAP = 4;

/**
 * A Uint8Array view (no copy) of binary data from the model, whatever the host hands over: Bytes
 * traits arrive as DataView, custom-message buffers as DataView or (Colab) Uint8Array; an
 * ArrayBuffer or another typed array works too. Every binary read goes through here.
 */
function bytesOf(value) {
  if (!value) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (value instanceof DataView) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  return new Uint8Array(0);
}

/** The value of byte `q` of map `i` (see featviz_widgets/_payload.py). */
function dequantise(meta, i, q) {
  const lo = meta.lo[i] ?? 0;
  return lo + (q / 255) * ((meta.hi[i] ?? 0) - lo);
}

/** A number for people: 3 significant digits, no exponent for ordinary sizes. */
function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const a = Math.abs(value);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return value.toExponential(2);
  return value.toPrecision(3).replace(/\.?0+$/, (m) => (m.includes(".") ? "" : m));
}

/**
 * Paint N uint8 maps into one RGBA ImageData (a cols x rows mosaic at native resolution).
 * @param {Uint8Array} data @param {MapsMeta} meta @param {number} cols
 * @param {boolean} shared one colour range for every tile
 */
function mosaic(data, meta, cols, shared) {
  const { n, h, w, lo, hi } = meta;
  const rows = Math.ceil(n / cols);
  const image = new ImageData(Math.max(1, cols * w), Math.max(1, rows * h));
  const out = image.data;
  let gmin = Infinity;
  let gmax = -Infinity;
  for (let i = 0; i < n; i++) {
    gmin = Math.min(gmin, lo[i] ?? 0);
    gmax = Math.max(gmax, hi[i] ?? 0);
  }
  const lut = new Uint8Array(256);
  for (let i = 0; i < n; i++) {
    for (let q = 0; q < 256; q++) {
      if (!shared) lut[q] = q;
      else if (gmax > gmin) lut[q] = Math.round(((dequantise(meta, i, q) - gmin) / (gmax - gmin)) * 255);
      else lut[q] = 0;
    }
    const ox = (i % cols) * w;
    const oy = Math.floor(i / cols) * h;
    const base = i * h * w;
    for (let y = 0; y < h; y++) {
      let o = ((oy + y) * cols * w + ox) * 4;
      let s = base + y * w;
      for (let x = 0; x < w; x++, o += 4, s++) {
        const c = lut[data[s]] * 3;
        out[o] = VIRIDIS[c];
        out[o + 1] = VIRIDIS[c + 1];
        out[o + 2] = VIRIDIS[c + 2];
        out[o + 3] = 255;
      }
    }
  }
  return image;
}

/** An off-screen canvas holding `image`, to be scaled with drawImage. */
function bitmapCanvas(image) {
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

/** Make `canvas` draw crisply at its CSS size; returns its 2-D context scaled to CSS px. */
function fitCanvas(canvas, cssWidth, cssHeight) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(cssWidth * ratio));
  const height = Math.max(1, Math.round(cssHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.imageSmoothingEnabled = false;
  return ctx;
}

function h(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children) node.append(child);
  return node;
}

/** Bump a canvas's paint counter and stamp the time (read by the tests and the benchmark). */
function stamp(canvas, state) {
  canvas.dataset.paints = String(Number(canvas.dataset.paints || 0) + 1);
  canvas.dataset.paintedAt = String(performance.now());
  canvas.dataset.state = state;
}

/** @param {{ model: import("@anywidget/types").AnyModel<Model>, el: HTMLElement }} ctx */
function render({ model, el }) {
  const get = (key) => model.get(key);
  const save = (values) => {
    for (const [key, value] of Object.entries(values)) model.set(key, value);
    model.save_changes();
  };
  /** @type {Contract} */
  const contract = get("_contract");
  const messages = contract.messages;
  const pushes = contract.pushes;

  // Payloads larger than one message may carry arrive in chunks (pushes.chunk) before their
  // metadata, which then say `chunked`; the trait itself is empty.
  /** @type {Record<string, {id: number, count: number, size: number, parts: Uint8Array[]}>} */
  const incoming = {};
  /** @type {Record<string, {id: number, data: Uint8Array}>} */
  const received = {};
  /** The bytes of payload trait `name`: its value, or the chunks its metadata name. */
  function payload(name, value, meta) {
    const chunked = meta && meta.chunked;
    if (!chunked) return bytesOf(value);
    const got = received[name];
    return got && got.id === chunked.id ? got.data : new Uint8Array(0);
  }

  // ------------------------------------------------------------------ DOM
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
  const occludeButton = h("button", { type: "button", class: "fvz-occlude", text: "Run occlusion" });
  const cancelButton = h("button", { type: "button", class: "fvz-cancel", text: "Cancel", disabled: true });
  const exportView = h("select", { class: "fvz-export-view", "aria-label": "View to export" },
    contract.export_views.map((v) => h("option", { value: v, text: v })));
  const exportButton = h("button", { type: "button", class: "fvz-export", text: "Save PNG" });
  const progress = h("progress", { class: "fvz-progress", max: 1 });
  const statusText = h("span", { class: "fvz-status-text" });
  const errorText = h("span", { class: "fvz-error-text" });
  const errorClose = h("button", { type: "button", class: "fvz-error-close", "aria-label": "Dismiss", text: "×" });
  const errorBox = h("div", { class: "fvz-error", role: "alert", hidden: true }, [errorText, errorClose]);
  const gridCanvas = h("canvas", { class: "fvz-grid", tabindex: 0, "aria-label": "Feature maps: click or use the arrow keys to select a channel" });
  const gridCaption = h("span", { class: "fvz-caption" });
  const inputCanvas = h("canvas", { class: "fvz-input", "aria-label": "Input image as the model sees it" });
  const unitCanvas = h("canvas", { class: "fvz-unit", tabindex: 0, "aria-label": "Selected channel: click or use arrows and Enter to pick a unit for occlusion" });
  const unitCaption = h("span", { class: "fvz-caption" });
  const occCanvas = h("canvas", { class: "fvz-occlusion", "aria-label": "Occlusion sensitivity map" });
  const occCaption = h("span", { class: "fvz-caption" });
  const statsList = h("dl", { class: "fvz-stats" });
  const chart = h("div", { class: "fvz-chart" });
  const compareButton = h("button", { type: "button", class: "fvz-compare-toggle" });
  const tooltip = h("div", { class: "fvz-tooltip", role: "tooltip", hidden: true });
  // the canvas that shows each of the contract's export views (tests/test_contract.py)
  const exportCanvases = { grid: gridCanvas, channel: unitCanvas, occlusion: occCanvas };

  const field = (label, ...controls) => h("label", { class: "fvz-field" }, [h("span", { text: label }), ...controls]);
  const deviceField = field("Device", deviceSelect);
  const root = h("div", { class: "fvz" }, [
    h("div", { class: "fvz-toolbar" }, [
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
      imageName,
      occludeButton,
      cancelButton,
      h("span", { class: "fvz-spacer" }),
      field("Export", exportView),
      exportButton,
    ]),
    h("div", { class: "fvz-status", role: "status" }, [progress, statusText]),
    errorBox,
    h("div", { class: "fvz-main" }, [
      h("section", { class: "fvz-panel fvz-grid-panel" }, [h("h4", {}, [h("span", { text: "Feature maps " }), gridCaption]), gridCanvas]),
      h("section", { class: "fvz-panel fvz-side" }, [
        h("div", { class: "fvz-pair" }, [
          h("figure", {}, [h("figcaption", { text: "Input (as the model sees it)" }), inputCanvas]),
          h("figure", {}, [h("figcaption", {}, [unitCaption]), unitCanvas]),
        ]),
        h("figure", {}, [h("figcaption", {}, [occCaption]), occCanvas]),
      ]),
    ]),
    h("div", { class: "fvz-bottom" }, [
      h("section", { class: "fvz-panel" }, [h("h4", { text: "Layer statistics" }), statsList]),
      h("section", { class: "fvz-panel fvz-compare" }, [h("h4", {}, [h("span", { text: "Compare layers " }), compareButton]), chart]),
    ]),
    tooltip,
  ]);
  el.append(root);

  // ------------------------------------------------------------------ view-local state
  /** @type {{ canvas: HTMLCanvasElement, cols: number, tile: number, n: number, key: string } | null} */
  let gridCache = null;
  /** @type {ImageBitmap | null} */
  let picture = null;
  let pictureToken = 0;
  let cursor = null; // keyboard cursor on the unit view: [h, w]
  let layout = { grid: 300, side: 300 };
  /** Optimistic channel view painted from the grid tile while Python's payload is on its way. */
  let preview = null;

  const css = (name, fallback) => getComputedStyle(root).getPropertyValue(name).trim() || fallback;

  // ------------------------------------------------------------------ controls <- model
  function syncLayers() {
    const layers = get("_layers") || [];
    const current = get("layer");
    const needle = filter.value.trim().toLowerCase();
    layerSelect.replaceChildren();
    for (const info of layers) {
      const hay = `${info.name} ${info.type}`.toLowerCase();
      if (needle && !hay.includes(needle) && info.name !== current) continue;
      const shape = info.shape.join("×");
      layerSelect.append(h("option", { value: info.name, text: `${info.name} · ${shape}`, title: `${info.type} (${info.layout})` }));
    }
    if (current && ![...layerSelect.options].some((o) => o.value === current)) {
      layerSelect.append(h("option", { value: current, text: current }));
    }
    layerSelect.value = current;
    allToggle.checked = !!get("all_layers");
  }

  function syncChannels() {
    const order = get("_order") || [];
    const options = document.createDocumentFragment();
    order.forEach((c, rank) => options.append(new Option(`#${rank + 1}: ch ${c}`, String(c))));
    channelSelect.replaceChildren(options);
    channelSelect.value = String(get("channel"));
  }

  function syncSimple() {
    sortSelect.value = get("sort_by");
    numInput.value = String(get("num_features"));
    scaleSelect.value = get("color_scale");
    channelSelect.value = String(get("channel"));
    const devices = get("_devices") || [];
    deviceSelect.replaceChildren(...devices.map((d) => h("option", { value: d, text: d })));
    deviceSelect.value = get("device");
    deviceField.hidden = devices.length < 2;
    deviceLabel.textContent = devices.length < 2 ? `device: ${get("device")}` : "";
    const meta = get("_image_meta") || {};
    imageName.textContent = meta.name ? `${meta.name} (${meta.w}×${meta.h})` : meta.w ? `${meta.w}×${meta.h}` : "";
    const inCompare = (get("compare") || []).includes(get("layer"));
    compareButton.textContent = inCompare ? "− remove current layer" : "+ add current layer";
  }

  function syncStatus() {
    const busy = !!get("busy");
    const value = get("progress");
    root.classList.toggle("fvz-busy", busy);
    root.dataset.busy = busy ? "1" : "0";
    progress.hidden = !busy;
    if (busy && value >= 0) progress.value = value;
    else progress.removeAttribute("value");
    statusText.textContent = busy ? get("status") || "working…" : "";
    cancelButton.disabled = !(busy && contract.cancellable_jobs.includes(get("_job")));
    const error = get("error");
    errorBox.hidden = !error;
    errorText.textContent = error || "";
  }

  // ------------------------------------------------------------------ painting
  function paintGrid() {
    const meta = get("_grid_meta");
    const data = payload("_grid", get("_grid"), get("_grid_meta"));
    const width = layout.grid;
    if (!meta || !meta.n || data.length < meta.n * meta.h * meta.w) {
      fitCanvas(gridCanvas, width, 40).clearRect(0, 0, width, 40);
      gridCaption.textContent = "";
      return;
    }
    const scale = get("color_scale");
    const shared = scale === contract.shared_scale;
    const cols = meta.cols;
    const rows = Math.ceil(meta.n / cols);
    const tile = Math.max(8, Math.floor((width - GAP * (cols - 1)) / cols));
    const key = `${meta.layer}|${meta.sort_by}|${meta.channels.join(",")}|${shared}|${meta.lo.join(",")}`;
    if (!gridCache || gridCache.key !== key) {
      gridCache = { canvas: bitmapCanvas(mosaic(data, meta, cols, shared)), cols, tile, n: meta.n, key };
    }
    gridCache.tile = tile;
    const height = rows * (tile + LABEL_H + GAP);
    const ctx = fitCanvas(gridCanvas, width, height);
    ctx.clearRect(0, 0, width, height);
    const fg = css("--fvz-fg", "#222");
    const accent = css("--fvz-accent", "#e91e63");
    const channel = get("channel");
    ctx.font = `11px ${css("--fvz-font", "sans-serif")}`;
    ctx.textBaseline = "bottom";
    for (let i = 0; i < meta.n; i++) {
      const x = (i % cols) * (tile + GAP);
      const y = Math.floor(i / cols) * (tile + LABEL_H + GAP) + LABEL_H;
      ctx.drawImage(gridCache.canvas, (i % cols) * meta.w, Math.floor(i / cols) * meta.h, meta.w, meta.h, x, y, tile, tile);
      ctx.fillStyle = fg;
      const label = `ch ${meta.channels[i]}  μ ${fmt(meta.means[i])}`;
      ctx.fillText(label, x, y - 2, tile);
      if (meta.channels[i] === channel) {
        ctx.strokeStyle = accent;
        ctx.lineWidth = 3;
        ctx.strokeRect(x + 1.5, y + 1.5, tile - 3, tile - 3);
      }
    }
    gridCaption.textContent = `${meta.layer}: top ${meta.n} by ${meta.sort_by}, ${meta.h}×${meta.w}, ${scale} scale`;
    gridCanvas.dataset.channels = meta.channels.join(",");
    stamp(gridCanvas, `${meta.layer}|${meta.sort_by}|${meta.n}|${scale}|${channel}|${meta.channels.slice(0, 4).join(",")}`);
  }

  function sideSize() {
    const meta = get("_image_meta") || {};
    const aspect = meta.w && meta.h ? meta.h / meta.w : 1;
    const w = Math.max(80, Math.floor((layout.side - GAP * 2) / 2));
    return [w, Math.round(w * aspect)];
  }

  function drawMarker(ctx, cx, cy, size) {
    ctx.save();
    ctx.strokeStyle = "#00e5ff";
    ctx.lineWidth = 2.5;
    ctx.beginPath();
    ctx.moveTo(cx - size, cy);
    ctx.lineTo(cx + size, cy);
    ctx.moveTo(cx, cy - size);
    ctx.lineTo(cx, cy + size);
    ctx.stroke();
    ctx.restore();
  }

  /** The selected unit (h, w) on the layer map, or its centre when none was chosen. */
  function unitPosition() {
    const pos = get("position") || [];
    const meta = get("_unit_meta");
    if (pos.length === 2) return pos;
    if (meta && meta.h) return [Math.floor(meta.h / 2), Math.floor(meta.w / 2)];
    return null;
  }

  function markerAt(ctx, pos, mapH, mapW, width, height) {
    if (!pos) return;
    drawMarker(ctx, ((pos[1] + 0.5) * width) / mapW, ((pos[0] + 0.5) * height) / mapH, Math.max(6, width / 18));
  }

  function paintInput() {
    const [w, hgt] = sideSize();
    const ctx = fitCanvas(inputCanvas, w, hgt);
    ctx.clearRect(0, 0, w, hgt);
    if (!picture) return;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(picture, 0, 0, w, hgt);
    const meta = get("_unit_meta");
    if (meta && meta.h) markerAt(ctx, unitPosition(), meta.h, meta.w, w, hgt);
    stamp(inputCanvas, `${(get("_image_meta") || {}).name || ""}|${pictureToken}`);
  }

  function paintUnit() {
    const [w, hgt] = sideSize();
    const ctx = fitCanvas(unitCanvas, w, hgt);
    ctx.clearRect(0, 0, w, hgt);
    let meta = get("_unit_meta");
    let data = payload("_unit", get("_unit"), get("_unit_meta"));
    const channel = get("channel");
    let source = "python";
    if (preview && preview.channel === channel && (!meta || meta.channel !== channel)) {
      ({ meta, data } = preview);
      source = "preview";
    }
    if (!meta || !meta.n || data.length < meta.h * meta.w) return;
    ctx.drawImage(bitmapCanvas(mosaic(data, meta, 1, false)), 0, 0, w, hgt);
    markerAt(ctx, cursor || unitPosition(), meta.h, meta.w, w, hgt);
    unitCaption.textContent = `Channel ${meta.channel} (μ ${fmt(meta.mean)}): click a unit`;
    unitCanvas.dataset.source = source;
    stamp(unitCanvas, `${meta.layer}|${meta.channel}`);
  }

  function paintOcclusion() {
    const [w, hgt] = sideSize();
    const bar = 14;
    const labels = 34;
    const width = w + GAP + bar + labels;
    const ctx = fitCanvas(occCanvas, width, hgt);
    ctx.clearRect(0, 0, width, hgt);
    const meta = get("_occlusion_meta");
    const data = payload("_occlusion", get("_occlusion"), get("_occlusion_meta"));
    const fg = css("--fvz-fg", "#222");
    ctx.fillStyle = css("--fvz-panel", "#f3f3f3");
    ctx.fillRect(0, 0, w, hgt);
    if (picture) {
      ctx.imageSmoothingEnabled = true;
      ctx.globalAlpha = 0.45;
      ctx.drawImage(picture, 0, 0, w, hgt);
      ctx.globalAlpha = 1;
    }
    // colour bar: 1 at the top, 0 at the bottom
    for (let y = 0; y < hgt; y++) {
      const c = Math.round((1 - y / Math.max(1, hgt - 1)) * 255) * 3;
      ctx.fillStyle = `rgb(${HOT[c]},${HOT[c + 1]},${HOT[c + 2]})`;
      ctx.fillRect(w + GAP, y, bar, 1);
    }
    ctx.fillStyle = fg;
    ctx.font = `10px ${css("--fvz-font", "sans-serif")}`;
    ctx.textBaseline = "top";
    ctx.fillText("1", w + GAP + bar + 3, 0);
    ctx.textBaseline = "bottom";
    ctx.fillText("0", w + GAP + bar + 3, hgt);
    ctx.save();
    ctx.translate(w + GAP + bar + 14, hgt / 2);
    ctx.rotate(Math.PI / 2);
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("|Δunit| / max", 0, -4);
    ctx.restore();
    if (!meta || !meta.n || data.length < meta.h * meta.w) {
      occCaption.textContent = "Occlusion: click a unit on the channel view, or Run occlusion";
      stamp(occCanvas, "empty");
      return;
    }
    const image = new ImageData(meta.w, meta.h);
    for (let i = 0, o = 0; i < meta.w * meta.h; i++, o += 4) {
      const v = Math.min(1, Math.max(0, dequantise(meta, 0, data[i])));
      const c = Math.round(v * 255) * 3;
      image.data[o] = HOT[c];
      image.data[o + 1] = HOT[c + 1];
      image.data[o + 2] = HOT[c + 2];
      image.data[o + 3] = 255;
    }
    ctx.globalAlpha = 0.65;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(bitmapCanvas(image), 0, 0, w, hgt);
    ctx.globalAlpha = 1;
    markerAt(ctx, meta.position, meta.map_size[0], meta.map_size[1], w, hgt);
    const state = meta.complete ? "done" : meta.cancelled ? `cancelled at ${meta.done}/${meta.total}` : `${meta.done}/${meta.total}…`;
    occCaption.textContent = `Occlusion: ${meta.layer}, ch ${meta.channel} at (${meta.position.join(", ")}) — ${state}`;
    stamp(occCanvas, `${meta.layer}|${meta.channel}|${meta.position.join(",")}|${meta.done}/${meta.total}`);
  }

  function paintStats() {
    const stats = get("statistics") || {};
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
    statsList.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
  }

  function paintChart() {
    const all = get("compare_statistics") || {};
    const names = (get("compare") || []).filter((n) => all[n]);
    const current = get("layer");
    const panels = [
      ["mean", "Mean activation"],
      ["std", "Std"],
      ["sparsity", "Sparsity"],
      ["active_channels", "Active channels"],
    ];
    const ns = "http://www.w3.org/2000/svg";
    const svgEl = (tag, attrs, text) => {
      const node = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
      if (text !== undefined) node.textContent = text;
      return node;
    };
    chart.replaceChildren();
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
        label.addEventListener("click", () => save({ layer: name }));
        svg.append(label);
      });
      chart.append(svg);
    }
  }

  function paintAll() {
    paintGrid();
    paintInput();
    paintUnit();
    paintOcclusion();
    paintChart();
  }

  async function loadPicture() {
    const token = ++pictureToken;
    const data = payload("_image", get("_image"), get("_image_meta"));
    if (!data.length) {
      picture = null;
      return;
    }
    try {
      const bitmap = await createImageBitmap(new Blob([data.slice()], { type: "image/png" }));
      if (token !== pictureToken) return;
      picture = bitmap;
    } catch {
      picture = null;
    }
    paintInput();
    paintOcclusion();
  }

  // ------------------------------------------------------------------ coalesced repaints
  // Paint functions run at most once per microtask, canvases first: they are what a person
  // waits for. A ranking of thousands of channels is a big <select>: rebuilt after the paint.
  const paintOrder = [paintGrid, paintUnit, paintInput, paintOcclusion, syncStatus, syncSimple, syncLayers, paintStats, paintChart];
  const dirty = new Set();
  let scheduled = false;
  let channelsTimer = 0;
  function schedule(...parts) {
    for (const p of parts) dirty.add(p);
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      const todo = new Set(dirty);
      dirty.clear();
      for (const paint of paintOrder) if (todo.has(paint)) paint();
      if (todo.has(syncChannels)) {
        clearTimeout(channelsTimer);
        channelsTimer = setTimeout(syncChannels, 0);
      }
    });
  }

  // what a complete chunked payload repaints
  const chunkedPaints = {
    _image: () => loadPicture(),
    _grid: () => schedule(paintGrid),
    _unit: () => schedule(paintUnit, paintInput),
    _occlusion: () => schedule(paintOcclusion),
  };
  function onCustom(content, buffers) {
    if (!content || content.type !== pushes.chunk || !(content.name in chunkedPaints)) return;
    const { name, id, index, count, size } = content;
    if (index === 0) incoming[name] = { id, count, size, parts: [] };
    const part = incoming[name];
    if (!part || part.id !== id || index !== part.parts.length) {
      delete incoming[name]; // a chunk went missing: ask for the payload again
      model.send({ type: messages.resend, name });
      return;
    }
    part.parts.push(bytesOf(buffers && buffers[0]));
    if (part.parts.length < count) return;
    delete incoming[name];
    const data = new Uint8Array(size);
    let at = 0;
    for (const piece of part.parts) {
      if (at + piece.length > size) return;
      data.set(piece, at);
      at += piece.length;
    }
    if (at !== size) return;
    received[name] = { id, data };
    chunkedPaints[name]();
  }

  const listeners = {
    "msg:custom": onCustom,
    "change:_layers": () => schedule(syncLayers),
    "change:all_layers": () => schedule(syncLayers),
    "change:layer": () => schedule(syncLayers, syncSimple, paintChart),
    "change:_order": () => schedule(syncChannels),
    "change:sort_by": () => schedule(syncSimple),
    "change:num_features": () => schedule(syncSimple),
    "change:color_scale": () => schedule(syncSimple, paintGrid, paintUnit),
    "change:channel": () => schedule(syncSimple, paintGrid, paintUnit),
    "change:device": () => schedule(syncSimple),
    "change:_devices": () => schedule(syncSimple),
    "change:compare": () => schedule(syncSimple, paintChart),
    "change:_image_meta": () => schedule(syncSimple),
    "change:_image": () => loadPicture(),
    "change:_grid": () => schedule(paintGrid),
    "change:_grid_meta": () => schedule(paintGrid),
    "change:_unit": () => schedule(paintUnit, paintInput),
    "change:_unit_meta": () => schedule(paintUnit, paintInput),
    "change:position": () => {
      cursor = null;
      schedule(paintUnit, paintInput);
    },
    "change:_occlusion": () => schedule(paintOcclusion),
    "change:_occlusion_meta": () => schedule(paintOcclusion),
    "change:statistics": () => schedule(paintStats),
    "change:compare_statistics": () => schedule(paintChart),
    "change:busy": () => schedule(syncStatus),
    "change:_job": () => schedule(syncStatus),
    "change:progress": () => schedule(syncStatus),
    "change:status": () => schedule(syncStatus),
    "change:error": () => schedule(syncStatus),
  };
  for (const [event, callback] of Object.entries(listeners)) model.on(event, callback);

  // ------------------------------------------------------------------ controls -> model
  filter.addEventListener("input", () => syncLayers());
  layerSelect.addEventListener("change", () => save({ layer: layerSelect.value }));
  allToggle.addEventListener("change", () => save({ all_layers: allToggle.checked }));
  sortSelect.addEventListener("change", () => save({ sort_by: sortSelect.value }));
  channelSelect.addEventListener("change", () => selectChannel(Number(channelSelect.value)));
  scaleSelect.addEventListener("change", () => save({ color_scale: scaleSelect.value }));
  deviceSelect.addEventListener("change", () => save({ device: deviceSelect.value }));
  let numTimer = 0;
  const commitNum = () => {
    clearTimeout(numTimer);
    const value = Math.round(Number(numInput.value));
    if (Number.isFinite(value) && value >= 1 && value !== get("num_features")) save({ num_features: value });
  };
  numInput.addEventListener("input", () => {
    clearTimeout(numTimer);
    numTimer = setTimeout(commitNum, 300);
  });
  numInput.addEventListener("change", commitNum);
  occludeButton.addEventListener("click", () => model.send({ type: messages.occlude }));
  cancelButton.addEventListener("click", () => model.send({ type: messages.cancel }));
  errorClose.addEventListener("click", () => save({ error: "" }));
  compareButton.addEventListener("click", () => {
    const names = [...(get("compare") || [])];
    const layer = get("layer");
    const at = names.indexOf(layer);
    if (at >= 0) names.splice(at, 1);
    else names.push(layer);
    if (names.length) save({ compare: names });
  });
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    if (file.size > contract.max_upload_bytes) {
      errorBox.hidden = false;
      const mb = Math.round(contract.max_upload_bytes / 2 ** 20);
      errorText.textContent = `${file.name} is larger than ${mb} MB; please pick a smaller image.`;
      return;
    }
    // in chunks of at most contract.chunk_bytes: large messages drop some hosts' connections
    const buffer = await file.arrayBuffer();
    const size = buffer.byteLength;
    const count = Math.max(1, Math.ceil(size / contract.chunk_bytes));
    const id = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
    for (let index = 0; index < count; index++) {
      const piece = buffer.slice(index * contract.chunk_bytes, (index + 1) * contract.chunk_bytes);
      model.send({ type: messages.upload, name: file.name, id, index, count, size }, undefined, [piece]);
    }
  });
  exportButton.addEventListener("click", () => {
    const view = exportView.value;
    const canvas = exportCanvases[view];
    const link = document.createElement("a");
    link.href = canvas.toDataURL("image/png");
    link.download = `${["featviz", get("layer"), view].filter(Boolean).join("-")}.png`.replace(/[^\w.-]+/g, "_");
    root.append(link);
    link.click();
    link.remove();
  });

  /** Select a channel; paint it at once from the grid tile when it is there. */
  function selectChannel(channel) {
    const meta = get("_grid_meta");
    const at = meta && meta.channels ? meta.channels.indexOf(channel) : -1;
    if (at >= 0) {
      const size = meta.h * meta.w;
      const data = payload("_grid", get("_grid"), get("_grid_meta")).slice(at * size, (at + 1) * size);
      const one = { n: 1, h: meta.h, w: meta.w, lo: [meta.lo[at]], hi: [meta.hi[at]], layer: meta.layer, channel, mean: meta.means[at] };
      preview = { channel, meta: one, data };
    } else {
      preview = null;
    }
    save({ channel });
  }

  /** Hover shows `describe(hit)` in the tooltip; a click on a hit calls `select(hit)`. */
  function pointer(canvas, hitTest, describe, select) {
    canvas.addEventListener("mousemove", (event) => {
      const hit = hitTest(event);
      if (hit) showTooltip(event, describe(hit));
      else tooltip.hidden = true;
    });
    canvas.addEventListener("mouseleave", () => (tooltip.hidden = true));
    canvas.addEventListener("click", (event) => {
      const hit = hitTest(event);
      if (hit) select(hit);
    });
  }

  // grid: hover shows the value, click / arrows select a channel
  function gridHit(event) {
    const meta = get("_grid_meta");
    if (!meta || !meta.n || !gridCache) return null;
    const rect = gridCanvas.getBoundingClientRect();
    const x = event.clientX - rect.left;
    const y = event.clientY - rect.top;
    const tile = gridCache.tile;
    const col = Math.floor(x / (tile + GAP));
    const row = Math.floor(y / (tile + LABEL_H + GAP));
    const tx = x - col * (tile + GAP);
    const ty = y - row * (tile + LABEL_H + GAP) - LABEL_H;
    const i = row * gridCache.cols + col;
    if (col >= gridCache.cols || i >= meta.n || tx < 0 || tx >= tile || ty < 0 || ty >= tile) return null;
    const mx = Math.min(meta.w - 1, Math.floor((tx / tile) * meta.w));
    const my = Math.min(meta.h - 1, Math.floor((ty / tile) * meta.h));
    const q = payload("_grid", get("_grid"), get("_grid_meta"))[i * meta.h * meta.w + my * meta.w + mx];
    return { i, channel: meta.channels[i], mx, my, value: dequantise(meta, i, q) };
  }

  function showTooltip(event, text) {
    const box = root.getBoundingClientRect();
    tooltip.hidden = false;
    tooltip.textContent = text;
    tooltip.style.left = `${event.clientX - box.left + 12}px`;
    tooltip.style.top = `${event.clientY - box.top + 12}px`;
  }

  pointer(gridCanvas, gridHit, (hit) => `ch ${hit.channel} (${hit.my}, ${hit.mx}): ${fmt(hit.value)}`, (hit) => selectChannel(hit.channel));
  gridCanvas.addEventListener("keydown", (event) => {
    const meta = get("_grid_meta");
    if (!meta || !meta.n || !gridCache) return;
    const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -gridCache.cols, ArrowDown: gridCache.cols }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    const at = Math.max(0, meta.channels.indexOf(get("channel")));
    const next = Math.min(meta.n - 1, Math.max(0, at + step));
    selectChannel(meta.channels[next]);
  });

  // channel view: hover shows the value, click / Enter selects the unit (runs occlusion)
  function unitHit(event) {
    const meta = get("_unit_meta");
    if (!meta || !meta.n) return null;
    const rect = unitCanvas.getBoundingClientRect();
    const mx = Math.floor(((event.clientX - rect.left) / rect.width) * meta.w);
    const my = Math.floor(((event.clientY - rect.top) / rect.height) * meta.h);
    if (mx < 0 || my < 0 || mx >= meta.w || my >= meta.h) return null;
    const q = payload("_unit", get("_unit"), get("_unit_meta"))[my * meta.w + mx];
    return { pos: [my, mx], value: dequantise(meta, 0, q) };
  }

  function selectUnit(pos) {
    const current = get("position") || [];
    if (current.length === 2 && current[0] === pos[0] && current[1] === pos[1]) model.send({ type: messages.occlude });
    else save({ position: pos });
  }

  pointer(unitCanvas, unitHit, (hit) => `ch ${get("channel")} (${hit.pos[0]}, ${hit.pos[1]}): ${fmt(hit.value)}`, (hit) => selectUnit(hit.pos));
  unitCanvas.addEventListener("keydown", (event) => {
    const meta = get("_unit_meta");
    if (!meta || !meta.n) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      selectUnit(cursor || unitPosition());
      return;
    }
    const move = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] }[event.key];
    if (!move) return;
    event.preventDefault();
    const [y, x] = cursor || unitPosition();
    cursor = [Math.min(meta.h - 1, Math.max(0, y + move[0])), Math.min(meta.w - 1, Math.max(0, x + move[1]))];
    paintUnit();
  });

  // ------------------------------------------------------------------ size
  function measure() {
    const width = root.clientWidth;
    if (!width) return false;
    const wide = width >= 720;
    const grid = wide ? Math.floor(width * 0.5) - 16 : width - 16;
    const side = wide ? width - grid - 40 : width - 16;
    const changed = grid !== layout.grid || side !== layout.side;
    layout = { grid, side };
    root.classList.toggle("fvz-narrow", !wide);
    return changed;
  }
  const observer = new ResizeObserver(() => {
    if (measure()) paintAll();
  });
  observer.observe(root);

  // ------------------------------------------------------------------ theme
  // Canvas text and marks take the theme's colours when they are painted: repaint them when the
  // host changes theme (JupyterLab's body data attributes, VS Code's body classes, the OS).
  const themeKey = () => ["--fvz-fg", "--fvz-panel", "--fvz-accent", "--fvz-font"].map((v) => css(v, "")).join("|");
  let painted = themeKey();
  const onTheme = () => {
    const key = themeKey();
    if (key === painted) return;
    painted = key;
    schedule(paintGrid, paintOcclusion);
  };
  const themeObserver = new MutationObserver(onTheme);
  themeObserver.observe(document.body, { attributes: true, attributeFilter: ["class", "data-jp-theme-name", "data-jp-theme-light"] });
  const darkScheme = window.matchMedia("(prefers-color-scheme: dark)");
  darkScheme.addEventListener("change", onTheme);

  // a view opened after a chunked payload was sent (a second view, a reload) asks for it again
  for (const name of Object.keys(chunkedPaints)) {
    const meta = model.get(`${name}_meta`);
    if (meta && meta.chunked) model.send({ type: messages.resend, name });
  }

  measure();
  syncLayers();
  syncChannels();
  syncSimple();
  syncStatus();
  paintStats();
  paintAll();
  loadPicture();

  return () => {
    observer.disconnect();
    themeObserver.disconnect();
    darkScheme.removeEventListener("change", onTheme);
    clearTimeout(numTimer);
    clearTimeout(channelsTimer);
    for (const [event, callback] of Object.entries(listeners)) model.off(event, callback);
    root.remove();
  };
}

export default { render };
