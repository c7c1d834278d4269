"""The console's layout (console/base.html), as the server sends it: navigation by role,
the current page, sign-out, the title, and the vendored design system it serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask, g, render_template_string
from flask.testing import FlaskClient

from bot.console.layout import STATIC_URL_PATH, navigation
from bot.staff.accounts import Role, StaffView
from tests.console.trial import PHONE, with_trial
from tests.staff import sign_in

VENDOR = Path(__file__).resolve().parents[2] / "bot" / "console" / "static" / "vendor"


@pytest.fixture
def app(app: Flask) -> Flask:
    return with_trial(app)


def nav_items(html: str) -> list[str]:
    """The texts of the service navigation's items (not the service name)."""
    items = re.findall(
        r'<li class="govuk-service-navigation__item[^"]*">\s*<a [^>]*>\s*(?:<strong[^>]*>)?'
        r"([^<]+?)\s*<",
        html,
    )
    return items


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.ANALYST, ["Home", "Pushes", "Results"]),
        (Role.EDITOR, ["Home", "Consultations", "Contacts", "Pushes", "Results"]),
        (
            Role.ADMIN,
            ["Home", "Consultations", "Contacts", "Pushes", "Results", "Audit log", "Staff"],
        ),
    ],
)
def test_each_role_sees_the_pages_it_may_open(
    client: FlaskClient, role: Role, expected: list[str]
) -> None:
    staff = sign_in(client, role)
    html = client.get("/").get_data(as_text=True)
    assert nav_items(html) == expected
    # The name leads to the member's own account page (password, codes, sessions).
    assert f'Signed in as <a class="govuk-link" href="/account">{staff.email}</a>' in html
    # The same on any page in the layout, the error pages too.
    assert nav_items(client.get("/no/such/page").get_data(as_text=True)) == expected


def test_signed_out_the_header_says_voxpop_and_nothing_more(client: FlaskClient) -> None:
    html = client.get("/trial/page").get_data(as_text=True)
    assert nav_items(html) == []
    assert re.search(r'class="govuk-service-navigation__link">\s*Voxpop\s*</a>', html)
    assert "Sign out" not in html
    assert "Signed in" not in html


def test_the_current_page_and_its_section_are_marked(app: Flask) -> None:
    template = '{% extends "console/base.html" %}'
    staff = StaffView(1, "admin@city.example", Role.ADMIN)
    for path, item, current in [("/results", "Results", "page"), ("/staff/4", "Staff", "true")]:
        with app.test_request_context(path):
            g.staff = staff
            html = render_template_string(template)
        marked = re.findall(r'aria-current="(\w+)"[^>]*>\s*<strong[^>]*>([^<]+)<', html)
        assert marked == [(current, item)]


def test_navigation_marks_home_only_on_the_home_page() -> None:
    admin = Role.ADMIN
    assert [i["text"] for i in navigation(admin, "/") if i["current"]] == ["Home"]
    assert [i["text"] for i in navigation(admin, "/contacts") if i["current"] or i["active"]] == [
        "Contacts"
    ]
    # "/pushes-archive" is not under "/pushes".
    assert not any(i["active"] or i["current"] for i in navigation(admin, "/pushes-archive"))
    assert navigation(None, "/") == []


def test_sign_out_is_a_post_form_with_a_csrf_token(client: FlaskClient) -> None:
    sign_in(client, Role.EDITOR)
    html = client.get("/trial/page").get_data(as_text=True)
    form = re.search(r'<form method="post" action="/logout"[^>]*>(.*?)</form>', html, re.S)
    assert form is not None
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.group(1))
    assert token is not None
    assert len(token.group(1)) > 20
    assert re.search(r'<button type="submit"[^>]*>Sign out</button>', form.group(1))


def test_an_email_is_shown_as_text(app: Flask) -> None:
    with app.test_request_context("/"):
        g.staff = StaffView(1, "<b>x</b>@city.example", Role.ANALYST)
        html = render_template_string('{% extends "console/base.html" %}')
    assert "&lt;b&gt;x&lt;/b&gt;@city.example" in html
    assert "<b>x</b>" not in html


def test_the_title_names_the_page_then_voxpop(client: FlaskClient) -> None:
    page = client.get("/trial/page").get_data(as_text=True)
    assert "<title>Trial page – Voxpop</title>" in page
    untitled = client.get("/trial/untitled").get_data(as_text=True)
    assert "<title>Voxpop</title>" in untitled
    assert '<html lang="en"' in page


def test_the_layout_has_no_inline_script_or_style(client: FlaskClient) -> None:
    sign_in(client, Role.ADMIN)
    html = client.get("/trial/page").get_data(as_text=True)
    assert re.findall(r"<script[^>]*>", html) == [
        f'<script type="module" src="{STATIC_URL_PATH}/console.js">'
    ]
    assert "<style" not in html
    assert " style=" not in html
    assert re.findall(r"<[^>]*\son\w+=", html) == []  # no onclick and the like


def test_an_address_is_masked(client: FlaskClient) -> None:
    html = client.get("/trial/page").get_data(as_text=True)
    assert PHONE not in html
    assert "+•••••••••56" in html
    assert "ending in 56" in html


def test_the_design_system_is_served_from_here(client: FlaskClient) -> None:
    css = client.get(f"{STATIC_URL_PATH}/vendor/govuk-frontend/govuk-frontend.min.css")
    assert css.status_code == 200
    assert css.mimetype == "text/css"
    text = css.get_data(as_text=True)
    css.close()
    # A system font stack; no GDS Transport (GOV.UK's alone), no font file, no crest.
    assert "font-family:system-ui," in text
    assert "GDS Transport" not in text
    assert "@font-face" not in text
    assert "url(" not in text
    for path in [
        "console.css",
        "console.js",
        "vendor/govuk-frontend/govuk-frontend.min.js",
        "vendor/chartjs/chart.umd.min.js",
    ]:
        response = client.get(f"{STATIC_URL_PATH}/{path}")
        assert response.status_code == 200, path
        response.close()
    # The licences travel with the files.
    assert "MIT" in (VENDOR / "govuk-frontend" / "LICENSE.txt").read_text()
    assert "MIT" in (VENDOR / "chartjs" / "LICENSE.md").read_text()
    assert "6.3.0" in (VENDOR / "README.md").read_text()
