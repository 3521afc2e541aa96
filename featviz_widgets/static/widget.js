// featviz_widgets front end, generated from js/src by `npm run build` in js/: do not edit, edit js/src instead.

// src/colours.js
var VIRIDIS_STOPS = [
  4456788,
  4724842,
  4664699,
  4341894,
  3887755,
  3367821,
  2912910,
  2523790,
  2199948,
  2072712,
  2666112,
  4177011,
  6211938,
  8705099,
  11394096,
  14213657,
  16639781
];
function viridisTable() {
  const table = new Uint8ClampedArray(256 * 3);
  const last = VIRIDIS_STOPS.length - 1;
  for (let i = 0; i < 256; i++) {
    const x = i / 255 * last;
    const k = Math.min(Math.floor(x), last - 1);
    const f = x - k;
    for (let c = 0; c < 3; c++) {
      const shift = 16 - 8 * c;
      const a = VIRIDIS_STOPS[k] >> shift & 255;
      const b = VIRIDIS_STOPS[k + 1] >> shift & 255;
      table[i * 3 + c] = Math.round(a + (b - a) * f);
    }
  }
  return table;
}
function hotTable() {
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    table[i * 3] = 255 * Math.min(1, Math.max(0, (x + 0.0416) / 0.3958));
    table[i * 3 + 1] = 255 * Math.min(1, Math.max(0, (x - 0.3651) / 0.3651));
    table[i * 3 + 2] = 255 * Math.min(1, Math.max(0, (x - 0.746) / 0.254));
  }
  return table;
}
var VIRIDIS = viridisTable();
var HOT = hotTable();
function jetTable() {
  const table = new Uint8ClampedArray(256 * 3);
  const ramp = (x) => 255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * x)));
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    table[i * 3] = ramp(x - 0.75);
    table[i * 3 + 1] = ramp(x - 0.5);
    table[i * 3 + 2] = ramp(x - 0.25);
  }
  return table;
}
var JET = jetTable();

// src/numbers.js
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
function dequantise(meta, i, q) {
  const lo = meta.lo[i] ?? 0;
  return lo + q / 255 * ((meta.hi[i] ?? 0) - lo);
}
function hasMaps(meta) {
  return !!meta && !!meta.n;
}
function fmt(value) {
  if (value === null || value === void 0 || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const a = Math.abs(value);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return value.toExponential(2);
  return value.toPrecision(3).replace(/\.?0+$/, (m) => m.includes(".") ? "" : m);
}

// src/canvas.js
var LABEL_H = 15;
var GAP = 4;
function mosaic(data, meta, cols, shared) {
  const { n, h: h2, w, lo, hi } = meta;
  const rows = Math.ceil(n / cols);
  const image = new ImageData(Math.max(1, cols * w), Math.max(1, rows * h2));
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
      else if (gmax > gmin) lut[q] = Math.round((dequantise(meta, i, q) - gmin) / (gmax - gmin) * 255);
      else lut[q] = 0;
    }
    const ox = i % cols * w;
    const oy = Math.floor(i / cols) * h2;
    const base = i * h2 * w;
    for (let y = 0; y < h2; y++) {
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
function hotImage(data, meta) {
  const image = new ImageData(meta.w, meta.h);
  for (let i = 0, o = 0; i < meta.w * meta.h; i++, o += 4) {
    const v = Math.min(1, Math.max(0, dequantise(meta, 0, data[i])));
    const c = Math.round(v * 255) * 3;
    image.data[o] = HOT[c];
    image.data[o + 1] = HOT[c + 1];
    image.data[o + 2] = HOT[c + 2];
    image.data[o + 3] = 255;
  }
  return image;
}
function jetImage(data, meta) {
  const image = new ImageData(meta.w, meta.h);
  for (let i = 0, o = 0; i < meta.w * meta.h; i++, o += 4) {
    const c = data[i] * 3;
    image.data[o] = JET[c];
    image.data[o + 1] = JET[c + 1];
    image.data[o + 2] = JET[c + 2];
    image.data[o + 3] = 255;
  }
  return image;
}
function rgbImage(data, w, hgt) {
  const image = new ImageData(w, hgt);
  for (let i = 0, s = 0, o = 0; i < w * hgt; i++, s += 3, o += 4) {
    image.data[o] = data[s];
    image.data[o + 1] = data[s + 1];
    image.data[o + 2] = data[s + 2];
    image.data[o + 3] = 255;
  }
  return image;
}
function context2d(canvas) {
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("featviz_widgets: this browser gives no 2-D canvas context");
  return ctx;
}
function bitmapCanvas(image) {
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  context2d(canvas).putImageData(image, 0, 0);
  return canvas;
}
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
  const ctx = context2d(canvas);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.imageSmoothingEnabled = false;
  return ctx;
}
function stamp(canvas, state) {
  canvas.dataset.paints = String(Number(canvas.dataset.paints || 0) + 1);
  canvas.dataset.paintedAt = String(performance.now());
  canvas.dataset.state = state;
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
function markerAt(ctx, pos, mapH, mapW, width, height) {
  if (!pos) return;
  drawMarker(ctx, (pos[1] + 0.5) * width / mapW, (pos[0] + 0.5) * height / mapH, Math.max(6, width / 18));
}

// src/dom.js
var SVG_NS = "http://www.w3.org/2000/svg";
function h(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = String(value);
    else if (key === "text") node.textContent = String(value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value !== void 0) node.setAttribute(key, String(value));
  }
  for (const child of children) node.append(child);
  return node;
}
function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== void 0) node.textContent = text;
  return node;
}

// src/panels/comparison.js
var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
function modelColour(i) {
  return PALETTE[i % PALETTE.length];
}
var comparison = {
  name: "comparison",
  views: ["models"],
  slot: "below",
  title: "Compare models",
  label: "Model comparison: mean activation and sparsity against relative depth, one line per model",
  listens: ["change:_model_names", "change:model_name", "change:layer"],
  shown: (_payload, get) => (get("_model_names") || []).length > 1,
  box: ({ width }) => [Math.max(320, Math.min(900, width - 8)), HEIGHT],
  size: () => 0,
  paint({ ctx, width, payload: payload2, get, theme, canvas }) {
    const meta = (
      /** @type {Partial<ComparisonMeta>} */
      payload2
    );
    const comparison2 = meta.models ? (
      /** @type {ComparisonMeta} */
      meta
    ) : null;
    const state = paintChart(ctx, canvas, comparison2, width, get("model_name"), get("layer"), theme);
    const busy = comparison2 && comparison2.done < comparison2.total ? ` · ${comparison2.done}/${comparison2.total} models` : "";
    const caption = comparison2 ? `on ${comparison2.image || "the image"}${busy}${comparison2.note ? ` · ${comparison2.note}` : ""}` : "";
    return { caption, stamp: state };
  }
};
var HEIGHT = 230;
function paintChart(ctx, canvas, meta, width, current, layer, theme) {
  const height = HEIGHT;
  ctx.imageSmoothingEnabled = true;
  ctx.font = `11px ${theme.font}`;
  ctx.fillStyle = theme.fg;
  const rows = meta ? meta.rows : [];
  const names = meta ? meta.models.filter((name) => rows.some((row) => row.model === name)) : [];
  canvas.dataset.lines = String(names.length);
  canvas.dataset.models = names.join(",");
  if (!meta || !names.length) {
    ctx.fillText(meta && meta.note ? meta.note : "no comparison yet", 8, 20);
    return "models|empty";
  }
  const panelW = (width - 24) / 2;
  const panels = [["mean", "Mean activation"], ["sparsity", "Sparsity (fraction of 0s)"]];
  panels.forEach(([key, title], p) => {
    const left = 8 + p * (panelW + 8);
    const box = { x: left + 42, y: 22, w: panelW - 50, h: height - 78 };
    const values = rows.map((row) => Number(row[key])).filter(Number.isFinite);
    let lo = key === "sparsity" ? 0 : Math.min(...values);
    let hi = key === "sparsity" ? 1 : Math.max(...values);
    if (!(hi > lo)) [lo, hi] = [lo - 1, hi + 1];
    const at = (depth, value) => [box.x + depth * box.w, box.y + box.h - (value - lo) / (hi - lo) * box.h];
    axes(ctx, box, title, lo, hi, theme);
    names.forEach((name, i) => {
      const points = rows.filter((row) => row.model === name && Number.isFinite(Number(row[key])));
      ctx.strokeStyle = ctx.fillStyle = modelColour(meta.models.indexOf(name));
      ctx.lineWidth = name === current ? 2.5 : 1.5;
      ctx.beginPath();
      points.forEach((row, j) => (j ? ctx.lineTo : ctx.moveTo).apply(ctx, at(row.depth, Number(row[key]))));
      ctx.stroke();
      for (const row of points) {
        const [x, y] = at(row.depth, Number(row[key]));
        ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
        if (name === current && row.layer === layer) {
          ctx.strokeStyle = theme.fg;
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.arc(x, y, 6, 0, 2 * Math.PI);
          ctx.stroke();
        }
      }
      if (p === 0) legend(ctx, 8 + i * Math.max(110, width / names.length), height - 12, name, modelColour(meta.models.indexOf(name)), name === current, theme);
    });
  });
  return `models|${meta.done}/${meta.total}|${current}|${layer}`;
}
function axes(ctx, box, title, lo, hi, theme) {
  ctx.strokeStyle = theme.grid;
  ctx.lineWidth = 1;
  ctx.strokeRect(box.x, box.y, box.w, box.h);
  ctx.fillStyle = theme.fg;
  ctx.fillText(title, box.x, box.y - 8);
  ctx.textAlign = "right";
  ctx.fillText(fmt(hi), box.x - 4, box.y + 8);
  ctx.fillText(fmt(lo), box.x - 4, box.y + box.h);
  ctx.textAlign = "center";
  ctx.fillText("0", box.x, box.y + box.h + 13);
  ctx.fillText("relative depth", box.x + box.w / 2, box.y + box.h + 13);
  ctx.fillText("1", box.x + box.w, box.y + box.h + 13);
  ctx.textAlign = "left";
}
function legend(ctx, x, y, name, colour, current, theme) {
  ctx.fillStyle = colour;
  ctx.fillRect(x, y - 8, 14, 4);
  ctx.fillStyle = theme.fg;
  ctx.font = `${current ? "bold " : ""}11px ${theme.font}`;
  ctx.fillText(name, x + 18, y - 3);
  ctx.font = `11px ${theme.font}`;
}

// src/models.js
function buildModelsDom() {
  const select = h("select", { class: "fvz-model", "aria-label": "Model" });
  const field = h("label", { class: "fvz-field fvz-model-field", hidden: true }, [h("span", { text: "Model" }), select]);
  return { field, select };
}
function syncModels(state) {
  const { get, dom } = state;
  const names = get("_model_names") || [];
  const { select, field } = dom.models;
  if (select.options.length !== names.length || names.some((name, i) => select.options[i].value !== name)) {
    select.replaceChildren(...names.map((name) => h("option", { value: name, text: name })));
  }
  select.value = get("model_name");
  field.hidden = names.length < 2;
}
function wireModels(state) {
  const { model, dom, save } = state;
  let queued = false;
  const later = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      if (!state.closed) syncModels(state);
    });
  };
  const events = ["change:_model_names", "change:model_name"];
  for (const event of events) model.on(event, later);
  const onChange = () => save({ model_name: dom.models.select.value });
  dom.models.select.addEventListener("change", onChange);
  later();
  return () => {
    for (const event of events) model.off(event, later);
    dom.models.select.removeEventListener("change", onChange);
  };
}

// src/pull.js
function pull(state, names) {
  const { model, messages, contract } = state;
  if (names) {
    model.send({ type: messages.pull, names });
    return;
  }
  for (const name of contract.payloads) {
    const value = (
      /** @type {Payload} */
      state.get(name) || {}
    );
    state.asked[name] = value.chunked ? value.chunked.id : value;
  }
  clearTimeout(state.pulling);
  state.pulling = window.setTimeout(() => {
    if (state.closed) return;
    state.snapshot = true;
    state.onSnapshot();
  }, contract.pull_timeout_ms);
  model.send({ type: messages.pull });
}
function pulled(state) {
  clearTimeout(state.pulling);
  state.pulling = 0;
  if (!state.snapshot) return;
  state.snapshot = false;
  state.onSnapshot();
}
function pullOnce(state, name, token) {
  if (state.asked[name] === token) return;
  state.asked[name] = token;
  pull(state, [name]);
}

// src/state.js
function createState(model, dom) {
  const contract = model.get("_contract");
  return {
    model,
    contract,
    messages: contract.messages,
    pushes: contract.pushes,
    get: (key) => model.get(key),
    save: (values) => {
      for (const [key, value] of Object.entries(values)) {
        model.set(
          /** @type {keyof Model} */
          key,
          /** @type {Model[keyof Model]} */
          value
        );
      }
      model.save_changes();
    },
    dom,
    incoming: {},
    received: {},
    asked: {},
    pulling: 0,
    snapshot: false,
    onSnapshot: () => {
    },
    gridCache: null,
    picture: null,
    pictureToken: 0,
    cursor: null,
    layout: { grid: 300, side: 300 },
    preview: null,
    dirty: /* @__PURE__ */ new Set(),
    scheduled: false,
    timers: { channels: 0, num: 0 },
    theme: "",
    closed: false,
    panels: []
  };
}
function buildDom(contract) {
  const filter = h("input", { type: "search", class: "fvz-filter", placeholder: "filter layers", "aria-label": "Filter layers" });
  const layerSelect = h("select", { class: "fvz-layer", "aria-label": "Layer" });
  const allToggle = h("input", { type: "checkbox", class: "fvz-all" });
  const sortSelect = h(
    "select",
    { class: "fvz-sort", "aria-label": "Sort channels by" },
    contract.sort_modes.map((m) => h("option", { value: m, text: m }))
  );
  const channelSelect = h("select", { class: "fvz-channel", "aria-label": "Channel (in ranking order)" });
  const numInput = h("input", { type: "number", min: 1, max: contract.max_feature_maps, step: 1, class: "fvz-num", "aria-label": "Number of maps" });
  const scaleSelect = h(
    "select",
    { class: "fvz-scale", "aria-label": "Colour scale" },
    contract.color_scales.map((s) => h("option", { value: s, text: s.replace("-", " ") }))
  );
  const deviceSelect = h("select", { class: "fvz-device", "aria-label": "Device" });
  const deviceLabel = h("span", { class: "fvz-device-label" });
  const fileInput = h("input", { type: "file", accept: "image/*", class: "fvz-file", "aria-label": "Upload an image" });
  const imageName = h("span", { class: "fvz-image-name" });
  const prevImage = h("button", { type: "button", class: "fvz-prev-image", text: "◀", "aria-label": "Previous image of the batch", title: "Previous image of the batch (or ← on the input image)", hidden: true });
  const nextImage = h("button", { type: "button", class: "fvz-next-image", text: "▶", "aria-label": "Next image of the batch", title: "Next image of the batch (or → on the input image)", hidden: true });
  const cancelButton = h("button", { type: "button", class: "fvz-cancel", text: "Cancel", disabled: true });
  const exportView = h(
    "select",
    { class: "fvz-export-view", "aria-label": "View to export" },
    contract.export_views.map((v) => h("option", { value: v, text: v }))
  );
  const exportButton = h("button", { type: "button", class: "fvz-export", text: "Save PNG" });
  const progress = h("progress", { class: "fvz-progress", max: 1 });
  const statusText = h("span", { class: "fvz-status-text" });
  const errorText = h("span", { class: "fvz-error-text" });
  const errorClose = h("button", { type: "button", class: "fvz-error-close", "aria-label": "Dismiss", text: "×" });
  const errorBox = h("div", { class: "fvz-error", role: "alert", hidden: true }, [errorText, errorClose]);
  const gridCanvas = h("canvas", { class: "fvz-grid", tabindex: 0 });
  const gridCaption = h("span", { class: "fvz-caption" });
  const inputCanvas = h("canvas", { class: "fvz-input", "aria-label": "Input image as the model sees it" });
  const unitCanvas = h("canvas", { class: "fvz-unit", tabindex: 0 });
  const unitCaption = h("span", { class: "fvz-caption" });
  const statsList = h("dl", { class: "fvz-stats" });
  const chart = h("div", { class: "fvz-chart" });
  const compareButton = h("button", { type: "button", class: "fvz-compare-toggle" });
  const tooltip = h("div", { class: "fvz-tooltip", role: "tooltip", hidden: true });
  const unitNote = h("span", { class: "fvz-contribution" });
  const models = buildModelsDom();
  const exportCanvases = {};
  let side;
  let below;
  let tools;
  let rows;
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
      deviceLabel
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
      exportButton
    ]),
    rows = h("div", { class: "fvz-rows" }),
    h("div", { class: "fvz-status", role: "status" }, [progress, statusText]),
    errorBox,
    h("div", { class: "fvz-main" }, [
      h("section", { class: "fvz-panel fvz-grid-panel" }, [h("h4", {}, [h("span", { text: "Feature maps " }), gridCaption]), gridCanvas]),
      side = h("section", { class: "fvz-panel fvz-side" }, [
        h("div", { class: "fvz-pair" }, [
          h("figure", {}, [h("figcaption", { text: "Input (as the model sees it)" }), inputCanvas]),
          h("figure", {}, [h("figcaption", {}, [unitCaption, unitNote]), unitCanvas])
        ])
      ])
    ]),
    h("div", { class: "fvz-bottom" }, [
      h("section", { class: "fvz-panel" }, [h("h4", { text: "Layer statistics" }), statsList]),
      h("section", { class: "fvz-panel fvz-compare" }, [h("h4", {}, [h("span", { text: "Compare layers " }), compareButton]), chart])
    ]),
    below = h("div", { class: "fvz-below" }),
    tooltip
  ]);
  return {
    root,
    side,
    below,
    tools,
    rows,
    filter,
    layerSelect,
    allToggle,
    sortSelect,
    channelSelect,
    numInput,
    scaleSelect,
    deviceSelect,
    deviceField,
    deviceLabel,
    fileInput,
    imageName,
    prevImage,
    nextImage,
    cancelButton,
    exportView,
    exportButton,
    exportCanvases,
    progress,
    statusText,
    errorBox,
    errorText,
    errorClose,
    gridCanvas,
    gridCaption,
    inputCanvas,
    unitCanvas,
    unitCaption,
    statsList,
    chart,
    compareButton,
    tooltip,
    unitNote,
    models
  };
}
function css(state, name, fallback) {
  return getComputedStyle(state.dom.root).getPropertyValue(name).trim() || fallback;
}
function payload(state, name) {
  const value = (
    /** @type {Payload} */
    state.get(name) || {}
  );
  if (!value.chunked) return value.data ? bytesOf(value.data) : new Uint8Array(0);
  const got = state.received[name];
  return got && got.id === value.chunked.id ? got.data : new Uint8Array(0);
}
function sizedPayload(state, name, expected) {
  const data = payload(state, name);
  if (data.length === expected) return data;
  const value = (
    /** @type {Payload} */
    state.get(name) || {}
  );
  if (expected > 0 && !state.incoming[name]) pullOnce(state, name, value.chunked ? value.chunked.id : value);
  return new Uint8Array(0);
}

// src/panels/evidence.js
var own = (state) => (
  /** @type {<K extends keyof EvidenceTraits>(key: K) => EvidenceTraits[K] | undefined} */
  /** @type {unknown} */
  state.get
);
var MAX_MATCHES = 50;
function freshEvidence(state) {
  const get = own(state);
  const meta = (
    /** @type {EvidenceMeta | undefined} */
    state.get(
      /** @type {keyof Model} */
      "_evidence"
    )
  );
  if (!meta || !hasMaps(meta) || !get("class_evidence")) return null;
  const target = get("target_class");
  const same = meta.layer === state.get("layer") && meta.index === state.get("image_index");
  const chosen = target == null ? !meta.chosen : meta.chosen && meta.target === target;
  return same && chosen ? meta : null;
}
function percent(p) {
  return p >= 0.1 ? `${(p * 100).toFixed(0)}%` : `${(p * 100).toPrecision(2)}%`;
}
function signed(value) {
  if (value == null || Number.isNaN(value)) return "–";
  const text = Math.abs(value) >= 1e-4 && Math.abs(value) < 1e6 ? String(Number(value.toPrecision(3))) : fmt(value);
  return value >= 0 ? `+${text}` : text;
}
function contributionText(state, channel) {
  const meta = freshEvidence(state);
  if (!meta || !(channel >= 0 && channel < meta.contributions.length)) return "";
  const name = meta.target_name || `class ${meta.target}`;
  return `contribution to '${name}': ${signed(meta.contributions[channel])} (rank ${meta.ranks[channel]} of ${meta.contributions.length})`;
}
function syncClasses(state, controls) {
  const { dom } = state;
  const get = own(state);
  const { row, toggle, search, select, cam, note: noteText } = (
    /** @type {Controls} */
    /** @type {unknown} */
    controls
  );
  const classes = (
    /** @type {Partial<ClassesMeta>} */
    get("_classes") || {}
  );
  const names = classes.names || [];
  const noClassifier = classes.count === 0;
  const on = !!get("class_evidence");
  const target = get("target_class");
  const meta = (
    /** @type {Partial<EvidenceMeta>} */
    state.get(
      /** @type {keyof Model} */
      "_evidence"
    ) || {}
  );
  const fresh = freshEvidence(state);
  toggle.checked = on;
  cam.checked = !!get("show_cam");
  for (const control of [toggle, search, select, cam]) control.disabled = noClassifier;
  row.classList.toggle("fvz-disabled", noClassifier);
  const top = fresh ? fresh.top : meta.top && meta.index === state.get("image_index") ? meta.top : [];
  const nameOf = (index) => names[index] || (top.find((t) => t[0] === index) || [])[1] || `class ${index}`;
  const first = top.length ? `top-1: ${top[0][1]} (${percent(top[0][2])})` : "top-1 class";
  const options = [h("option", { value: "", text: noClassifier ? "no classes" : first })];
  const listed = /* @__PURE__ */ new Set();
  if (top.length) {
    const group = h("optgroup", { label: "Top 5 predicted" });
    for (const [index, name, p] of top) {
      group.append(h("option", { value: String(index), text: `${name} · ${percent(p)}` }));
      listed.add(index);
    }
    options.push(group);
  }
  const needle = search.value.trim().toLowerCase();
  if (needle && names.length) {
    const group = h("optgroup", { label: `Matching “${search.value.trim()}”` });
    let found = 0;
    for (let index = 0; index < names.length && found < MAX_MATCHES; index++) {
      if (!names[index].toLowerCase().includes(needle) && String(index) !== needle) continue;
      group.append(h("option", { value: String(index), text: `${names[index]} (${index})` }));
      listed.add(index);
      found++;
    }
    if (!found) group.append(h("option", { value: "", text: "no class matches", disabled: true }));
    options.push(group);
  }
  if (target != null && !listed.has(target)) options.push(h("option", { value: String(target), text: `${nameOf(target)} (${target})` }));
  select.replaceChildren(...options);
  select.value = target == null ? "" : String(target);
  let note = "";
  if (noClassifier) note = classes.note || "";
  else if (!on) note = "turn on to see the classes the model predicts";
  else if (meta.note && !meta.n) note = meta.note;
  else if (!fresh) note = "computing…";
  else note = `${fresh.chosen ? "" : "top-1 "}'${fresh.target_name}' at ${fresh.layer}`;
  noteText.textContent = note;
  noteText.title = note;
  select.title = noClassifier ? classes.note || "" : "The class whose evidence is shown: the image's top-5 predicted classes, or search all class names";
  const { sort_mode: mode } = (
    /** @type {EvidenceContract} */
    state.contract.panels.evidence
  );
  for (const option of dom.sortSelect.options) {
    if (option.value !== mode) continue;
    option.disabled = noClassifier;
    option.title = noClassifier ? classes.note || "" : "Channels by their contribution (gradient × activation) to the chosen class";
  }
  row.dataset.state = `${on ? "on" : "off"}|${target == null ? "top" : target}|${fresh ? `${fresh.layer}:${fresh.target}` : "none"}`;
}
var evidence = {
  name: "evidence",
  label: "Class evidence",
  views: ["cam"],
  figure: false,
  // it draws over the input and unit views
  exportCanvas: (state) => state.dom.inputCanvas,
  controlsRow: true,
  listens: ["change:_classes", "change:class_evidence", "change:target_class", "change:show_cam", "change:layer", "change:image_index"],
  size: (payload2) => {
    const meta = (
      /** @type {Partial<EvidenceMeta>} */
      payload2
    );
    return meta.n ? (meta.h || 0) * (meta.w || 0) : 0;
  },
  controls() {
    const toggle = h("input", { type: "checkbox", class: "fvz-classes-on", "aria-label": "Class evidence" });
    const search = h("input", { type: "search", class: "fvz-class-search", placeholder: "search classes", "aria-label": "Search class names" });
    const select = h("select", { class: "fvz-class", "aria-label": "Class to explain" });
    const cam = h("input", { type: "checkbox", class: "fvz-cam", "aria-label": "Grad-CAM overlay on the input image" });
    const note = h("span", { class: "fvz-class-note" });
    const row = h("div", { class: "fvz-toolbar fvz-classes" }, [
      h("label", { class: "fvz-check", title: "Class evidence: the classes the model predicts, where it sees them (Grad-CAM) and which channels speak for them (one forward and backward of the whole model)" }, [toggle, h("span", { text: "classes" })]),
      h("label", { class: "fvz-field" }, [h("span", { text: "Class" }), search, select]),
      h("label", { class: "fvz-check" }, [cam, h("span", { text: "Grad-CAM on the input" })]),
      note
    ]);
    return { row, toggle, search, select, cam, note };
  },
  sync: (state, { controls }) => syncClasses(state, controls),
  paint: () => ({ caption: "", stamp: "" }),
  // the Grad-CAM of the chosen class over the input image (jet, half opaque) when `show_cam`
  overInput(state, ctx, width, height) {
    const fresh = own(state)("show_cam") ? freshEvidence(state) : null;
    const cam = fresh ? payload(
      state,
      /** @type {PayloadName} */
      "_evidence"
    ) : null;
    if (!fresh || !cam || cam.length < fresh.h * fresh.w) return "cam:off";
    ctx.globalAlpha = 0.5;
    ctx.drawImage(bitmapCanvas(jetImage(cam, fresh)), 0, 0, width, height);
    ctx.globalAlpha = 1;
    return `cam:${fresh.layer}:${fresh.target}`;
  },
  unitNote: (state, channel) => contributionText(state, channel),
  wire(state, { controls }) {
    const { save } = state;
    const { toggle, search, select, cam } = (
      /** @type {Controls} */
      /** @type {unknown} */
      controls
    );
    const write = (
      /** @param {object} values */
      (values) => save(values)
    );
    const onToggle = () => write({ class_evidence: toggle.checked });
    const onCam = () => write({ show_cam: cam.checked });
    const onSearch = () => syncClasses(state, controls);
    const onSelect = () => write({ target_class: select.value === "" ? null : Number(select.value) });
    toggle.addEventListener("change", onToggle);
    cam.addEventListener("change", onCam);
    search.addEventListener("input", onSearch);
    select.addEventListener("change", onSelect);
    return () => {
      toggle.removeEventListener("change", onToggle);
      cam.removeEventListener("change", onCam);
      search.removeEventListener("input", onSearch);
      select.removeEventListener("change", onSelect);
    };
  }
};

// src/pointer.js
function pointer(state, canvas, hitTest, describe, select) {
  const { tooltip } = state.dom;
  canvas.addEventListener("mousemove", (event) => {
    const hit = hitTest(event);
    if (hit) showTooltip(state, event, describe(hit));
    else tooltip.hidden = true;
  });
  canvas.addEventListener("mouseleave", () => tooltip.hidden = true);
  canvas.addEventListener("click", (event) => {
    const hit = hitTest(event);
    if (hit) select(hit);
  });
}
function showTooltip(state, event, text) {
  const { root, tooltip } = state.dom;
  const box = root.getBoundingClientRect();
  tooltip.hidden = false;
  tooltip.textContent = text;
  tooltip.style.left = `${event.clientX - box.left + 12}px`;
  tooltip.style.top = `${event.clientY - box.top + 12}px`;
}

// src/panels/examples.js
function hasExamples(payload2) {
  return typeof /** @type {Partial<ExamplesMeta>} */
  payload2.layer === "string";
}
function tiles(meta, width) {
  const cols = Math.max(1, meta.cols);
  const fit = Math.floor((width - GAP * (cols - 1)) / cols);
  return { cols, tile: Math.max(24, Math.min(2 * meta.size, fit)) };
}
var examples = {
  name: "examples",
  label: "Top dataset images of the selected channel: click one to show it",
  shown: (payload2) => hasExamples(payload2),
  box: ({ payload: payload2, side }) => {
    if (!hasExamples(payload2)) return [1, 1];
    const { cols, tile } = tiles(payload2, side);
    const rows = payload2.n > 0 ? Math.ceil(payload2.n / cols) : 0;
    return [cols * (tile + GAP), Math.max(1, rows * (tile + LABEL_H + GAP))];
  },
  size: (payload2) => hasExamples(payload2) ? payload2.n * payload2.size * payload2.size * 3 : 0,
  paint({ ctx, side, payload: payload2, data, theme, canvas }) {
    const meta = (
      /** @type {ExamplesMeta} */
      payload2
    );
    if (!data.length) return { caption: `Dataset examples: ${meta.note || "…"}`, stamp: `${meta.layer}|${meta.channel}|0` };
    const { cols, tile } = tiles(meta, side);
    const strip = bitmapCanvas(rgbImage(data, meta.size, meta.n * meta.size));
    ctx.imageSmoothingEnabled = true;
    ctx.font = `11px ${theme.font}`;
    ctx.textBaseline = "bottom";
    ctx.fillStyle = theme.fg;
    for (let i = 0; i < meta.n; i++) {
      const x = i % cols * (tile + GAP);
      const y = Math.floor(i / cols) * (tile + LABEL_H + GAP) + LABEL_H;
      ctx.drawImage(strip, 0, i * meta.size, meta.size, meta.size, x, y, tile, tile);
      ctx.fillText(`#${i + 1}  ${fmt(meta.scores[i])}`, x, y - 2, tile);
    }
    canvas.dataset.indices = meta.indices.join(",");
    const caption = `Top ${meta.n} of ${meta.images} dataset images: ${meta.layer}, ch ${meta.channel} (click one to show it)`;
    return { caption, stamp: `${meta.layer}|${meta.channel}|${meta.n}` };
  },
  // hover names the image and its score, a click sends `messages.example`: show that image
  wire(state, { canvas, payload: payload2 }) {
    const hit = (event) => {
      const meta = payload2();
      if (!hasExamples(meta) || !meta.n) return null;
      const { cols, tile } = tiles(meta, state.layout.side);
      const rect = canvas.getBoundingClientRect();
      const x = event.clientX - rect.left;
      const y = event.clientY - rect.top;
      const col = Math.floor(x / (tile + GAP));
      const row = Math.floor(y / (tile + LABEL_H + GAP));
      const i = row * cols + col;
      const tx = x - col * (tile + GAP);
      const ty = y - row * (tile + LABEL_H + GAP);
      if (col >= cols || i >= meta.n || tx >= tile || ty >= tile + LABEL_H) return null;
      return { i, index: meta.indices[i], meta };
    };
    pointer(
      state,
      canvas,
      hit,
      ({ i, meta }) => `#${i + 1} ${meta.names[i]}: ${fmt(meta.scores[i])} at (${meta.positions[i].join(", ")})`,
      ({ index }) => state.model.send({ type: state.messages.example, index })
    );
    return () => {
    };
  }
};

// src/panels/grid.js
var TRAIT = (
  /** @type {PayloadName} */
  "_grid"
);
var gridPayload = (state) => (
  /** @type {(GridMeta & Payload) | Unset} */
  /** @type {(key: string) => unknown} */
  /** @type {unknown} */
  state.get(TRAIT)
);
function paintGrid(state) {
  const { get, dom, contract } = state;
  const meta = gridPayload(state);
  const data = hasMaps(meta) ? sizedPayload(state, TRAIT, grid.size(meta)) : new Uint8Array(0);
  const width = state.layout.grid;
  if (!hasMaps(meta) || !data.length) {
    fitCanvas(dom.gridCanvas, width, 40).clearRect(0, 0, width, 40);
    dom.gridCaption.textContent = "";
    return;
  }
  const scale = get("color_scale");
  const shared = scale === contract.shared_scale;
  const cols = meta.cols;
  const rows = Math.ceil(meta.n / cols);
  const tile = Math.max(8, Math.floor((width - GAP * (cols - 1)) / cols));
  const key = `${meta.layer}|${meta.sort_by}|${meta.channels.join(",")}|${shared}|${meta.lo.join(",")}`;
  if (!state.gridCache || state.gridCache.key !== key) {
    state.gridCache = { canvas: bitmapCanvas(mosaic(data, meta, cols, shared)), cols, tile, n: meta.n, key };
  }
  const cache = state.gridCache;
  cache.tile = tile;
  const height = rows * (tile + LABEL_H + GAP);
  const ctx = fitCanvas(dom.gridCanvas, width, height);
  ctx.clearRect(0, 0, width, height);
  const fg = css(state, "--fvz-fg", "#222");
  const accent = css(state, "--fvz-accent", "#e91e63");
  const channel = get("channel");
  ctx.font = `11px ${css(state, "--fvz-font", "sans-serif")}`;
  ctx.textBaseline = "bottom";
  for (let i = 0; i < meta.n; i++) {
    const x = i % cols * (tile + GAP);
    const y = Math.floor(i / cols) * (tile + LABEL_H + GAP) + LABEL_H;
    ctx.drawImage(cache.canvas, i % cols * meta.w, Math.floor(i / cols) * meta.h, meta.w, meta.h, x, y, tile, tile);
    ctx.fillStyle = fg;
    const label = `ch ${meta.channels[i]}  μ ${fmt(meta.means[i])}`;
    ctx.fillText(label, x, y - 2, tile);
    if (meta.channels[i] === channel) {
      ctx.strokeStyle = accent;
      ctx.lineWidth = 3;
      ctx.strokeRect(x + 1.5, y + 1.5, tile - 3, tile - 3);
    }
  }
  dom.gridCaption.textContent = `${meta.layer}: top ${meta.n} by ${meta.sort_by}, ${meta.h}×${meta.w}, ${scale} scale`;
  dom.gridCanvas.dataset.channels = meta.channels.join(",");
  stamp(dom.gridCanvas, `${meta.layer}|${meta.sort_by}|${meta.n}|${scale}|${channel}|${meta.channels.slice(0, 4).join(",")}`);
}
function gridHit(state, event) {
  const { gridCache } = state;
  const meta = gridPayload(state);
  if (!hasMaps(meta) || !gridCache) return null;
  const rect = state.dom.gridCanvas.getBoundingClientRect();
  const x = event.clientX - rect.left;
  const y = event.clientY - rect.top;
  const tile = gridCache.tile;
  const col = Math.floor(x / (tile + GAP));
  const row = Math.floor(y / (tile + LABEL_H + GAP));
  const tx = x - col * (tile + GAP);
  const ty = y - row * (tile + LABEL_H + GAP) - LABEL_H;
  const i = row * gridCache.cols + col;
  if (col >= gridCache.cols || i >= meta.n || tx < 0 || tx >= tile || ty < 0 || ty >= tile) return null;
  const mx = Math.min(meta.w - 1, Math.floor(tx / tile * meta.w));
  const my = Math.min(meta.h - 1, Math.floor(ty / tile * meta.h));
  const q = payload(state, TRAIT)[i * meta.h * meta.w + my * meta.w + mx];
  return { i, channel: meta.channels[i], mx, my, value: dequantise(meta, i, q) };
}
function previewTile(state, channel) {
  const meta = gridPayload(state);
  const at = meta && meta.channels ? meta.channels.indexOf(channel) : -1;
  if (at < 0) {
    state.preview = null;
    return;
  }
  const size = meta.h * meta.w;
  const data = payload(state, TRAIT).slice(at * size, (at + 1) * size);
  const one = { n: 1, h: meta.h, w: meta.w, lo: [meta.lo[at]], hi: [meta.hi[at]], layer: meta.layer, channel, mean: meta.means[at] };
  state.preview = { channel, meta: one, data };
}
function wireGrid(state) {
  const { get, dom } = state;
  pointer(state, dom.gridCanvas, (event) => gridHit(state, event), (hit) => `ch ${hit.channel} (${hit.my}, ${hit.mx}): ${fmt(hit.value)}`, (hit) => selectChannel(state, hit.channel));
  const onKey = (event) => {
    const meta = gridPayload(state);
    const cache = state.gridCache;
    if (!hasMaps(meta) || !cache) return;
    const steps = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cache.cols, ArrowDown: cache.cols };
    const step = steps[event.key];
    if (step === void 0) return;
    event.preventDefault();
    const at = Math.max(0, meta.channels.indexOf(get("channel")));
    const next = Math.min(meta.n - 1, Math.max(0, at + step));
    selectChannel(state, meta.channels[next]);
  };
  const onTile = (event) => {
    const hit = gridHit(state, event);
    if (!hit) return;
    if (hit.channel !== get("channel")) selectChannel(state, hit.channel);
    for (const { panel } of state.panels) if (panel.tile) panel.tile(state, hit.channel);
  };
  dom.gridCanvas.addEventListener("keydown", onKey);
  dom.gridCanvas.addEventListener("dblclick", onTile);
  return () => {
    dom.gridCanvas.removeEventListener("keydown", onKey);
    dom.gridCanvas.removeEventListener("dblclick", onTile);
  };
}
var grid = {
  name: "grid",
  label: "Feature maps: click or use the arrow keys to select a channel",
  views: ["grid"],
  slot: "main",
  painters: [paintGrid],
  // its payload's change, named too: tests/test_contract.py reads what the view listens to
  listens: ["change:_grid", "change:color_scale", "change:channel"],
  exportCanvas: (state) => state.dom.gridCanvas,
  size: (payload2) => {
    const meta = (
      /** @type {Partial<GridMeta>} */
      payload2
    );
    return (meta.n || 0) * (meta.h || 0) * (meta.w || 0);
  },
  select: previewTile,
  wire: (state) => wireGrid(state)
};

// src/panels/looks_for.js
var ownTraits = (state) => (
  /** @type {(key: keyof LooksForTraits) => unknown} */
  state.get
);
var looks_for = {
  name: "looks_for",
  label: "What the selected channel looks for: a picture optimised to excite it",
  listens: ["change:channel", "change:layer", "change:looks_for_steps"],
  size: (payload2) => {
    const meta = (
      /** @type {Partial<LooksForMeta>} */
      payload2
    );
    return (meta.h || 0) * (meta.w || 0) * 3;
  },
  controls(state) {
    const { steps } = (
      /** @type {LooksForContract} */
      state.contract.panels.looks_for
    );
    const title = "What does the selected channel look for? Optimises a picture that excites it (or double-click a tile)";
    const menuTitle = "Steps of Looks for: more give a cleaner picture and take longer (auto: 512 on a GPU, a 128-step preview on a CPU)";
    return {
      button: h("button", { type: "button", class: "fvz-looks", text: "Looks for", title }),
      steps: h(
        "select",
        { class: "fvz-looks-steps", "aria-label": "Looks for: optimization steps", title: menuTitle },
        [h("option", { value: "", text: "auto steps" }), ...steps.map((n) => h("option", { value: String(n), text: `${n} steps` }))]
      )
    };
  },
  // the steps menu shows `looks_for_steps`; a value it does not offer gets one extra option
  sync(state, { controls }) {
    const menu = (
      /** @type {HTMLSelectElement} */
      controls.steps
    );
    const get = ownTraits(state);
    const steps = get("looks_for_steps");
    const value = steps == null ? "" : String(steps);
    if (![...menu.options].some((o) => o.value === value)) {
      const extra = (
        /** @type {HTMLOptionElement | null} */
        menu.querySelector("option[data-extra]") ?? menu.appendChild(h("option", { "data-extra": "1" }))
      );
      extra.value = value;
      extra.textContent = `${value} steps`;
    }
    menu.value = value;
  },
  paint({ ctx, width, height, payload: payload2, data, get, theme }) {
    const meta = (
      /** @type {Partial<LooksForMeta>} */
      payload2
    );
    ctx.fillStyle = theme.panel;
    ctx.fillRect(0, 0, width, height);
    if (!meta.h || !meta.w || !data.length) return { caption: "Looks for: press Looks for, or double-click a tile", stamp: "empty" };
    const current = meta.channel === get("channel") && meta.layer === get("layer");
    const side = Math.min(width, height);
    ctx.imageSmoothingEnabled = true;
    ctx.globalAlpha = current ? 1 : 0.35;
    ctx.drawImage(bitmapCanvas(rgbImage(data, meta.w, meta.h)), (width - side) / 2, (height - side) / 2, side, side);
    ctx.globalAlpha = 1;
    const done = meta.complete ? `${meta.steps} steps` : meta.cancelled ? `cancelled at ${meta.step}/${meta.steps}` : `step ${meta.step}/${meta.steps}…`;
    const rising = meta.complete && meta.note ? " · still rising" : "";
    const state = meta.complete ? "done" : meta.cancelled ? "cancelled" : "running";
    return { caption: `ch ${meta.channel} looks for (${done}${rising})`, title: meta.complete ? meta.note : "", stamp: `${meta.layer}|${meta.channel}|${meta.step}/${meta.steps}|${state}` };
  },
  // a tile double-clicked on the grid (its channel selected already)
  tile(state, channel) {
    state.model.send({ type: state.messages.looks_for, channel });
  },
  wire(state, { controls }) {
    const { model, messages } = state;
    const button = (
      /** @type {HTMLButtonElement} */
      controls.button
    );
    const menu = (
      /** @type {HTMLSelectElement} */
      controls.steps
    );
    const ask = () => model.send({ type: messages.looks_for, channel: state.get("channel") });
    const steps = () => state.save(
      /** @type {object} */
      { looks_for_steps: menu.value ? Number(menu.value) : null }
    );
    button.addEventListener("click", ask);
    menu.addEventListener("change", steps);
    return () => {
      button.removeEventListener("click", ask);
      menu.removeEventListener("change", steps);
    };
  }
};

// src/panels/occlusion.js
var BAR = 14;
var LABELS = 34;
function paintColourBar(ctx, theme, x, hgt) {
  for (let y = 0; y < hgt; y++) {
    const c = Math.round((1 - y / Math.max(1, hgt - 1)) * 255) * 3;
    ctx.fillStyle = `rgb(${HOT[c]},${HOT[c + 1]},${HOT[c + 2]})`;
    ctx.fillRect(x, y, BAR, 1);
  }
  ctx.fillStyle = theme.fg;
  ctx.font = `10px ${theme.font}`;
  ctx.textBaseline = "top";
  ctx.fillText("1", x + BAR + 3, 0);
  ctx.textBaseline = "bottom";
  ctx.fillText("0", x + BAR + 3, hgt);
  ctx.save();
  ctx.translate(x + BAR + 14, hgt / 2);
  ctx.rotate(Math.PI / 2);
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText("|Δunit| / max", 0, -4);
  ctx.restore();
}
var occlusion = {
  name: "occlusion",
  label: "Occlusion sensitivity map",
  // the side panel's picture, and its colour bar beside it
  box: ({ fit }) => [fit[0] + GAP + BAR + LABELS, fit[1]],
  size: (payload2) => {
    const meta = (
      /** @type {Partial<OcclusionMeta>} */
      payload2
    );
    return meta.n ? (meta.h || 0) * (meta.w || 0) : 0;
  },
  paint({ ctx, width, height, payload: payload2, data, picture, theme }) {
    const meta = (
      /** @type {Partial<OcclusionMeta>} */
      payload2
    );
    const w = width - GAP - BAR - LABELS;
    ctx.fillStyle = theme.panel;
    ctx.fillRect(0, 0, w, height);
    if (picture) {
      ctx.imageSmoothingEnabled = true;
      ctx.globalAlpha = 0.45;
      ctx.drawImage(picture, 0, 0, w, height);
      ctx.globalAlpha = 1;
    }
    paintColourBar(ctx, theme, w + GAP, height);
    if (!meta.n || !meta.h || !meta.w || !meta.lo || !meta.hi || !meta.position || !meta.map_size || !data.length) {
      return { caption: "Occlusion: click a unit on the channel view, or Run occlusion", stamp: "empty" };
    }
    ctx.globalAlpha = 0.65;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(bitmapCanvas(hotImage(data, { n: meta.n, h: meta.h, w: meta.w, lo: meta.lo, hi: meta.hi })), 0, 0, w, height);
    ctx.globalAlpha = 1;
    markerAt(ctx, meta.position, meta.map_size[0], meta.map_size[1], w, height);
    const done = meta.complete ? "done" : meta.cancelled ? `cancelled at ${meta.done}/${meta.total}` : `${meta.done}/${meta.total}…`;
    return {
      caption: `Occlusion: ${meta.layer}, ch ${meta.channel} at (${meta.position.join(", ")}) — ${done}`,
      stamp: `${meta.layer}|${meta.channel}|${meta.position.join(",")}|${meta.done}/${meta.total}`
    };
  },
  controls: () => ({ run: h("button", { type: "button", class: "fvz-occlude", text: "Run occlusion" }) }),
  // the unit selected chosen again: `position` does not change, so it asks Python to run again
  unit(state, _unit, again) {
    if (again) state.model.send({ type: state.messages.occlude });
  },
  wire(state, { controls }) {
    const run = () => state.model.send({ type: state.messages.occlude });
    controls.run.addEventListener("click", run);
    return () => controls.run.removeEventListener("click", run);
  }
};

// src/panels/pca.js
var pca = {
  name: "pca",
  label: "The layer as colour: its first three principal components over the input image",
  size: (payload2) => {
    const meta = (
      /** @type {Partial<PcaMeta>} */
      payload2
    );
    return (meta.h || 0) * (meta.w || 0) * 3;
  },
  paint({ ctx, width, height, payload: payload2, data, picture }) {
    const meta = (
      /** @type {Partial<PcaMeta>} */
      payload2
    );
    if (!meta.layer) return { caption: "Layer as colour: computing…", stamp: "empty" };
    if (!meta.h || !meta.w || !data.length) return { caption: `Layer as colour: ${meta.note || "not available"}`, stamp: `${meta.layer}|note` };
    if (picture) ctx.drawImage(picture, 0, 0, width, height);
    ctx.globalAlpha = picture ? 0.6 : 1;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmapCanvas(rgbImage(data, meta.w, meta.h)), 0, 0, width, height);
    ctx.globalAlpha = 1;
    const share = Math.round(100 * (meta.explained || []).reduce((a, b) => a + b, 0));
    return { caption: `${meta.layer} as colour: PCA 1–3, ${share}% of the variance`, stamp: `${meta.layer}|${meta.h}x${meta.w}|${share}` };
  }
};

// src/picture.js
function sideSize(state) {
  const meta = state.get("_image") || {};
  const aspect = meta.w && meta.h ? meta.h / meta.w : 1;
  const w = Math.max(80, Math.floor((state.layout.side - GAP * 2) / 2));
  return [w, Math.round(w * aspect)];
}
async function loadPicture(state) {
  const token = ++state.pictureToken;
  const data = payload(state, "_image");
  if (!data.length) {
    state.picture = null;
    return false;
  }
  try {
    const bitmap = await createImageBitmap(new Blob([data.slice()], { type: "image/png" }));
    if (token !== state.pictureToken) return false;
    state.picture = bitmap;
  } catch {
    state.picture = null;
  }
  return true;
}

// src/panels/unit.js
var TRAIT2 = (
  /** @type {PayloadName} */
  "_unit"
);
var unitPayload = (state) => (
  /** @type {(UnitMeta & Payload) | Unset} */
  /** @type {(key: string) => unknown} */
  /** @type {unknown} */
  state.get(TRAIT2)
);
function unitPosition(state) {
  const pos = state.get("position") || [];
  const meta = unitPayload(state);
  if (pos.length === 2) return pos;
  if (meta && meta.h) return [Math.floor(meta.h / 2), Math.floor(meta.w / 2)];
  return null;
}
function paintInput(state) {
  const { get, dom } = state;
  const [w, hgt] = sideSize(state);
  const ctx = fitCanvas(dom.inputCanvas, w, hgt);
  ctx.clearRect(0, 0, w, hgt);
  if (!state.picture) return;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(state.picture, 0, 0, w, hgt);
  const overlay = overInput(state, ctx, w, hgt);
  const meta = unitPayload(state);
  if (meta && meta.h) markerAt(ctx, unitPosition(state), meta.h, meta.w, w, hgt);
  stamp(dom.inputCanvas, `${(get("_image") || {}).name || ""}|${state.pictureToken}|${overlay}`);
}
function paintUnit(state) {
  const { get, dom, preview } = state;
  const [w, hgt] = sideSize(state);
  const ctx = fitCanvas(dom.unitCanvas, w, hgt);
  ctx.clearRect(0, 0, w, hgt);
  let meta = unitPayload(state);
  const channel = get("channel");
  let source = "python";
  let data;
  if (preview && preview.channel === channel && (!meta || meta.channel !== channel)) {
    ({ meta, data } = preview);
    source = "preview";
  } else {
    data = hasMaps(meta) ? sizedPayload(state, TRAIT2, unit.size(meta)) : new Uint8Array(0);
  }
  if (!hasMaps(meta) || data.length < meta.h * meta.w) return;
  ctx.drawImage(bitmapCanvas(mosaic(data, meta, 1, false)), 0, 0, w, hgt);
  markerAt(ctx, state.cursor || unitPosition(state), meta.h, meta.w, w, hgt);
  dom.unitCaption.textContent = `Channel ${meta.channel} (μ ${fmt(meta.mean)}): click a unit`;
  dom.unitNote.textContent = unitNotes(state, meta.channel);
  dom.unitCanvas.dataset.source = source;
  stamp(dom.unitCanvas, `${meta.layer}|${meta.channel}`);
}
function unitHit(state, event) {
  const meta = unitPayload(state);
  if (!hasMaps(meta)) return null;
  const rect = state.dom.unitCanvas.getBoundingClientRect();
  const mx = Math.floor((event.clientX - rect.left) / rect.width * meta.w);
  const my = Math.floor((event.clientY - rect.top) / rect.height * meta.h);
  if (mx < 0 || my < 0 || mx >= meta.w || my >= meta.h) return null;
  const q = payload(state, TRAIT2)[my * meta.w + mx];
  return { pos: [my, mx], value: dequantise(meta, 0, q) };
}
function selectUnit(state, pos) {
  const current = state.get("position") || [];
  const again = current.length === 2 && current[0] === pos[0] && current[1] === pos[1];
  if (!again) state.save({ position: pos });
  for (const { panel } of state.panels) if (panel.unit) panel.unit(state, pos, again);
}
function wireUnit(state) {
  const { get, dom, model } = state;
  pointer(state, dom.unitCanvas, (event) => unitHit(state, event), (hit) => `ch ${get("channel")} (${hit.pos[0]}, ${hit.pos[1]}): ${fmt(hit.value)}`, (hit) => selectUnit(state, hit.pos));
  const onKey = (event) => {
    const meta = unitPayload(state);
    if (!hasMaps(meta)) return;
    const at = state.cursor || unitPosition(state);
    if (!at) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      selectUnit(state, at);
      return;
    }
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const [y, x] = at;
    state.cursor = [Math.min(meta.h - 1, Math.max(0, y + move[0])), Math.min(meta.w - 1, Math.max(0, x + move[1]))];
    paintUnit(state);
  };
  const dropCursor = () => state.cursor = null;
  dom.unitCanvas.addEventListener("keydown", onKey);
  model.on("change:position", dropCursor);
  return () => {
    dom.unitCanvas.removeEventListener("keydown", onKey);
    model.off("change:position", dropCursor);
  };
}
var unit = {
  name: "unit",
  label: "Selected channel: click or use arrows and Enter to pick a unit",
  views: ["channel"],
  slot: "detail",
  painters: [paintUnit, paintInput],
  // its payload's change, named too: tests/test_contract.py reads what the view listens to
  listens: ["change:_unit", "change:color_scale", "change:channel", "change:position"],
  exportCanvas: (state) => state.dom.unitCanvas,
  size: (payload2) => {
    const meta = (
      /** @type {Partial<UnitMeta>} */
      payload2
    );
    return (meta.h || 0) * (meta.w || 0);
  },
  wire: (state) => wireUnit(state)
};

// src/panels/index.js
var PANELS = [grid, unit, occlusion, pca, looks_for, examples, comparison, evidence];

// src/theme.js
function above(node) {
  if (node.parentElement) return node.parentElement;
  const root = node.getRootNode();
  return root instanceof ShadowRoot ? root.host : null;
}
function lightness(css2) {
  const space = css2.slice(0, css2.indexOf("(")).trim();
  const body = css2.slice(css2.indexOf("(") + 1, css2.lastIndexOf(")")).replace(/^\s*srgb\s+/, "");
  const [channels, alphaText] = body.includes("/") ? body.split("/") : [body, ""];
  const parts = channels.split(/[\s,]+/).filter(Boolean);
  const value = (text, scale2) => text.endsWith("%") ? parseFloat(text) / 100 : parseFloat(text) / scale2;
  const alpha = alphaText.trim() ? value(alphaText.trim(), 1) : parts.length > 3 ? value(parts[3], 1) : 1;
  if (parts.length < 3 || Number.isNaN(alpha)) return null;
  if (space === "oklch" || space === "oklab") return [value(parts[0], 1), alpha];
  if (space === "lch" || space === "lab") return [value(parts[0], 100), alpha];
  const scale = space === "color" ? 1 : 255;
  if (space !== "color" && space !== "rgb" && space !== "rgba") return null;
  const [r, g, b] = parts.slice(0, 3).map((p) => value(p, scale));
  return [0.2126 * r + 0.7152 * g + 0.0722 * b, alpha];
}
function backdrop(node) {
  for (let at = above(node); at; at = above(at)) {
    const colour = lightness(getComputedStyle(at).backgroundColor);
    if (colour && colour[1] > 0.5) return colour[0];
  }
  return null;
}
function isDarkAround(root) {
  const light = backdrop(root);
  if (light === null) return window.matchMedia("(prefers-color-scheme: dark)").matches;
  return light < 0.4;
}
function markTheme(root) {
  root.classList.toggle("fvz-dark", isDarkAround(root));
}

// src/stats.js
function paintStats(state) {
  const stats = state.get("statistics") || {};
  const rows = [
    ["mean", fmt(stats.mean)],
    ["std", fmt(stats.std)],
    ["sparsity", stats.sparsity == null ? "–" : `${(stats.sparsity * 100).toFixed(1)}%`],
    ["min", fmt(stats.min)],
    ["max", fmt(stats.max)],
    ["active channels", `${fmt(stats.active_channels)} / ${fmt(stats.num_channels)}`],
    ["spatial size", Array.isArray(stats.spatial_size) ? stats.spatial_size.join(" × ") : "–"]
  ];
  if (stats.non_finite) rows.push(["non-finite values", fmt(stats.non_finite)]);
  state.dom.statsList.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
}
function paintChart2(state) {
  const { get, dom } = state;
  const all = get("compare_statistics") || {};
  const names = (get("compare") || []).filter((n) => all[n]);
  const current = get("layer");
  const panels = [
    ["mean", "Mean activation"],
    ["std", "Std"],
    ["sparsity", "Sparsity"],
    ["active_channels", "Active channels"]
  ];
  dom.chart.replaceChildren();
  if (!names.length) return;
  const panelW = 240;
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
      const barH = Math.abs(v) / max * (panelH - 14);
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

// src/snapshot.js
var HELD = "fvzHeld";
function kernelControls(state) {
  const { dom } = state;
  const local = /* @__PURE__ */ new Set([dom.exportView, dom.exportButton]);
  const all = dom.root.querySelectorAll("input, select, button, textarea");
  return [...all].filter((control) => !local.has(control));
}
function holdControls(state) {
  for (const control of kernelControls(state)) {
    const held = control.dataset[HELD];
    if (state.snapshot && held === void 0) {
      control.dataset[HELD] = control.disabled ? "1" : "0";
      control.disabled = true;
    } else if (!state.snapshot && held !== void 0) {
      control.disabled = held === "1";
      delete control.dataset[HELD];
    }
  }
}
function wireSnapshot(state) {
  const stop = (event) => {
    if (state.snapshot && event.target instanceof HTMLCanvasElement) event.stopPropagation();
  };
  for (const type of ["click", "dblclick", "keydown"]) state.dom.root.addEventListener(type, stop, true);
}

// src/sync.js
function syncLayers(state) {
  const { get, dom } = state;
  const layers = get("_layers") || [];
  const current = get("layer");
  const needle = dom.filter.value.trim().toLowerCase();
  dom.layerSelect.replaceChildren();
  for (const info of layers) {
    const hay = `${info.name} ${info.type}`.toLowerCase();
    if (needle && !hay.includes(needle) && info.name !== current) continue;
    const shape = info.shape.join("×");
    dom.layerSelect.append(h("option", { value: info.name, text: `${info.name} · ${shape}`, title: `${info.type} (${info.layout})` }));
  }
  if (current && ![...dom.layerSelect.options].some((o) => o.value === current)) {
    dom.layerSelect.append(h("option", { value: current, text: current }));
  }
  dom.layerSelect.value = current;
  dom.allToggle.checked = !!get("all_layers");
}
function syncChannels(state) {
  const { get, dom } = state;
  const order = get("_order") || [];
  const options = document.createDocumentFragment();
  order.forEach((c, rank) => options.append(new Option(`#${rank + 1}: ch ${c}`, String(c))));
  dom.channelSelect.replaceChildren(options);
  dom.channelSelect.value = String(get("channel"));
}
function syncSimple(state) {
  const { get, dom } = state;
  dom.sortSelect.value = get("sort_by");
  dom.numInput.value = String(get("num_features"));
  dom.scaleSelect.value = get("color_scale");
  dom.channelSelect.value = String(get("channel"));
  const devices = get("_devices") || [];
  dom.deviceSelect.replaceChildren(...devices.map((d) => h("option", { value: d, text: d })));
  dom.deviceSelect.value = get("device");
  dom.deviceField.hidden = devices.length < 2;
  dom.deviceLabel.textContent = devices.length < 2 ? `device: ${get("device")}` : "";
  const meta = get("_image") || {};
  const batch = meta.batch > 1;
  const index = get("image_index");
  const of = batch ? ` · image ${index + 1} of ${meta.batch}` : "";
  dom.prevImage.hidden = dom.nextImage.hidden = !batch;
  dom.prevImage.disabled = index <= 0;
  dom.nextImage.disabled = index >= meta.batch - 1;
  dom.imageName.textContent = (meta.name ? `${meta.name} (${meta.w}×${meta.h})` : meta.w ? `${meta.w}×${meta.h}` : "") + of;
  const inCompare = (get("compare") || []).includes(get("layer"));
  dom.compareButton.textContent = inCompare ? "− remove current layer" : "+ add current layer";
}
function syncStatus(state) {
  const { get, dom, contract, snapshot } = state;
  const busy = !snapshot && !!get("busy");
  const value = get("progress");
  dom.root.classList.toggle("fvz-snapshot", snapshot);
  dom.root.classList.toggle("fvz-busy", busy);
  dom.root.dataset.busy = busy ? "1" : "0";
  dom.progress.hidden = !busy;
  if (busy && value >= 0) dom.progress.value = value;
  else dom.progress.removeAttribute("value");
  dom.statusText.textContent = snapshot ? "Snapshot: no kernel answered, so this shows what was saved. Run the notebook to explore." : busy ? get("status") || "working…" : "";
  holdControls(state);
  dom.cancelButton.disabled = !(busy && contract.cancellable_jobs.includes(get("_job")));
  const error = get("error");
  dom.errorBox.hidden = !error;
  dom.errorText.textContent = error || "";
}

// src/repaint.js
function paintAll(state) {
  for (const paint of corePainters()) paint(state);
  paintPanels(state);
  paintChart2(state);
}
var paintOrder = () => [...corePainters(), paintPanels, syncStatus, syncSimple, syncLayers, paintStats, paintChart2];
function schedule(state, ...parts) {
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
function measure(state) {
  const { root } = state.dom;
  const width = root.clientWidth;
  if (!width) return false;
  const wide = width >= 720;
  const grid2 = wide ? Math.floor(width * 0.5) - 16 : width - 16;
  const side = wide ? width - grid2 - 40 : width - 16;
  const changed = grid2 !== state.layout.grid || side !== state.layout.side;
  state.layout = { grid: grid2, side };
  root.classList.toggle("fvz-narrow", !wide);
  return changed;
}
function watchSize(state) {
  const observer = new ResizeObserver(() => {
    retheme(state);
    if (measure(state)) paintAll(state);
  });
  observer.observe(state.dom.root);
  return () => observer.disconnect();
}
function retheme(state) {
  markTheme(state.dom.root);
  const key = themeKey(state);
  if (key === state.theme) return;
  state.theme = key;
  schedule(state, ...corePainters(), paintPanels);
}
function themeKey(state) {
  return ["--fvz-fg", "--fvz-panel", "--fvz-accent", "--fvz-font"].map((v) => css(state, v, "")).join("|");
}
function watchTheme(state) {
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

// src/panel-host.js
function corePainters(slot) {
  return PANELS.flatMap((panel) => !slot || panel.slot === slot ? panel.painters || [] : []);
}
function buildPanels(state) {
  const side = h("div", { class: "fvz-pair fvz-wrap fvz-panels" });
  for (const panel of PANELS) {
    const views = panel.views || [panel.name];
    const cls = `fvz-${views[0].replace(/_/g, "-")}`;
    const canvas = panel.exportCanvas ? panel.exportCanvas(state) : h("canvas", { class: cls, "aria-label": panel.label });
    if (panel.painters) canvas.setAttribute("aria-label", panel.label);
    const caption = h("span", { class: "fvz-caption" });
    const below = panel.slot === "below";
    const own2 = panel.figure !== false && !panel.painters;
    const figure = !own2 ? h("span", { hidden: true }) : below ? h("section", { class: `fvz-panel ${cls}-panel` }, [h("h4", {}, [h("span", { text: `${panel.title || ""} ` }), caption]), canvas]) : h("figure", { class: `${cls}-figure` }, [h("figcaption", {}, [caption]), canvas]);
    if (own2) (below ? state.dom.below : side).append(figure);
    const trait = (
      /** @type {keyof Model} */
      `_${panel.name}`
    );
    const payload2 = () => (
      /** @type {object} */
      state.get(trait) || {}
    );
    const controls = panel.controls ? panel.controls(state) : {};
    const outer = Object.values(controls).filter((control) => !control.parentElement);
    (panel.controlsRow ? state.dom.rows : state.dom.tools).append(...outer);
    state.panels.push({ panel, canvas, caption, figure, payload: payload2, controls });
    for (const view of views) state.dom.exportCanvases[view] = canvas;
  }
  state.dom.side.append(side);
}
function repaintPanel(state, panel) {
  if (panel.painters) schedule(state, ...panel.painters);
  else if (panel.overInput || panel.unitNote) schedule(state, paintPanels, ...corePainters("detail"));
  else schedule(state, paintPanels);
}
function showPicture(state) {
  void loadPicture(state).then((decoded) => schedule(state, paintPanels, ...decoded ? corePainters("detail") : []));
}
function selectChannel(state, channel) {
  for (const { panel } of state.panels) if (panel.select) panel.select(state, channel);
  state.save({ channel });
}
function panelListeners(state) {
  const listeners = {};
  for (const panel of PANELS) {
    for (const event of /* @__PURE__ */ new Set([`change:_${panel.name}`, ...panel.listens || []])) {
      const first = listeners[event];
      const repaint = () => repaintPanel(state, panel);
      listeners[event] = first ? () => (first(), repaint()) : repaint;
    }
  }
  return listeners;
}
function overInput(state, ctx, width, height) {
  return PANELS.map((panel) => panel.overInput ? panel.overInput(state, ctx, width, height) : "").filter(Boolean).join("|");
}
function unitNotes(state, channel) {
  return PANELS.map((panel) => panel.unitNote ? panel.unitNote(state, channel) : "").filter(Boolean).join(" · ");
}
function wirePanels(state) {
  const stops = state.panels.map((entry) => entry.panel.wire ? entry.panel.wire(state, entry) : () => {
  });
  return () => stops.forEach((stop) => stop());
}
function paintPanels(state) {
  const style = getComputedStyle(state.dom.root);
  const theme = {
    fg: css(state, "--fvz-fg", "#222"),
    grid: style.getPropertyValue("--fvz-border").trim() || "#ccc",
    font: css(state, "--fvz-font", "sans-serif"),
    panel: css(state, "--fvz-panel", "#f3f3f3")
  };
  for (const entry of state.panels) paintPanel(state, entry, theme);
}
function paintPanel(state, entry, theme) {
  const { panel, canvas, caption, figure, payload: read } = entry;
  if (panel.sync) panel.sync(state, entry);
  if (panel.figure === false || !panel.paint) return;
  const trait = (
    /** @type {PayloadName} */
    `_${panel.name}`
  );
  const payload2 = read();
  const hidden = panel.shown ? !panel.shown(payload2, state.get) : false;
  figure.hidden = hidden;
  if (hidden) return;
  const side = state.layout.side;
  const fit = sideSize(state);
  const room = { payload: payload2, side, width: figure.clientWidth || state.dom.root.clientWidth || 640, fit };
  const [width, height] = panel.box ? panel.box(room) : fit;
  const data = sizedPayload(state, trait, panel.size(payload2));
  const ctx = fitCanvas(canvas, width, height);
  ctx.clearRect(0, 0, width, height);
  const scene = { ctx, width, height, side, payload: payload2, data, picture: state.picture, get: state.get, theme, canvas };
  const painted = panel.paint(scene);
  caption.textContent = painted.caption;
  caption.title = painted.title || "";
  stamp(canvas, painted.stamp);
}

// src/transport.js
var CHUNKED_PAINTS = {
  _image: showPicture,
  ...Object.fromEntries(PANELS.map((panel) => [`_${panel.name}`, (state) => repaintPanel(state, panel)]))
};
function isChunk(content, pushes) {
  if (!content || typeof content !== "object") return false;
  const message = (
    /** @type {Partial<ChunkMessage>} */
    content
  );
  return message.type === pushes.chunk && typeof message.name === "string" && Object.hasOwn(CHUNKED_PAINTS, message.name);
}
function onCustom(state, content, buffers) {
  const { incoming } = state;
  if (content && typeof content === "object" && /** @type {{ type?: unknown }} */
  content.type === state.pushes.pulled) {
    pulled(state);
    return;
  }
  if (!isChunk(content, state.pushes)) return;
  const { name, id, index, count, size } = content;
  if (index === 0) incoming[name] = { id, count, size, parts: [] };
  const part = incoming[name];
  if (!part || part.id !== id || index !== part.parts.length) {
    delete incoming[name];
    pullOnce(
      state,
      /** @type {PayloadName} */
      name,
      id
    );
    return;
  }
  part.parts.push(bytesOf(buffers && buffers[0]));
  if (part.parts.length < count) return;
  delete incoming[name];
  const data = new Uint8Array(size);
  let at = 0;
  for (const piece of part.parts) {
    if (at + piece.length > size) break;
    data.set(piece, at);
    at += piece.length;
  }
  if (at !== size || part.parts.some((piece) => !piece.length)) {
    pullOnce(
      state,
      /** @type {PayloadName} */
      name,
      id
    );
    return;
  }
  state.received[name] = { id, data };
  CHUNKED_PAINTS[name](state);
}
function modelListeners(state) {
  const later = (...parts) => () => schedule(state, ...parts);
  const core = {
    "msg:custom": (content, buffers) => onCustom(state, content, buffers),
    "change:_layers": later(syncLayers),
    "change:all_layers": later(syncLayers),
    "change:layer": later(syncLayers, syncSimple, paintChart2),
    "change:_order": later(syncChannels),
    "change:sort_by": later(syncSimple),
    "change:num_features": later(syncSimple),
    "change:color_scale": later(syncSimple),
    "change:channel": later(syncSimple),
    "change:device": later(syncSimple),
    "change:_devices": later(syncSimple),
    "change:compare": later(syncSimple, paintChart2),
    "change:image_index": later(syncSimple),
    "change:_image": () => {
      showPicture(state);
      schedule(state, syncSimple);
    },
    "change:statistics": later(paintStats),
    "change:compare_statistics": later(paintChart2),
    "change:busy": later(syncStatus),
    "change:_job": later(syncStatus),
    "change:progress": later(syncStatus),
    "change:status": later(syncStatus),
    "change:error": later(syncStatus)
  };
  for (const [event, repaint] of Object.entries(panelListeners(state))) {
    const first = core[event];
    core[event] = first ? () => (first(), repaint()) : repaint;
  }
  return core;
}
async function upload(state, file) {
  const { model, messages, contract, dom } = state;
  if (file.size > contract.max_upload_bytes) {
    dom.errorBox.hidden = false;
    const mb = Math.round(contract.max_upload_bytes / 2 ** 20);
    dom.errorText.textContent = `${file.name} is larger than ${mb} MB; please pick a smaller image.`;
    return;
  }
  const buffer = await file.arrayBuffer();
  const size = buffer.byteLength;
  const asText = jsonOnlyHost();
  const step = asText ? Math.floor(contract.chunk_bytes * 3 / 4) : contract.chunk_bytes;
  const count = Math.max(1, Math.ceil(size / step));
  const id = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  for (let index = 0; index < count; index++) {
    const piece = buffer.slice(index * step, (index + 1) * step);
    const about = { name: file.name, id, index, count, size };
    if (asText) {
      model.send({ type: messages.upload, ...about, [contract.upload_data_key]: base64(piece) });
    } else {
      model.send({ type: messages.upload, ...about }, void 0, [piece]);
    }
  }
}
function jsonOnlyHost() {
  const host = (
    /** @type {{ google?: { colab?: unknown } }} */
    globalThis
  );
  return Boolean(host.google && host.google.colab);
}
function base64(bytes) {
  const view = new Uint8Array(bytes);
  let binary = "";
  for (let start = 0; start < view.length; start += 32768) {
    binary += String.fromCharCode(...view.subarray(start, start + 32768));
  }
  return btoa(binary);
}
function exportPng(state) {
  const { dom } = state;
  const view = dom.exportView.value;
  const canvas = dom.exportCanvases[view];
  if (!canvas) return;
  const link = document.createElement("a");
  link.href = canvas.toDataURL("image/png");
  link.download = `${["featviz", state.get("layer"), view].filter(Boolean).join("-")}.png`.replace(/[^\w.-]+/g, "_");
  dom.root.append(link);
  link.click();
  link.remove();
}

// src/controls.js
function wireControls(state) {
  const { model, messages, dom, get, save } = state;
  dom.filter.addEventListener("input", () => syncLayers(state));
  dom.layerSelect.addEventListener("change", () => save({ layer: dom.layerSelect.value }));
  dom.allToggle.addEventListener("change", () => save({ all_layers: dom.allToggle.checked }));
  dom.sortSelect.addEventListener("change", () => save({ sort_by: dom.sortSelect.value }));
  dom.channelSelect.addEventListener("change", () => selectChannel(state, Number(dom.channelSelect.value)));
  dom.scaleSelect.addEventListener("change", () => save({ color_scale: dom.scaleSelect.value }));
  dom.deviceSelect.addEventListener("change", () => save({ device: dom.deviceSelect.value }));
  const commitNum = () => {
    clearTimeout(state.timers.num);
    const value = Math.round(Number(dom.numInput.value));
    if (Number.isFinite(value) && value >= 1 && value !== get("num_features")) save({ num_features: value });
  };
  dom.numInput.addEventListener("input", () => {
    clearTimeout(state.timers.num);
    state.timers.num = setTimeout(commitNum, 300);
  });
  dom.numInput.addEventListener("change", commitNum);
  dom.cancelButton.addEventListener("click", () => model.send({ type: messages.cancel }));
  dom.errorClose.addEventListener("click", () => save({ error: "" }));
  dom.compareButton.addEventListener("click", () => {
    const names = [...get("compare") || []];
    const layer = get("layer");
    const at = names.indexOf(layer);
    if (at >= 0) names.splice(at, 1);
    else names.push(layer);
    if (names.length) save({ compare: names });
  });
  dom.fileInput.addEventListener("change", () => {
    const file = dom.fileInput.files && dom.fileInput.files[0];
    dom.fileInput.value = "";
    if (file) void upload(state, file);
  });
  dom.exportButton.addEventListener("click", () => exportPng(state));
  const stepImage = (step) => {
    const count = (get("_image") || {}).batch || 1;
    const next = get("image_index") + step;
    if (!step || next < 0 || next >= count) return false;
    save({ image_index: next });
    return true;
  };
  dom.prevImage.addEventListener("click", () => stepImage(-1));
  dom.nextImage.addEventListener("click", () => stepImage(1));
  dom.inputCanvas.tabIndex = 0;
  dom.inputCanvas.addEventListener("keydown", (event) => {
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (stepImage(step)) event.preventDefault();
  });
}

// src/index.js
function render({ model, el }) {
  const state = createState(model, buildDom(model.get("_contract")));
  el.append(state.dom.root);
  buildPanels(state);
  const listeners = modelListeners(state);
  for (const [event, callback] of Object.entries(listeners)) model.on(event, callback);
  wireControls(state);
  wireSnapshot(state);
  const stops = [watchSize(state), watchTheme(state), wireModels(state), wirePanels(state)];
  state.onSnapshot = () => schedule(state, syncStatus);
  measure(state);
  syncLayers(state);
  syncChannels(state);
  syncSimple(state);
  syncStatus(state);
  paintStats(state);
  paintAll(state);
  showPicture(state);
  pull(state);
  return () => {
    state.closed = true;
    clearTimeout(state.pulling);
    for (const stop of stops) stop();
    clearTimeout(state.timers.num);
    clearTimeout(state.timers.channels);
    for (const [event, callback] of Object.entries(listeners)) model.off(event, callback);
    state.dom.root.remove();
  };
}
export default { render };
