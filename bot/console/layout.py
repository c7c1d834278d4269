"""The console's layout and design system (docs/console.md, "Layout and design system").

Pages extend ``console/base.html`` and use GOV.UK Frontend's components through the
``govuk_frontend_jinja`` macros, with the CSS and JavaScript vendored under
``bot/console/static/vendor/`` (``scripts/build-console-css``; no GOV.UK branding). This
module tells Jinja where those templates are, serves the static files under
:data:`STATIC_URL_PATH`, and gives every template the navigation the signed-in member of
staff may follow (:func:`navigation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from flask import Blueprint, Flask, g, request
from flask_wtf.csrf import generate_csrf
from jinja2 import BaseLoader, ChoiceLoader, PackageLoader, PrefixLoader

from bot.staff.accounts import Role, StaffView
from bot.wording import plural

__all__ = [
    "NAVIGATION",
    "STATIC_URL_PATH",
    "NavItem",
    "install_layout",
    "mask",
    "navigation",
]

#: Where the console's static files (``bot/console/static``) are served.
STATIC_URL_PATH: Final = "/console/static"


@dataclass(frozen=True)
class NavItem:
    """One entry of the service navigation, shown to ``role`` and the roles above it."""

    text: str
    path: str
    role: Role
    #: Other sections that belong to this item (the simulator tries a consultation).
    also: tuple[str, ...] = ()


NAVIGATION: Final = (
    NavItem("Home", "/", Role.ANALYST),
    NavItem("Consultations", "/consultations", Role.EDITOR, also=("/simulator",)),
    NavItem("Contacts", "/contacts", Role.EDITOR),
    NavItem("Pushes", "/pushes", Role.ANALYST),
    NavItem("Results", "/results", Role.ANALYST),
    NavItem("Audit log", "/audit", Role.ADMIN),
    NavItem("Staff", "/staff", Role.ADMIN),
)


def navigation(role: Role | None, path: str, root: str = "") -> list[dict[str, Any]]:
    """The items ``role`` may follow, as ``govukServiceNavigation`` takes them: the page at
    ``path`` is ``current`` (``aria-current="page"``), a page under an item's section makes
    that item ``active``. Nobody signed in (``role`` None): no items. ``root`` is the app's
    mount point, put before each address.

    >>> [item["text"] for item in navigation(Role.ANALYST, "/")]
    ['Home', 'Pushes', 'Results']
    >>> [(i["text"], i["current"], i["active"]) for i in navigation(Role.EDITOR, "/pushes/7")][3]
    ('Pushes', False, True)
    """
    if role is None:
        return []
    items = []
    for item in NAVIGATION:
        if not role.allows(item.role):
            continue
        current = path == item.path
        under = item.path != "/" and path.startswith(item.path + "/")
        under = under or any(path == p or path.startswith(p + "/") for p in item.also)
        items.append(
            {"text": item.text, "href": root + item.path, "current": current, "active": under}
        )
    return items


def mask(value: str | None, keep: int = 2) -> str:
    """``value`` with all but its last ``keep`` characters hidden (a leading ``+`` stays):
    enough for staff to tell two addresses apart, too little to contact anyone.

    >>> mask("+32470123456")
    '+•••••••••56'
    >>> mask("81234567")
    '••••••67'
    >>> mask("12")
    '••'
    """
    if not value:
        return ""
    prefix = "+" if value.startswith("+") else ""
    body = value[len(prefix) :]
    shown = body[-keep:] if len(body) > keep else ""
    return prefix + "•" * (len(body) - len(shown)) + shown


def install_layout(app: Flask) -> None:
    """Templates, static files and the layout's context for ``app`` (see the module doc)."""
    loaders: list[BaseLoader] = []
    if app.jinja_loader is not None:  # the app's own templates (the simulator) come first
        loaders.append(app.jinja_loader)
    loaders.append(PackageLoader("bot.console", "templates"))
    loaders.append(PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")}))
    app.jinja_loader = ChoiceLoader(loaders)
    app.register_blueprint(
        Blueprint(
            "console_static",
            __name__,
            static_folder="static",
            static_url_path=STATIC_URL_PATH,
        )
    )
    # CSRFProtect sets the same global; the sign-out form needs it either way.
    app.jinja_env.globals.setdefault("csrf_token", generate_csrf)
    app.jinja_env.filters["masked"] = mask
    app.jinja_env.filters["plural"] = plural

    @app.context_processor
    def layout_context() -> dict[str, Any]:
        staff: StaffView | None = g.get("staff")
        role = staff.role if staff is not None else None
        return {
            "console_staff": staff,
            "console_navigation": navigation(role, request.path, request.script_root),
        }
