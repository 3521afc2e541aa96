"""The front end: js/src's modules type-check and stay small, and the shipped bundle is fresh.

The source is ES modules in js/src, typed with JSDoc under `// @ts-check`; `js/tsconfig.json` sets
`tsc` to strict with no output over every module there. esbuild (`npm run build` in js/, see
js/build.mjs) bundles them into one ES module, featviz_widgets/static/widget.js, and copies the
CSS beside it; both are committed, so the test here rebuilds them into a temporary folder and
compares. TypeScript and esbuild are pinned in js/package.json and js/package-lock.json; `npm ci`
installs them into the git-ignored js/node_modules when that is missing or does not match the
lock file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
JS = REPO / "js"
MODULES = sorted((JS / "src").rglob("*.js"))  # the panels' modules in src/panels/ too
SOURCES = {path.relative_to(JS / "src").as_posix(): path.read_text() for path in MODULES}
STATIC = REPO / "featviz_widgets" / "static"
BUNDLED = ("widget.js", "widget.css")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 150
MAX_RENDER_LINES = 40

# One worker runs these: two `npm ci` at once in js/ would trip over each other's node_modules.
pytestmark = pytest.mark.xdist_group("npm")


def _locked(path: Path) -> dict[str, str | None]:
    """The packages a lock file names (the project itself left out), with their versions."""
    packages = json.loads(path.read_text()).get("packages", {})
    return {name: entry.get("version") for name, entry in packages.items() if name}


def _npm(*args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "npm is not on PATH: install Node.js and npm (`apt-get install -y nodejs npm`, as "
            "the README's test command does) to check and build js/src"
        )
    return subprocess.run(
        [npm, *args], cwd=JS, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_this_file_runs_on_the_one_worker_of_its_group(request):
    """Under `--dist loadgroup` (pyproject's addopts) this file's tests share one pytest-xdist
    worker, which pytest-xdist tells by a suffix on the node id: without it, two workers ran
    `npm ci` in js/ at once and one failed (ENOTEMPTY)."""
    config = request.config
    if hasattr(config, "workerinput") and config.getvalue("loadgroup"):
        assert request.node.nodeid.endswith("@npm"), request.node.nodeid


def _install() -> None:
    """`npm ci` unless js/node_modules already holds exactly what the lock file names."""
    installed = JS / "node_modules" / ".package-lock.json"
    if installed.is_file() and _locked(installed) == _locked(JS / "package-lock.json"):
        return
    done = _npm("ci", "--no-audit", "--no-fund", timeout=300)
    assert done.returncode == 0, f"npm ci failed in js/:\n{done.stdout}\n{done.stderr}"


@pytest.mark.timeout(600)
def test_js_src_type_checks():
    _install()
    done = _npm("exec", "--no", "--", "tsc", "-p", ".", timeout=300)
    assert done.returncode == 0, f"tsc -p js reports:\n{done.stdout}\n{done.stderr}"


def test_tsc_checks_every_module_strictly():
    config = (JS / "tsconfig.json").read_text()
    for option in ('"checkJs": true', '"strict": true', '"noEmit": true'):
        assert option in config
    assert re.search(r'"include":\s*\["src/\*\*/\*\.js"\]', config)
    assert not re.search(r'"(files|exclude)"', config), "tsc must check every module in js/src"
    pins = json.loads((JS / "package.json").read_text())["devDependencies"]
    for tool in ("typescript", "esbuild"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", pins[tool]), f"pin {tool} exactly, not {pins[tool]!r}"


def test_modules_are_small_and_checked():
    assert {"index.js", "types.js", "panels/grid.js", "transport.js"} <= set(SOURCES)
    assert len(SOURCES) >= 10, "the front end is one module per view, plus helpers"
    for name, source in SOURCES.items():
        assert source.startswith("// @ts-check\n"), f"js/src/{name} must start with // @ts-check"
        lines = source.count("\n")
        assert lines <= MAX_MODULE_LINES, f"js/src/{name} has {lines} lines (> {MAX_MODULE_LINES})"


def test_typedefs_live_in_types_js_or_beside_their_panel():
    # a panel's payload type sits beside its painter (js/src/panels/), every other in types.js
    elsewhere = [
        name
        for name, source in SOURCES.items()
        if "@typedef" in source and not name.startswith("panels/")
    ]
    assert elsewhere == ["types.js"], f"typedefs outside js/src/types.js: {elsewhere}"
    # types only: no code for the bundle, and no module it depends on at run time
    code = [
        line for line in SOURCES["types.js"].splitlines() if not line.startswith(("//", "/*", " *"))
    ]
    assert [line for line in code if line] == ["export {};"], code


def top_level_functions(source: str) -> dict[str, int]:
    """Each top-level `function` of `source` and its length in lines (declaration to its `}`)."""
    lengths: dict[str, int] = {}
    start: tuple[str, int] | None = None
    for number, line in enumerate(source.splitlines(), 1):
        match = re.match(r"(?:export )?(?:async )?function\*? (\w+)", line)
        if match:
            assert start is None, f"{match.group(1)} starts inside {start}: unparsed layout"
            start = (match.group(1), number)
        elif line == "}" and start is not None:
            lengths[start[0]] = number - start[1] + 1
            start = None
    assert start is None, f"{start} never closes"
    return lengths


def test_top_level_functions_are_short():
    lengths: dict[str, int] = {}
    for name, source in SOURCES.items():
        found = top_level_functions(source)
        assert not set(found) & set(lengths), f"js/src/{name} repeats {set(found) & set(lengths)}"
        lengths |= {f"{name}:{function}": n for function, n in found.items()}
    assert len(lengths) > 30 and "index.js:render" in lengths, "the parser found too few functions"
    long = {name: n for name, n in lengths.items() if n > MAX_FUNCTION_LINES}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines in js/src: {long}"
    assert lengths["index.js:render"] <= MAX_RENDER_LINES, "render() should only wire the parts"


@pytest.mark.timeout(600)
def test_the_committed_bundle_is_fresh(tmp_path):
    _install()
    done = _npm("run", "build", "--", f"--outdir={tmp_path}", timeout=300)
    assert done.returncode == 0, f"npm run build failed in js/:\n{done.stdout}\n{done.stderr}"
    for name in BUNDLED:
        built = (tmp_path / name).read_bytes()
        shipped = STATIC / name
        assert shipped.is_file(), (
            f"featviz_widgets/static/{name} is missing: run `npm run build` in js/"
        )
        assert shipped.read_bytes() == built, (
            f"featviz_widgets/static/{name} is stale: run `npm run build` in js/ and commit it"
        )


def test_the_bundle_is_one_self_contained_module():
    bundle = (STATIC / "widget.js").read_text()
    first = bundle.splitlines()[0]
    assert "generated from js/src by `npm run build`" in first and "do not edit" in first
    assert not re.search(r"^\s*import\b|\bimport\s*\(", bundle, re.M), "the bundle imports"
    assert "https://" not in bundle, "nothing may load from a CDN at run time"
    assert bundle.endswith("\nexport default { render };\n"), "render is its default export"
    # every module with code is in it (esbuild marks each with `// src/<name>`)
    bundled = set(re.findall(r"^// src/([\w/-]+\.js)$", bundle, re.M))
    assert bundled == set(SOURCES) - {"types.js"}, "a module in js/src is not reached from index.js"
    css = (STATIC / "widget.css").read_text()
    assert "generated from js/src by `npm run build`" in css.splitlines()[0]
    assert css.endswith((JS / "src" / "widget.css").read_text())
