"""Every link a page shows goes somewhere its viewer may go: an analyst walks the whole
console from Home, following every internal link, and never meets "You cannot open this
page" (a 403)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Final
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bot.pushes.spec import PushSpec
from bot.staff.accounts import Role
from tests.console.results_support import five_weekly_and_a_never
from tests.staff import context_of, sign_in

_HREF: Final = re.compile(r'<a\b[^>]*\bhref="([^"]+)"')
#: Leaving the console (signing out) or downloading files is no page to crawl.
_NOT_PAGES: Final = ("/logout", "/static/", "/console-static/")


def _links(html: str) -> set[str]:
    found = set()
    for href in _HREF.findall(html):
        target = unescape(href)
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or not target.startswith("/"):
            continue  # another site, or a fragment on the same page
        found.add(parts.path + (f"?{parts.query}" if parts.query else ""))
    return found


def crawl(client: FlaskClient) -> dict[str, tuple[int, str]]:
    """Every page reachable from Home by links: its status, and the page that linked it."""
    seen: dict[str, tuple[int, str]] = {}
    queue = [("/", "(start)")]
    while queue and len(seen) < 300:
        path, origin = queue.pop()
        if path in seen or path.startswith(_NOT_PAGES):
            continue
        response = client.get(path)
        seen[path] = (response.status_code, origin)
        if response.status_code == 200 and response.mimetype == "text/html":
            queue.extend((link, path) for link in _links(response.get_data(as_text=True)))
        response.close()  # a download streams: close it, read or not
    return seen


@pytest.fixture
def busy_app(app: Flask) -> Flask:
    """A console with something on every page: answers, a push, audit entries."""
    context = context_of(app)
    five_weekly_and_a_never(context.service)
    context.pushes.create(
        PushSpec(survey="central-park", at=context.clock() + timedelta(days=1), channels=("sms",))
    )
    return app


def test_an_analyst_following_every_link_never_meets_a_refusal(busy_app: Flask) -> None:
    client = busy_app.test_client()
    sign_in(client, Role.ANALYST)
    pages = crawl(client)
    refused = {path: origin for path, (status, origin) in pages.items() if status == 403}
    assert not refused, f"links to pages an analyst may not open (page: linked from): {refused}"
    # The walk went past Home: into the results the analyst may read.
    assert any(path.startswith("/results/central-park") for path in pages), sorted(pages)
    assert any(path.startswith("/pushes/") for path in pages), sorted(pages)


def test_an_editor_following_every_link_never_meets_a_refusal(busy_app: Flask) -> None:
    client = busy_app.test_client()
    sign_in(client, Role.EDITOR)
    pages = crawl(client)
    refused = {path: origin for path, (status, origin) in pages.items() if status == 403}
    assert not refused, f"links to pages an editor may not open (page: linked from): {refused}"
    assert any(path.startswith("/consultations/central-park") for path in pages), sorted(pages)
