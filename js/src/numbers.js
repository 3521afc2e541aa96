// @ts-check
// Bytes and numbers: binary data from the host as Uint8Array, uint8 maps back to values, and
// numbers as people read them.

/** @import { Binary, MapsMeta, Unset } from "./types.js" */

/**
 * A Uint8Array view (no copy) of binary data from the model, whatever the host hands over: Bytes
 * traits arrive as DataView, custom-message buffers as DataView or (Colab) Uint8Array; an
 * ArrayBuffer or another typed array works too. Every binary read goes through here.
 * @param {Binary} value
 * @returns {Uint8Array}
 */
export function bytesOf(value) {
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

/**
 * The value of byte `q` of map `i` (see featviz_widgets/widget/payload.py).
 * @param {MapsMeta} meta @param {number} i @param {number} q
 */
export function dequantise(meta, i, q) {
  const lo = meta.lo[i] ?? 0;
  return lo + (q / 255) * ((meta.hi[i] ?? 0) - lo);
}

/**
 * Whether payload metadata describe maps: a Dict trait is `{}` until Python's first payload.
 * @template {MapsMeta} M
 * @param {M | Unset | null | undefined} meta
 * @returns {meta is M}
 */
export function hasMaps(meta) {
  return !!meta && !!meta.n;
}

/**
 * A number for people: 3 significant digits, no exponent for ordinary sizes.
 * @param {unknown} value
 * @returns {string}
 */
export function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const a = Math.abs(value);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return value.toExponential(2);
  return value.toPrecision(3).replace(/\.?0+$/, (m) => (m.includes(".") ? "" : m));
}
