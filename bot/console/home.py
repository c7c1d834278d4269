"""The console's home page: what is running now (:func:`bot.consultations.home.home`)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from bot.console.access import Role, requires
from bot.console.context import console
from bot.consultations import home as running

bp = Blueprint("console_home", __name__)


@bp.get("/")
@requires(Role.ANALYST)
def home() -> ResponseReturnValue:
    ctx = console()
    return render_template(
        "console/home.html",
        home=running.home(ctx.service, ctx.config.pushes.timezone),
        push_titles=ctx.pushes.titles(),
    )
