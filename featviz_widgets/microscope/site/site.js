// The microscope's page: every view is drawn here from data/manifest.js and, per layer,
// data/<layer>.js, each a classic script that hands its data to window.fvzMicroscope (file://
// pages may not fetch() their sibling files). A layer's script is loaded the first time that
// layer is shown. Routes: "#" the layers, "#<layer>" its units, "#<layer>/<unit>" one unit.
(function () {
  "use strict";

  const state = {
    manifest: null,
    layers: new Map(), // name -> data
    waiting: new Map(), // name -> { promise, resolve, reject }
    sort: { key: "unit", down: false },
    search: "",
  };

  window.fvzMicroscope = {
    manifest(data) {
      state.manifest = data;
      route();
    },
    layer(name, data) {
      state.layers.set(name, data);
      const wait = state.waiting.get(name);
      if (wait) {
        state.waiting.delete(name);
        wait.resolve(data);
      }
    },
  };

  function loadLayer(entry) {
    if (state.layers.has(entry.name)) return Promise.resolve(state.layers.get(entry.name));
    if (state.waiting.has(entry.name)) return state.waiting.get(entry.name).promise;
    const wait = {};
    wait.promise = new Promise((resolve, reject) => {
      wait.resolve = resolve;
      wait.reject = reject;
    });
    state.waiting.set(entry.name, wait);
    const script = document.createElement("script");
    script.src = "data/" + entry.file + ".js";
    script.onerror = () => {
      state.waiting.delete(entry.name);
      script.remove();
      wait.reject(new Error("could not load " + script.src));
    };
    document.head.appendChild(script);
    return wait.promise;
  }

  // ------------------------------------------------------------------------ helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const fmt = (value) =>
    value === null || value === undefined ? "–" : Number(value).toPrecision(4);
  const percent = (value) =>
    value === null || value === undefined ? "–" : (100 * value).toFixed(1) + "%";
  const layerHref = (name) => "#" + encodeURIComponent(name);
  const unitHref = (name, unit) => layerHref(name) + "/" + unit;
  // A unit that sees the whole image: the image (shared by every unit) and its cell outlined.
  const cropSrc = (data, unit, rank) =>
    data.top[unit][rank].cell
      ? "images/" + data.top[unit][rank].image + "." + data.extension
      : "crops/" + data.file + "/" + unit + "-" + rank + "." + data.extension;

  function cropFrame(data, unit, rank, attrs) {
    const entry = data.top[unit][rank];
    const img = el("img", { src: cropSrc(data, unit, rank), ...attrs });
    if (!entry.cell) return img;
    const [top, bottom, left, right] = entry.cell;
    const [height, width] = data.input_size;
    const pct = (value, total) => (100 * value) / total + "%";
    const outline = el("div", {
      class: "cell",
      style:
        `top: ${pct(top, height)}; height: ${pct(bottom - top, height)}; ` +
        `left: ${pct(left, width)}; width: ${pct(right - left, width)};`,
    });
    return el("div", { class: "frame" }, img, outline);
  }

  function show(...nodes) {
    const app = document.getElementById("app");
    app.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined));
  }

  function trail(...links) {
    document.getElementById("trail").replaceChildren(
      ...links.flatMap((link, i) => (i ? [" / ", link] : [link])),
    );
  }

  function parseHash() {
    const hash = location.hash.replace(/^#/, "");
    if (!hash) return {};
    const slash = hash.lastIndexOf("/");
    if (slash < 0) return { layer: decodeURIComponent(hash) };
    return {
      layer: decodeURIComponent(hash.slice(0, slash)),
      unit: hash.slice(slash + 1),
    };
  }

  // ------------------------------------------------------------------------ views
  function route() {
    const manifest = state.manifest;
    if (!manifest) return;
    document.title = "Microscope: " + manifest.model;
    document.getElementById("home").textContent = "Microscope: " + manifest.model;
    const where = parseHash();
    if (where.layer === undefined) return showHome(manifest);
    const entry = manifest.layers.find((layer) => layer.name === where.layer);
    if (!entry) {
      trail();
      return show(el("p", { class: "error", text: "No layer " + where.layer + " here." }));
    }
    show(el("p", { class: "note", text: "Loading " + entry.name + "…" }));
    const asked = location.hash;
    loadLayer(entry).then(
      (data) => {
        if (location.hash !== asked) return; // the reader moved on
        if (where.unit === undefined) showLayer(data);
        else showUnit(data, where.unit);
      },
      (error) => show(el("p", { class: "error", text: String(error.message || error) })),
    );
  }

  function showHome(manifest) {
    trail();
    const rows = manifest.layers.map((layer) =>
      el(
        "tr",
        { "data-layer": layer.name },
        el("td", {}, el("a", { href: layerHref(layer.name), text: layer.name })),
        el("td", { text: String(layer.channels) }),
        el("td", { text: layer.grid.join(" × ") }),
      ),
    );
    const go = el("input", { type: "number", min: "0", placeholder: "unit", id: "go-unit" });
    const pick = el(
      "select",
      { id: "go-layer" },
      ...manifest.layers.map((layer) => el("option", { value: layer.name, text: layer.name })),
    );
    const form = el(
      "form",
      {
        class: "search",
        onsubmit: (event) => {
          event.preventDefault();
          if (go.value !== "") location.hash = unitHref(pick.value, Number(go.value));
        },
      },
      "Go to unit ",
      go,
      " of ",
      pick,
      " ",
      el("button", { type: "submit", text: "Open" }),
    );
    const skipped = manifest.skipped.length
      ? el(
          "section",
          { id: "skipped" },
          el("h2", { text: manifest.skipped.length + " image(s) could not be read (skipped)" }),
          el(
            "ul",
            {},
            ...manifest.skipped.map(([name, reason]) =>
              el("li", {}, el("code", { text: name }), ": " + reason),
            ),
          ),
        )
      : null;
    show(
      el(
        "p",
        {},
        `${manifest.scanned} of ${manifest.images} images scanned; the top ${manifest.k} per unit.`,
      ),
      form,
      el(
        "table",
        { id: "layers" },
        el(
          "thead",
          {},
          el("tr", {}, el("th", { text: "layer" }), el("th", { text: "units" }), el("th", { text: "map" })),
        ),
        el("tbody", {}, ...rows),
      ),
      skipped,
    );
  }

  const COLUMNS = [
    ["unit", "unit"],
    ["mean", "mean"],
    ["max", "max"],
    ["sparsity", "sparsity"],
  ];

  function unitOrder(data) {
    const { key, down } = state.sort;
    const units = [...Array(data.channels).keys()];
    const value = (unit) => (key === "unit" ? unit : data[key][unit]);
    units.sort((a, b) => {
      const x = value(a);
      const y = value(b);
      if (x === y || (x === null && y === null)) return a - b;
      if (x === null) return 1; // no value: last either way
      if (y === null) return -1;
      return down ? y - x : x - y;
    });
    return units;
  }

  function showLayer(data) {
    trail(el("a", { href: layerHref(data.name), text: data.name }));
    const search = el("input", {
      type: "search",
      id: "unit-search",
      placeholder: "unit number",
      value: state.search,
    });
    const body = el("tbody");
    const fill = () => {
      const wanted = search.value.trim();
      state.search = wanted;
      const rows = unitOrder(data)
        .filter((unit) => wanted === "" || String(unit).startsWith(wanted))
        .map((unit) =>
          el(
            "tr",
            { "data-unit": String(unit) },
            el("td", {}, el("a", { href: unitHref(data.name, unit), text: String(unit) })),
            el(
              "td",
              {},
              data.top[unit].length
                ? cropFrame(data, unit, 0, { class: "thumb", loading: "lazy", alt: "" })
                : null,
            ),
            el("td", { text: fmt(data.mean[unit]) }),
            el("td", { text: fmt(data.max[unit]) }),
            el("td", { text: percent(data.sparsity[unit]) }),
          ),
        );
      body.replaceChildren(...rows);
    };
    search.addEventListener("input", fill);
    const header = el(
      "tr",
      {},
      ...COLUMNS.flatMap(([key, label]) => {
        const sorted = state.sort.key === key;
        const th = el("th", {
          class: "sortable" + (sorted ? " sorted" + (state.sort.down ? "" : " up") : ""),
          "data-sort": key,
          text: label,
          onclick: () => {
            state.sort =
              state.sort.key === key
                ? { key, down: !state.sort.down }
                : { key, down: key !== "unit" };
            showLayer(data);
          },
        });
        // the top image's crop beside the unit's number
        return key === "unit" ? [th, el("th", { text: "top image" })] : [th];
      }),
    );
    show(
      el("h1", { text: data.name }),
      el("p", {
        class: "note",
        text: `${data.channels} units on a ${data.grid.join(" × ")} map. Mean, max and sparsity (values exactly 0) over the images and positions.`,
      }),
      el("div", { class: "search" }, "Search: ", search),
      el("table", { id: "units" }, el("thead", {}, header), body),
    );
    fill();
  }

  function histogram(edges, counts) {
    // Only the bins from the first to the last non-empty one.
    let first = counts.findIndex((c) => c > 0);
    let last = counts.length - 1 - [...counts].reverse().findIndex((c) => c > 0);
    if (first < 0) return el("p", { class: "note", text: "no values" });
    const width = 320;
    const height = 90;
    const bins = counts.slice(first, last + 1);
    const top = Math.max(...bins);
    const step = width / bins.length;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "histogram");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height + 14);
    bins.forEach((count, i) => {
      const rect = document.createElementNS(svg.namespaceURI, "rect");
      const h = (count / top) * height;
      rect.setAttribute("x", i * step + 1);
      rect.setAttribute("y", height - h);
      rect.setAttribute("width", Math.max(1, step - 2));
      rect.setAttribute("height", h);
      const bin = first + i;
      const low = bin === 0 ? "−∞" : fmt(edges[bin - 1]);
      const high = bin === edges.length ? "∞" : fmt(edges[bin]);
      const title = document.createElementNS(svg.namespaceURI, "title");
      title.textContent = `[${low}, ${high}): ${count} image(s)`;
      rect.append(title);
      svg.append(rect);
    });
    const label = (x, text, anchor) => {
      const node = document.createElementNS(svg.namespaceURI, "text");
      node.setAttribute("x", x);
      node.setAttribute("y", height + 12);
      node.setAttribute("text-anchor", anchor);
      node.textContent = text;
      svg.append(node);
    };
    label(0, first === 0 ? "−∞" : fmt(edges[first - 1]), "start");
    label(width, last === edges.length ? "∞" : fmt(edges[last]), "end");
    return svg;
  }

  function showUnit(data, unitText) {
    const unit = Number(unitText);
    trail(
      el("a", { href: layerHref(data.name), text: data.name }),
      el("a", { href: unitHref(data.name, unitText), text: "unit " + unitText }),
    );
    if (!/^\d+$/.test(unitText) || unit >= data.channels) {
      return show(
        el("p", {
          class: "error",
          text: `${data.name} has units 0 to ${data.channels - 1}; there is no unit ${unitText}.`,
        }),
      );
    }
    const top = data.top[unit];
    const crops = top.map((entry, rank) =>
      el(
        "figure",
        {
          class: "crop",
          "data-rank": String(rank),
          "data-image": String(entry.image),
          "data-score": String(entry.score),
        },
        cropFrame(data, unit, rank, {
          alt: "crop of " + data.names[entry.image],
          title: `position ${entry.at.join(", ")} of the map`,
        }),
        el(
          "figcaption",
          {},
          el("span", { class: "name", text: data.names[entry.image] }),
          el("br"),
          el("span", { class: "value", text: fmt(entry.score) }),
        ),
      ),
    );
    const stats = el(
      "dl",
      { class: "stats", id: "stats" },
      el("dt", { text: "mean" }),
      el("dd", { "data-stat": "mean", text: fmt(data.mean[unit]) }),
      el("dt", { text: "max" }),
      el("dd", { "data-stat": "max", text: fmt(data.max[unit]) }),
      el("dt", { text: "sparsity" }),
      el("dd", { "data-stat": "sparsity", text: percent(data.sparsity[unit]) }),
    );
    let classes;
    if (data.classes.values) {
      const values = data.classes.values[unit];
      const order = values.map((_, j) => j).sort((a, b) => values[b] - values[a] || a - b);
      classes = el(
        "table",
        { id: "classes" },
        el("thead", {}, el("tr", {}, el("th", { text: "class" }), el("th", { text: "contribution" }))),
        el(
          "tbody",
          {},
          ...order.map((j) =>
            el(
              "tr",
              { "data-class": String(data.classes.ids[j]) },
              el("td", { text: data.classes.names[j] }),
              el("td", { text: fmt(values[j]) }),
            ),
          ),
        ),
      );
    } else {
      classes = el("p", { class: "note", id: "classes-note", text: data.classes.note });
    }
    const pager = el(
      "div",
      { class: "pager" },
      unit > 0 ? el("a", { href: unitHref(data.name, unit - 1), text: "← unit " + (unit - 1) }) : null,
      unit + 1 < data.channels
        ? el("a", { href: unitHref(data.name, unit + 1), text: "unit " + (unit + 1) + " →" })
        : null,
    );
    show(
      el("h1", { text: `${data.name}, unit ${unit}` }),
      pager,
      el(
        "section",
        {},
        el("h2", { text: `Top ${top.length} images` }),
        top.length
          ? el("div", { class: "crops", id: "crops" }, ...crops)
          : el("p", { class: "note", text: "no image" }),
      ),
      data.looks_for
        ? el(
            "section",
            { class: "looks" },
            el("h2", { text: "Looks for" }),
            el("img", {
              id: "looks-for",
              src: "looks/" + data.file + "/" + unit + "." + data.extension,
              alt: "an image optimised to excite this unit",
            }),
          )
        : null,
      el("section", {}, el("h2", { text: "Over the images" }), stats),
      el(
        "section",
        {},
        el("h2", { text: "Per-image maximum" }),
        histogram(data.edges, data.histogram[unit]),
      ),
      el(
        "section",
        {},
        el("h2", { text: "Class contributions" }),
        el("p", {
          class: "note",
          text: "Gradient × activation of this unit towards each class's logit, summed over positions, averaged over its top images.",
        }),
        classes,
      ),
    );
  }

  window.addEventListener("hashchange", route);
})();
