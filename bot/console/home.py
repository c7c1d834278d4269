"""The console's home page: what is running now (:func:`bot.consultations.home.home`)."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask.typing import ResponseReturnValue

from bot.config import DEFAULT_CONFIG_FILE, configured_channels
from bot.console.access import Role, current_staff, requires
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
        channels=configured_channels(ctx.config),
        config_file=DEFAULT_CONFIG_FILE,
        # The simulator is for editors and admins: an analyst gets no link to a refusal.
        simulator="simulator.page" in current_app.view_functions
        and current_staff().role.allows(Role.EDITOR),
    )
