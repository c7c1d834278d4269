"""Pushes in the console: the list, the form that builds an audience and shows who it
reaches before anything is scheduled, and a push's page with its funnel while it runs.

The views only check the role, call :class:`bot.pushes.service.Pushes` (the same functions
as ``voxpop push``) and render: the form is read by :meth:`Pushes.check`, counted by
:meth:`Pushes.preview`, followed by :meth:`Pushes.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from bot.console.access import Role, current_staff, requires
from bot.console.context import console
from bot.console.times import format_time, zone_named
from bot.consultations.manage import consultation_labels
from bot.consultations.preview import PREVIEW_CHANNELS, MessagePreview, previews
from bot.consultations.pricing import language_name
from bot.pushes.audience import Audience
from bot.pushes.form import FIELDS, Checked, PushForm
from bot.pushes.quiet import QuietHours
from bot.pushes.service import Preview, PushError, Reminders
from bot.pushes.spec import CHANNELS
from messages import channel_label
from safetext import clean_text
from storage.db import transaction
from storage.models import PushRow

bp = Blueprint("console_pushes", __name__)

#: The vendored charting library: the push's page draws its funnel when it is there.
CHART_JS = Path(__file__).parent / "static" / "vendor" / "chartjs" / "chart.umd.min.js"

#: How long one text field of the form may be (a wording is the longest).
_FIELD_LIMIT = 2000
#: Wordings the form offers (A, B, C).
VARIANTS = 3


def _text(values: MultiDict[str, str], name: str) -> str:
    return clean_text(values.get(name, ""), _FIELD_LIMIT)


def _list(values: MultiDict[str, str], name: str) -> list[str]:
    return [clean_text(v, _FIELD_LIMIT) for v in values.getlist(name)]


def read(values: MultiDict[str, str]) -> PushForm:
    """The form's fields as :class:`PushForm` (text, cleaned at the edge)."""
    return PushForm(
        survey=_text(values, "survey"),
        at=_text(values, "at"),
        timezone=_text(values, "timezone"),
        channels=_list(values, "channels"),
        languages=[_text(values, "languages")],
        where=_text(values, "where").splitlines(),
        tags=[_text(values, "tags")],
        not_answered=_list(values, "not_answered"),
        took_part=_list(values, "took_part"),
        quiet_hours=_text(values, "quiet_hours"),
        rate=_text(values, "rate"),
        remind_after=_text(values, "remind_after"),
        reminders=_text(values, "reminders"),
        variant_texts=[_text(values, f"variant_{i}") for i in range(VARIANTS)],
        created_by=current_staff().actor,
    )


def _defaults() -> MultiDict[str, str]:
    pushes = console().config.pushes
    values: MultiDict[str, str] = MultiDict(
        {
            "at": "now",
            "timezone": pushes.timezone,
            "quiet_hours": pushes.quiet_hours,
            "rate": f"{pushes.rate_per_second:g}/s",
        }
    )
    for channel in pushes.channels:
        values.add("channels", channel)
    return values


def _checked_and_preview(values: MultiDict[str, str]) -> tuple[Checked, Preview | None]:
    context = console()
    checked = context.pushes.check(read(values))
    preview = None
    if checked.spec is not None:
        try:
            preview = context.pushes.preview(checked.spec)
        except (PushError, LookupError) as exc:
            field = exc.field if isinstance(exc, PushError) and exc.field else "survey"
            checked = Checked(None, {field: (str(exc).strip("'\""),)})
    return checked, preview


def invitation_previews(slug: str) -> list[MessagePreview]:
    """The invitation (the consultation's opening message and first question) in each
    language and on each channel, as the consultation's page previews them."""
    context = console()
    with transaction(context.service.sessions, read_only=True) as s:
        survey = context.service.survey(s, slug)
    first = f"question '{survey.questions[0].id}'" if survey.questions else "intro"
    return [p for p in previews(survey) if p.what in ("intro", first)]


def _form_page(
    values: MultiDict[str, str], checked: Checked | None, preview: Preview | None
) -> str:
    context = console()
    spec = checked.spec if checked else None
    return render_template(
        "console/pushes/new.html",
        values=values,
        problems=dict(checked.problems) if checked else {},
        listed=checked.listed() if checked else [],
        preview=preview,
        surveys=context.pushes.surveys(),
        survey_labels=consultation_labels(context.service, context.config.pushes.timezone),
        channels=_channel_order(),
        variants=VARIANTS,
        fields=FIELDS,
        # The check step shows what the invitation says (an invitation push only).
        messages=invitation_previews(spec.survey) if spec and spec.kind == "invitation" else [],
        preview_channels=[c for c in PREVIEW_CHANNELS if spec and c in spec.channels],
        wordings=bool(spec and spec.variants),
        language_name=language_name,
    )


def _channel_order() -> list[str]:
    preferred = list(console().config.pushes.channels)
    return preferred + [c for c in CHANNELS if c not in preferred]


@bp.get("/pushes")
@requires(Role.ANALYST)
def index() -> ResponseReturnValue:
    context = console()
    rows = context.pushes.recent(100)
    totals = context.pushes.totals([row.id for row in rows])
    return render_template(
        "console/pushes/index.html",
        rows=rows,
        totals=totals,
        titles=context.pushes.titles(),
        can_create=_can_change(),
    )


@bp.route("/pushes/new", methods=["GET", "POST"])
@requires(Role.EDITOR)
def new() -> ResponseReturnValue:
    if request.method == "GET":
        values = _defaults()
        if request.args.get("survey"):
            values["survey"] = clean_text(request.args["survey"], 64)
        return _form_page(values, None, None)
    values = request.form.copy()
    checked, preview = _checked_and_preview(values)
    if request.form.get("action") != "schedule" or checked.spec is None:
        status = 200 if checked.spec is not None else 422
        return _form_page(values, checked, preview), status
    spec = checked.spec
    push_id = console().pushes.create(spec)
    flash(f"The push is scheduled: {push_name(console().pushes.report(push_id).push)}.")
    return redirect(url_for(".show", push_id=push_id), 303)


@bp.get("/pushes/preview.json")
@requires(Role.EDITOR)
def preview_json() -> ResponseReturnValue:
    """The counts for the form as it stands: the page's script asks on every change."""
    checked, preview = _checked_and_preview(request.args.copy())
    html = render_template(
        "console/pushes/_preview.html",
        preview=preview,
        listed=checked.listed(),
        language_name=language_name,
    )
    return jsonify(
        ok=preview is not None,
        problems={name: list(found) for name, found in checked.problems.items()},
        preview=preview.to_json() if preview else None,
        html=html,
    )


def _report(push_id: int) -> Any:
    try:
        return console().pushes.report(push_id)
    except LookupError:
        abort(404)


def push_name(row: PushRow) -> str:
    """A push as staff name it in plain text (a page's title, a message): what it sends
    and when, in its own time zone, and its number (two pushes can share a minute).

    The pages show the same with the ``push_name`` macro (``console/pushes/_name.html``)."""
    kind = "Outcome" if row.kind == "outcome" else "Invitation"
    return f"{kind}, {format_time(row.scheduled_at, zone_named(row.timezone))}, push {row.id}"


@bp.get("/pushes/<int:push_id>")
@requires(Role.ANALYST)
def show(push_id: int) -> ResponseReturnValue:
    report = _report(push_id)
    slug = report.push.survey_slug
    return render_template(
        "console/pushes/show.html",
        report=report,
        name=push_name(report.push),
        title=console().pushes.titles().get(slug, slug),
        audience=Audience.from_json(report.push.audience).describe(),
        settings=push_settings(report.push),
        can_change=_can_change(),
        chart=CHART_JS.is_file(),
    )


def push_settings(row: PushRow) -> list[tuple[str, str]]:
    """How the push sends, as its page lists it: channels, time zone, quiet hours, rate,
    and for an invitation its reminders and wordings."""
    quiet = QuietHours.from_json(row.quiet_hours)
    rate = row.rate_per_second
    settings = [
        ("Channels, in order", ", ".join(channel_label(c) for c in row.channels)),
        ("Time zone", row.timezone),
        ("Quiet hours", f"{quiet}, in each person's own time" if quiet else "None"),
        ("Rate", f"{rate:g} a second" if rate >= 1 else f"{rate * 60:g} a minute"),
    ]
    if row.kind == "invitation":
        reminders = Reminders.from_json(row.reminders)
        if reminders is None:
            settings.append(("Reminders", "None"))
        else:
            hours = reminders.after.total_seconds() / 3600
            times = "once" if reminders.most == 1 else f"up to {reminders.most} times"
            after = f"{hours:g} hours after the invitation or their last answer"
            settings.append(("Reminders", f"{times}, {after}"))
        wordings = [
            f"{v.get('name', '?')}: "
            + "; ".join(f"{lang}: {text}" for lang, text in (v.get("texts") or {}).items())
            for v in row.variants or []
        ]
        settings.append(("Wordings", " | ".join(wordings) or "The consultation's own"))
    return settings


def _can_change() -> bool:
    return current_staff().role.allows(Role.EDITOR)


@bp.get("/pushes/<int:push_id>.json")
@requires(Role.ANALYST, poll=True)
def show_json(push_id: int) -> ResponseReturnValue:
    """What the push's page polls while the push runs: the numbers, and the funnel's table
    and the buttons as the page shows them now."""
    report = _report(push_id)
    document = report.to_json()
    document["html"] = render_template("console/pushes/_funnel.html", report=report)
    document["actions_html"] = render_template(
        "console/pushes/_actions.html", report=report, can_change=_can_change()
    )
    return jsonify(document)


@bp.route("/pushes/<int:push_id>/cancel", methods=["GET", "POST"])
@requires(Role.EDITOR)
def cancel(push_id: int) -> ResponseReturnValue:
    report = _report(push_id)
    if request.method == "GET":
        return render_template("console/pushes/cancel.html", report=report)
    try:
        waiting = console().pushes.cancel(push_id, actor=current_staff().actor)
    except PushError as exc:
        flash(str(exc))
        return redirect(url_for(".show", push_id=push_id), 303)
    flash(f"The push is cancelled: {waiting} people still waiting will not be invited.")
    return redirect(url_for(".show", push_id=push_id), 303)


@bp.post("/pushes/<int:push_id>/send-now")
@requires(Role.EDITOR)
def send_now(push_id: int) -> ResponseReturnValue:
    """Fire a scheduled push now rather than at its time (the scheduler would at its time)."""
    _report(push_id)
    try:
        fired = console().pushes.send_now(push_id, actor=current_staff().actor)
    except PushError as exc:
        flash(str(exc))
        return redirect(url_for(".show", push_id=push_id), 303)
    flash(f"The push is sending: {fired.planned} people planned.")
    return redirect(url_for(".show", push_id=push_id), 303)
