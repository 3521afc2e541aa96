"""The CDNs an HTML export loads its widget manager from, served "as if online" from npm.

An nbconvert HTML export with widget state loads requirejs from cdnjs, the widget manager
(`@jupyter-widgets/html-manager`'s `embed-amd.js`) from unpkg, and each widget's front end
module from jsDelivr at the version its model declares (anywidget's `_model_module_version`,
e.g. `~0.11.*`). `CdnFromNpm` answers those URLs in Chromium's request routing with the
files of the same packages, fetched once with `npm pack` into a cache folder; the page itself
is served from a fake https origin (routing does not see requests made by file:// pages).
Every other request to the network is refused, so what paints came from these packages only.

One thing npm cannot give: `embed_minimal_html`'s page pins cdnjs's `require.min.js` by its
SRI hash (`integrity=`), and that minified file is cdnjs's own build, in no npm package (the
`requirejs` package has the unminified `require.js`). Chromium blocks a script whose bytes do
not match, so the page is served with that one attribute removed (`dropped_integrity` says
which); everything else is byte for byte what the CDNs serve from npm.
"""

from __future__ import annotations

import json
import mimetypes
import re
import shutil
import subprocess
import tarfile
import urllib.parse
from pathlib import Path

import pytest

ORIGIN = "https://export.test"
"""Where the exported page is served from (a name no DNS resolves: only the routing answers)."""

# unpkg.com/<name>@<range>/<file> and cdn.jsdelivr.net/npm/<name>@<range>/<file>
_NPM_CDN = re.compile(
    r"^https://(?:unpkg\.com|cdn\.jsdelivr\.net/npm)/((?:@[^/@]+/)?[^/@]+)@([^/]+)/(.+)$"
)
# cdnjs.cloudflare.com/ajax/libs/require.js/<version>/require[.min].js
_REQUIREJS = re.compile(r"^https://cdnjs\.cloudflare\.com/ajax/libs/require\.js/([^/]+)/require")


def npm_package(cache: Path, spec: str) -> Path:
    """The unpacked files of npm package `spec` (`name@range`), `npm pack`ed once into `cache`
    (a range resolves as the registry resolved it the first time)."""
    folder = cache / re.sub(r"[^A-Za-z0-9._@~-]", "_", spec)
    if (folder / "package" / "package.json").exists():
        return folder / "package"
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm not found: the online export tests fetch the widget manager with it")
    download = cache / "download"
    download.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "pack", spec, "--json", "--pack-destination", str(download)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.skip(f"npm pack {spec} failed (no registry?): {done.stderr.strip()[-500:]}")
    tarball = download / json.loads(done.stdout)[0]["filename"]
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(partial, filter="data")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder / "package"


class CdnFromNpm:
    """A page route handler: the export's page from `pages`, CDN files from npm packages."""

    def __init__(self, cache: Path, pages: Path) -> None:
        self.cache = cache
        self.pages = pages
        self.served: list[str] = []  # the CDN URLs answered, in order
        self.refused: list[str] = []  # every other URL
        self.dropped_integrity: list[str] = []  # the scripts whose SRI hash the page lost

    def file_for(self, url: str) -> Path | None:
        url = url.split("?", 1)[0]
        if url.startswith(ORIGIN + "/"):
            return self.pages / urllib.parse.unquote(url[len(ORIGIN) + 1 :])
        if match := _REQUIREJS.match(url):
            return npm_package(self.cache, f"requirejs@{match[1]}") / "require.js"
        if match := _NPM_CDN.match(url):
            name, version, path = match[1], urllib.parse.unquote(match[2]), match[3]
            return npm_package(self.cache, f"{name}@{version}") / path
        return None

    def __call__(self, route) -> None:
        url = route.request.url
        path = self.file_for(url)
        if path is None or not path.is_file():
            self.refused.append(url)
            route.fulfill(status=404, body="not found")
            return
        if not url.startswith(ORIGIN):
            self.served.append(url)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body = path.read_bytes()
        if url.startswith(ORIGIN) and kind == "text/html":
            body = self._without_requirejs_integrity(body.decode()).encode()
        route.fulfill(status=200, body=body, content_type=kind)

    def _without_requirejs_integrity(self, html: str) -> str:
        def drop(tag: re.Match) -> str:
            src = re.search(r'src="([^"]+)"', tag[0])
            if src is None or not _REQUIREJS.match(src[1]):
                return tag[0]
            self.dropped_integrity.append(src[1])
            return re.sub(r'\s+integrity="[^"]*"', "", tag[0])

        return re.sub(r"<script\b[^>]*\bintegrity=[^>]*>", drop, html)

    def open(self, page, name: str) -> None:
        """Route every http(s) request of `page` here and open the export `name` in it."""
        page.route(re.compile(r"^https?://"), self)
        page.goto(f"{ORIGIN}/{name}")
