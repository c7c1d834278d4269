"""The console's home page: what is running now (:func:`bot.consultations.home.home`)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from bot.console.access import Role, requires
from bot.console.context import console
from bot.consultations.home import home

bp = Blueprint("home", __name__)


@bp.get("/")
@requires(Role.ANALYST)
def index() -> ResponseReturnValue:
    ctx = console()
    return render_template("console/home.html", home=home(ctx.service, ctx.config.pushes.timezone))
