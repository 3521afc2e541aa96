// @ts-check
// Transport between the view and Python: payload chunks and the other custom messages, the
// model events and what each repaints (the panels' own: panel-host.js), uploads in chunks, and
// PNG export. Pulls: pull.js.

import { panelListeners, repaintPanel, showPicture } from "./panel-host.js";
import { PANELS } from "./panels/index.js";
import { bytesOf } from "./numbers.js";
import { pullOnce, pulled } from "./pull.js";
import { schedule } from "./repaint.js";
import { paintChart, paintStats } from "./stats.js";
import { syncChannels, syncLayers, syncSimple, syncStatus } from "./sync.js";

/** @import { Binary, ChunkMessage, Listener, Painter, PayloadName, Pushes, ViewState } from "./types.js" */

// What a complete chunked payload repaints, by trait. A payload larger than one message may
// carry comes in chunks (pushes.chunk), before or after its trait, which then says `chunked`
// instead of holding `data`.
/** @type {Record<string, Painter>} */
const CHUNKED_PAINTS = {
  _image: showPicture,
  ...Object.fromEntries(PANELS.map((panel) => [`_${panel.name}`, (/** @type {ViewState} */ state) => repaintPanel(state, panel)])),
};

/** Whether a custom message is a chunk of a payload this view paints.
 * @param {unknown} content @param {Pushes} pushes @returns {content is ChunkMessage} */
function isChunk(content, pushes) {
  if (!content || typeof content !== "object") return false;
  const message = /** @type {Partial<ChunkMessage>} */ (content);
  return message.type === pushes.chunk && typeof message.name === "string" && Object.hasOwn(CHUNKED_PAINTS, message.name);
}

/**
 * A custom message from Python: the answer to a pull, or a chunk of payload `name`; once all
 * chunks are there, keep the assembled bytes and repaint. A chunk out of order drops the
 * payload's chunks so far (nothing partial is painted) and pulls it again.
 * @param {ViewState} state @param {unknown} content @param {readonly Binary[]} [buffers]
 */
function onCustom(state, content, buffers) {
  const { incoming } = state;
  if (content && typeof content === "object" && /** @type {{ type?: unknown }} */ (content).type === state.pushes.pulled) {
    pulled(state);
    return;
  }
  if (!isChunk(content, state.pushes)) return;
  const { name, id, index, count, size } = content;
  if (index === 0) incoming[name] = { id, count, size, parts: [] };
  const part = incoming[name];
  if (!part || part.id !== id || index !== part.parts.length) {
    delete incoming[name]; // a chunk went missing: ask for the payload again
    pullOnce(state, /** @type {PayloadName} */ (name), id);
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
    pullOnce(state, /** @type {PayloadName} */ (name), id); // the wrong size: never painted
    return;
  }
  state.received[name] = { id, data };
  CHUNKED_PAINTS[name](state);
}

/** The model's events and what each repaints (model.on / model.off).
 * @param {ViewState} state @returns {Record<string, Listener>} */
export function modelListeners(state) {
  /** @param {...Painter} parts */
  const later = (...parts) => () => schedule(state, ...parts);
  /** @type {Record<string, Listener>} */
  const core = {
    "msg:custom": (content, buffers) => onCustom(state, content, buffers),
    "change:_layers": later(syncLayers),
    "change:all_layers": later(syncLayers),
    "change:layer": later(syncLayers, syncSimple, paintChart),
    "change:_order": later(syncChannels),
    "change:sort_by": later(syncSimple),
    "change:num_features": later(syncSimple),
    "change:color_scale": later(syncSimple),
    "change:channel": later(syncSimple),
    "change:device": later(syncSimple),
    "change:_devices": later(syncSimple),
    "change:compare": later(syncSimple, paintChart),
    "change:image_index": later(syncSimple),
    "change:_image": () => {
      showPicture(state);
      schedule(state, syncSimple);
    },
    "change:statistics": later(paintStats),
    "change:compare_statistics": later(paintChart),
    "change:busy": later(syncStatus),
    "change:_job": later(syncStatus),
    "change:progress": later(syncStatus),
    "change:status": later(syncStatus),
    "change:error": later(syncStatus),
  };
  // a panel repaints on events the core listens to as well: both run
  for (const [event, repaint] of Object.entries(panelListeners(state))) {
    const first = core[event];
    core[event] = first ? () => (first(), repaint()) : repaint;
  }
  return core;
}

/** Send an image file to Python in chunks of at most `contract.chunk_bytes` (large messages
 * drop some hosts' connections), or say why not.
 * @param {ViewState} state @param {File} file */
export async function upload(state, file) {
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
  // base64 text is 4/3 of its bytes: smaller pieces keep each message within the bound.
  const step = asText ? Math.floor((contract.chunk_bytes * 3) / 4) : contract.chunk_bytes;
  const count = Math.max(1, Math.ceil(size / step));
  const id = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  for (let index = 0; index < count; index++) {
    const piece = buffer.slice(index * step, (index + 1) * step);
    const about = { name: file.name, id, index, count, size };
    if (asText) {
      model.send({ type: messages.upload, ...about, [contract.upload_data_key]: base64(piece) });
    } else {
      model.send({ type: messages.upload, ...about }, undefined, [piece]);
    }
  }
}

/** Whether the host carries front-end messages as JSON only (Colab drops binary buffers). */
function jsonOnlyHost() {
  const host = /** @type {{ google?: { colab?: unknown } }} */ (globalThis);
  return Boolean(host.google && host.google.colab);
}

/** Bytes as base64 text.
 * @param {ArrayBuffer} bytes */
function base64(bytes) {
  const view = new Uint8Array(bytes);
  let binary = "";
  for (let start = 0; start < view.length; start += 0x8000) {
    binary += String.fromCharCode(...view.subarray(start, start + 0x8000));
  }
  return btoa(binary);
}

/** Download the chosen export view's canvas as a PNG.
 * @param {ViewState} state */
export function exportPng(state) {
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
