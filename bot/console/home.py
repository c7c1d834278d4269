"""The home page: what is running now."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from bot.console.access import Role, requires

bp = Blueprint("console_home", __name__)


@bp.get("/")
@requires(Role.ANALYST)
def home() -> ResponseReturnValue:
    return render_template("console/home.html")
