"""The microscope's folder: the check that it is ours, its marker, safe file names, and the
classic scripts that carry its data.

A build marks the folder first (the marker says "incomplete") and writes `index.html` last,
then marks it complete: a folder whose build was interrupted has no `index.html`, so it never
looks like a finished site, and the next build (the marker says it is a microscope) may reuse
it and resume the scan from its cache.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "MARKER",
    "MicroscopeError",
    "SITE_FILES",
    "check_out_dir",
    "file_stems",
    "finish",
    "start",
    "write_script",
]

MARKER = ".featviz-microscope.json"
SITE_FILES = ("site.js", "site.css")  # copied as they are; index.html is written last
# What a build writes and so may remove when it starts again (the scan's cache stays).
_GENERATED = ("index.html", "data", "crops", "images", "looks", *SITE_FILES)


class MicroscopeError(ValueError):
    """A microscope cannot be built as asked (an output folder that is not a microscope's, a
    cache of another scan); the message says what to do."""


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """`out_dir` as a Path, refused if it is a file or a non-empty folder without the marker
    (it holds something else, which a build must not mix with or delete)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MicroscopeError(
            f"{os.fspath(out)!r} is a file, not a folder; pick another `out_dir`."
        )
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise MicroscopeError(
            f"{os.fspath(out)!r} is not empty and is not a microscope (it has no {MARKER}); "
            "pick a new or empty folder, or one that an earlier build_microscope wrote."
        )
    return out


def start(out: Path) -> None:
    """Mark `out` as a microscope being built and remove what an earlier build wrote (its
    `index.html` first, so the folder stops looking complete at once)."""
    out.mkdir(parents=True, exist_ok=True)
    _write_marker(out, complete=False)
    for name in _GENERATED:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def finish(out: Path, index_html: str) -> None:
    """Copy the site's script and style, write `index.html` (atomically) and mark the build
    complete."""
    site = resources.files(__package__) / "site"
    for name in SITE_FILES:
        (out / name).write_bytes((site / name).read_bytes())
    _atomic_write(out / "index.html", index_html)
    _write_marker(out, complete=True)


def index_template() -> str:
    """The site's `index.html`, as shipped in the package."""
    return (resources.files(__package__) / "site" / "index.html").read_text(encoding="utf-8")


def _write_marker(out: Path, *, complete: bool) -> None:
    marker = {"format": "featviz-microscope", "version": 1, "complete": complete}
    _atomic_write(out / MARKER, json.dumps(marker))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _stem(name: str) -> str:
    # Letters, digits, dots and dashes stay; anything else, "_" included, becomes _<hex>_, so
    # two names never map to one stem; a leading dot too (no hidden files).
    out = []
    for i, char in enumerate(name):
        keep = char.isascii() and (char.isalnum() or char in ".-") and not (i == 0 and char == ".")
        out.append(char if keep else f"_{ord(char):x}_")
    return "".join(out)


def file_stems(names: list[str]) -> dict[str, str]:
    """A file name stem per layer name: safe in a URL and on any file system, distinct even
    where the file system ignores case."""
    stems: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        stem = base = _stem(name)
        number = 2
        while stem.lower() in taken:
            stem, number = f"{base}-{number}", number + 1
        taken.add(stem.lower())
        stems[name] = stem
    return stems


def plain(value: Any) -> Any:
    """`value` with every float rounded to 6 significant digits and non-finite ones as None
    (JSON has no NaN), recursively."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def write_script(path: Path, call: str, *args: Any) -> int:
    """Write `window.fvzMicroscope.<call>(args...)` as a classic script (the one way a
    file:// page may read a sibling file); returns its size in bytes."""
    body = ", ".join(json.dumps(plain(arg), separators=(",", ":"), allow_nan=False) for arg in args)
    text = f"window.fvzMicroscope.{call}({body});\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))
