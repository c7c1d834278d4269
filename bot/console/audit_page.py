"""The Audit log page (admins): who did what and when, newest first, filtered and paged."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, render_template, request, url_for
from flask.typing import ResponseReturnValue

from bot.console.access import Role, requires
from bot.console.context import console
from bot.console.times import city_zone, parse_day
from bot.staff.audit_log import AuditFilter, audit_actions, read_audit
from safetext import clean_text

bp = Blueprint("console_audit", __name__)


def _day(name: str, errors: dict[str, str]) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return parse_day(raw)
    except ValueError:
        errors[name] = "Enter a date like 2026-12-31."
        return None


@bp.get("/audit")
@requires(Role.ADMIN)
def audit_log() -> ResponseReturnValue:
    errors: dict[str, str] = {}
    wanted = AuditFilter(
        who=clean_text(request.args.get("who", ""), 128).strip(),
        action=clean_text(request.args.get("action", ""), 64).strip(),
        since=_day("since", errors),
        until=_day("until", errors),
        zone=city_zone(),
    )
    try:
        page_number = max(1, min(int(request.args.get("page", "1")), 100_000))
    except ValueError:
        page_number = 1
    context = console()
    found = read_audit(context.sessions, wanted, page_number)
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "page" and v}

    def page_url(number: int) -> str:
        return url_for("console_audit.audit_log", **{**args, "page": number})

    return (
        render_template(
            "console/audit.html",
            found=found,
            wanted=wanted,
            raw=request.args,
            actions=audit_actions(context.sessions),
            errors=errors,
            page_url=page_url,
        ),
        400 if errors else 200,
    )
