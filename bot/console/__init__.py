"""The staff console: server-rendered pages for city staff (docs/console.md).

:func:`install_console` prepares a Flask app for the console's pages; the pages themselves
are blueprints of their own. Layout and design system: :mod:`bot.console.layout`; error
pages for the whole app: :mod:`bot.console.errors`.
"""

from __future__ import annotations

from flask import Flask

from bot.console.layout import install_layout

__all__ = ["install_console"]


def install_console(app: Flask) -> None:
    """Let ``app`` render console pages: the ``console/`` templates and the
    ``govuk_frontend_jinja/`` macros found by Jinja, the static files under
    ``/console/static/``, and what the layout reads (navigation by role, ``csrf_token()``).

    It registers no page, no CSRF protection and no sign-in: those are the pages' and
    :mod:`bot.console.access`'s.
    """
    install_layout(app)
