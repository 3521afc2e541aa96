// Builds the front end anywidget loads: js/src/index.js and the modules it imports, bundled by
// esbuild into ONE ES module (anywidget loads `_esm` from a blob URL, where relative imports
// cannot resolve), and js/src/widget.css copied beside it. `npm run build` writes both into
// featviz_widgets/static/, where they are committed (so `pip install` needs no Node);
// `npm run build -- --outdir=DIR` writes them into DIR instead (tests/test_js.py compares).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const option = process.argv.slice(2).find((arg) => arg.startsWith("--outdir="));
const outdir = option ? resolve(option.slice("--outdir=".length)) : join(here, "..", "featviz_widgets", "static");
const notice = "generated from js/src by `npm run build` in js/: do not edit, edit js/src instead";

const result = await build({
  entryPoints: [join(here, "src", "index.js")],
  outfile: join(outdir, "widget.js"),
  bundle: true,
  format: "esm",
  target: "es2022",
  charset: "utf8",
  legalComments: "none",
  minify: false,
  sourcemap: false,
  banner: { js: `// featviz_widgets front end, ${notice}.` },
  absWorkingDir: here,
  logLevel: "warning",
  write: false,
});
// esbuild writes the entry's `export default { render }` as `var index_default = ...; export {
// index_default as default };`: put it back as written, the form anywidget's docs (and
// tests/test_widget.py) know.
const [bundle] = result.outputFiles;
const exported = /^var (\w+) = (\{ render \});\nexport \{\n {2}\1 as default\n\};\n$/m;
if (!exported.test(bundle.text)) throw new Error("build.mjs: the bundle's default export is not where expected");
await mkdir(outdir, { recursive: true });
await writeFile(bundle.path, bundle.text.replace(exported, "export default $2;\n"));
const css = await readFile(join(here, "src", "widget.css"), "utf8");
await writeFile(join(outdir, "widget.css"), `/* featviz_widgets styles, ${notice}. */\n${css}`);
