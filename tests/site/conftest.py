"""Fixtures for the browser tests: a local HTTP server over the built site and headless
Chromium from the system (Debian's ``chromium`` package), driven by Playwright.
No browser is downloaded: Playwright only drives ``/usr/bin/chromium``."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def site_dir(request) -> Path:
    path = Path(request.config.getoption("--site")).resolve()
    if not (path / "index.html").is_file():
        pytest.fail(f"--site {path} has no index.html: build the book first (python3 tools/run.py book)")
    return path


@pytest.fixture(scope="session")
def base_url(site_dir):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses the system Chromium)")
    exe = chromium_path()
    if exe is None:
        pytest.fail("no system Chromium: apt-get install chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts(site_dir) -> Path:
    out = site_dir.parent / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out
