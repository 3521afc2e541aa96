"""js/widget.js as it ships: `tsc` type-checks it, and its functions stay short.

The front end has no build step: the file the wheel carries is the file checked here. Its types
are JSDoc comments under `// @ts-check`; `js/tsconfig.json` sets `tsc` to strict with no output.
TypeScript is pinned in js/package.json and js/package-lock.json; `npm ci` installs it into the
git-ignored js/node_modules when that is missing or does not match the lock file.
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
SOURCE = (JS / "widget.js").read_text()
MAX_FUNCTION_LINES = 150
MAX_RENDER_LINES = 40


def _locked(path: Path) -> dict[str, str | None]:
    """The packages a lock file names (the project itself left out), with their versions."""
    packages = json.loads(path.read_text()).get("packages", {})
    return {name: entry.get("version") for name, entry in packages.items() if name}


def _npm(*args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH: install Node.js and npm to type-check js/widget.js")
    return subprocess.run(
        [npm, *args], cwd=JS, capture_output=True, text=True, timeout=timeout, check=False
    )


def _install() -> None:
    """`npm ci` unless js/node_modules already holds exactly what the lock file names."""
    installed = JS / "node_modules" / ".package-lock.json"
    if installed.is_file() and _locked(installed) == _locked(JS / "package-lock.json"):
        return
    done = _npm("ci", "--no-audit", "--no-fund", timeout=300)
    assert done.returncode == 0, f"npm ci failed in js/:\n{done.stdout}\n{done.stderr}"


@pytest.mark.timeout(600)
def test_widget_js_type_checks():
    _install()
    done = _npm("exec", "--no", "--", "tsc", "-p", ".", timeout=300)
    assert done.returncode == 0, f"tsc -p js reports:\n{done.stdout}\n{done.stderr}"


def test_widget_js_is_checked_as_shipped():
    assert SOURCE.startswith("// @ts-check\n")
    config = (JS / "tsconfig.json").read_text()
    for option in ('"checkJs": true', '"strict": true', '"noEmit": true'):
        assert option in config
    assert re.search(r'"files":\s*\["widget\.js"\]', config)
    lock = json.loads((JS / "package.json").read_text())["devDependencies"]["typescript"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", lock), f"pin typescript exactly, not {lock!r}"


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
    lengths = top_level_functions(SOURCE)
    assert len(lengths) > 30 and "render" in lengths, "the parser found too few functions"
    long = {name: n for name, n in lengths.items() if n > MAX_FUNCTION_LINES}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines in js/widget.js: {long}"
    assert lengths["render"] <= MAX_RENDER_LINES, "render() should only wire the parts together"
