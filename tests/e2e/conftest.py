"""Fixtures for the real-browser tests: one Jupyter server and one Chromium per session,
a fresh page per test (with a screenshot and the console log kept when a test fails)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from .jupyter import ARTIFACTS, CHROMIUM, launch_browser, running_server


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("jupyterlab")
    pytest.importorskip("notebook")
    with running_server(tmp_path_factory.mktemp("jupyter")) as server:
        yield server


@pytest.fixture
def stop_kernels(jupyter_server):
    """Each test starts its own kernel; stop them all after it (CPU and memory for the next)."""
    yield
    for kernel in json.loads(jupyter_server.api("GET", "/api/kernels")):
        jupyter_server.api("DELETE", f"/api/kernels/{kernel['id']}")


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1700}, accept_downloads=True)
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: messages.append(f"pageerror: {exc}"))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = request.node.name.replace("/", "_")
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"failed-{name}.png"), full_page=True)
        (ARTIFACTS / f"failed-{name}.console.txt").write_text("\n".join(messages))
    context.close()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test of this folder runs on one pytest-xdist worker (`--dist loadgroup`), so the
    session's one Jupyter server and one Chromium are started once, not once per worker; a
    test in a notebook server (a kernel, a page of JupyterLab) is `slow`."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("browser"))
            if "jupyter_server" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
