"""What the browser tests share: Debian's Chromium driven by Playwright, against the app under
waitress on a free loopback port. Chromium comes from ``make test`` (scripts/ensure-chromium).

Fixtures (import them into a conftest or a test module to use them by name):

``browser``
    Chromium, one per test module.
``base_url``
    The ``app`` fixture (each test folder makes its own) served by waitress on
    ``127.0.0.1:<free port>`` for the test; never a fixed port, no sleeps.

Helpers: :func:`serve` (any WSGI app, as a context manager), :func:`new_context` (a browser
context that records the page's errors and Content-Security-Policy violations),
:func:`axe_check` (fails on a serious or critical accessibility violation) and
:func:`screenshot` (the PNGs of docs/console/, only when ``VOXPOP_SCREENSHOTS=1``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

__all__ = [
    "CHROMIUM_ARGS",
    "SCREENSHOTS_DIR",
    "TIMEOUT_MS",
    "WATCH_CSP",
    "Watched",
    "axe_check",
    "base_url",
    "browser",
    "chromium_path",
    "new_context",
    "screenshot",
    "serve",
]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Generous: a cold Chromium on a busy CI runner is slow; a passing run never waits this long.
TIMEOUT_MS = 15_000
# The same patience for ``expect(...)``, which otherwise gives up after 5 s: a page that polls
# every 2 s on a loaded 2-core machine can miss that.
expect.set_options(timeout=TIMEOUT_MS)
#: Where :func:`screenshot` writes, for the docs (docs/console.md shows them).
SCREENSHOTS_DIR = Path(__file__).resolve().parent.parent / "docs" / "console"

#: Collects every Content-Security-Policy violation a page reports, from before its first
#: script runs.
WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def chromium_path() -> str:
    path = os.environ.get("VOXPOP_CHROMIUM") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {path}. Run `make test`, which installs Debian's "
            "chromium (scripts/ensure-chromium), or set VOXPOP_CHROMIUM to a Chromium binary.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def serve(app: Flask) -> Iterator[str]:
    """``app`` under waitress on an ephemeral loopback port, stopped on leaving: its URL."""
    # Our own socket map (fd -> waitress dispatcher), so this thread can close it all.
    socket_map: dict[int, Any] = {}
    server = create_server(app, map=socket_map, host="127.0.0.1", port=0, threads=2)
    assert isinstance(server, BaseWSGIServer)
    assert server.socket is not None
    port = server.socket.getsockname()[1]
    stop = threading.Event()

    def run() -> None:
        # Poll in short slices so the loop notices ``stop``; sockets are closed on this
        # thread, never under a select() running elsewhere.
        try:
            while not stop.is_set():
                wasyncore.loop(timeout=0.05, map=socket_map, count=1)
        finally:
            # The requests under way finish first; then each connection is closed with what
            # it still had to send (a static file a page left mid-download stays open, and
            # warns as unclosed, otherwise).
            server.task_dispatcher.shutdown()
            for channel in list(socket_map.values()):
                with contextlib.suppress(OSError):
                    channel.handle_close()
            wasyncore.close_all(socket_map)

    thread = threading.Thread(target=run, name="waitress-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "waitress did not stop"


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    """The ``app`` fixture served on loopback for the test (see :func:`serve`)."""
    with serve(app) as url:
        yield url


class Watched:
    """What the pages of a :func:`new_context` reported: script errors and console errors
    (``errors``) and Content-Security-Policy reports (``csp``)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.csp: list[str] = []

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._console)

    def _console(self, msg: Any) -> None:
        if "Content Security Policy" in msg.text:
            self.csp.append(msg.text)
        # A 4xx answer is logged by Chromium as "Failed to load resource"; tests of error
        # pages expect those.
        elif msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.errors.append(msg.text)

    def violations(self, page: Page) -> list[str]:
        """The violations the page itself saw (its ``securitypolicyviolation`` events)."""
        found: list[str] = page.evaluate("window.__violations || []")
        return found


@contextlib.contextmanager
def new_context(
    browser: Browser, *, width: int = 1024, height: int = 768, **options: Any
) -> Iterator[tuple[BrowserContext, Watched]]:
    """A fresh browser context (no cookies) whose pages are watched (:class:`Watched`)."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale="en-GB", **options
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(WATCH_CSP)
    watched = Watched()
    context.on("page", watched.watch)
    try:
        yield context, watched
    finally:
        context.close()


def axe_check(page: Page) -> list[tuple[str, str, str]]:
    """Run axe-core (bundled with axe-playwright-python, offline) on the page as it is now;
    fail on any serious or critical violation. Gives every violation found
    ``(impact, id, help)``, the minor and moderate ones included, for a test to look at."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = [(v["impact"], v["id"], v["help"]) for v in results.response["violations"]]
    serious = [
        f"{impact} {rule}: {text} ({', '.join(n['target'][0] for n in v['nodes'][:3])})"
        for (impact, rule, text), v in zip(found, results.response["violations"], strict=True)
        if impact in ("serious", "critical")
    ]
    assert serious == [], f"accessibility violations on {page.url}: {serious}"
    return found


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path | None:
    """Save the page as ``docs/console/<name>.png`` when ``VOXPOP_SCREENSHOTS=1`` (``make
    screenshots``), so the docs' pictures are made by the test suite; otherwise nothing."""
    if os.environ.get("VOXPOP_SCREENSHOTS") != "1":
        return None
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path
