// @ts-check
// Colour tables: 256 RGB triples each, built once when the module loads.

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

export const VIRIDIS = viridisTable();
export const HOT = hotTable();

/** @returns {Uint8ClampedArray} matplotlib's "jet": blue, cyan, yellow, red (the Grad-CAM). */
function jetTable() {
  const table = new Uint8ClampedArray(256 * 3);
  /** @param {number} x */
  const ramp = (x) => 255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * x)));
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    table[i * 3] = ramp(x - 0.75);
    table[i * 3 + 1] = ramp(x - 0.5);
    table[i * 3 + 2] = ramp(x - 0.25);
  }
  return table;
}

export const JET = jetTable();
