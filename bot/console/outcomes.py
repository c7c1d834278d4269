"""The Outcome page of a consultation: compose "you said, we did" per language and per group
of contacts (a district), check it, see its SMS cost, how it looks and who gets it, publish.

The page writes the outcome file of :mod:`surveys.outcomes` from the form
(:func:`bot.consultations.outcome.outcome_source`) and then does what ``voxpop outcome
publish`` does with a file: the same check, plan and publish functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from bot.console.access import Role, current_staff, requires
from bot.console.context import console
from bot.consultations.outcome import (
    OutcomeCheck,
    Planned,
    PublishedRecord,
    SmsEstimate,
    check_outcome,
    outcome_source,
    participant_values,
    plan_outcome,
    publish_outcome,
    published_message,
    published_records,
    sms_estimate,
)
from bot.consultations.preview import PREVIEW_CHANNELS
from bot.consultations.pricing import language_name
from bot.pushes.service import PushError, PushSpec
from safetext import clean_text
from storage.db import transaction
from surveys.model import Survey
from surveys.outcomes import missing_default

bp = Blueprint("outcomes", __name__, url_prefix="/consultations")

#: Longest outcome text taken from the form (an SMS of 10 segments is about 1,500).
MAX_TEXT = 2000
#: At most this many groups are offered (the most common values first).
MAX_GROUPS = 30


class OutcomeForm(FlaskForm):  # type: ignore[misc]  # Flask-WTF has no types
    """CSRF only: the fields depend on the consultation's languages and the groups."""


@dataclass
class Composed:
    """What staff typed: a text per language, the attribute, a text per group and language."""

    texts: dict[str, str]
    by: str = ""
    groups: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(self.texts.values())


@bp.route("/<slug>/outcome", methods=["GET", "POST"])
@requires(Role.EDITOR)
def compose(slug: str) -> ResponseReturnValue:
    ctx = console()
    with transaction(ctx.service.sessions, read_only=True) as s:
        try:
            survey = ctx.service.survey(s, slug)
        except LookupError:
            abort(404)
    form = OutcomeForm()
    published = published_records(ctx.service, slug)
    if request.method == "GET":
        composed = Composed({language: "" for language in survey.languages})
        return _page(survey, form, composed, published=published)
    if not form.validate_on_submit():
        abort(400, "The form expired: reload the page and try again.")
    composed = _read(survey)
    action = request.form.get("action", "check")
    groups = _groups(slug, composed.by)
    if action == "groups" or composed.empty:
        errors = (
            {}
            if action == "groups"
            else {"text": _sentence(missing_default(survey.default_language))}
        )
        status = 200 if action == "groups" else 400
        return _page(
            survey, form, composed, groups=groups, errors=errors, published=published, status=status
        )
    source = outcome_source(
        slug, composed.texts, composed.by if composed.groups else "", composed.groups
    )
    checked = check_outcome(survey, source.encode(), "outcome")
    if checked.outcome is None:
        problems = [p.message for p in checked.report.problems if p.severity == "error"]
        errors = {"text": _sentence("; ".join(problems))}
        return _page(
            survey,
            form,
            composed,
            groups=groups,
            errors=errors,
            checked=checked,
            published=published,
            status=400,
        )
    staff = current_staff()
    base = PushSpec(survey=slug, at=ctx.pushes.now(), created_by=staff.actor)
    try:
        planned = plan_outcome(ctx.pushes, checked.outcome, base)
    except PushError as exc:
        errors = {"text": str(exc)}
        return _page(
            survey, form, composed, groups=groups, errors=errors, published=published, status=400
        )
    if action != "publish":
        estimate = sms_estimate(planned)
        return _page(
            survey,
            form,
            composed,
            groups=groups,
            checked=checked,
            planned=planned,
            estimate=estimate,
            published=published,
        )
    done = publish_outcome(ctx.pushes, ctx.service, checked.outcome, checked.source, planned)
    flash(published_message(slug, planned, done), "success")
    return redirect(url_for("outcomes.compose", slug=slug))


def _read(survey: Survey) -> Composed:
    """The form's texts, cleaned as any outside text (an empty text is left out later)."""
    texts = {
        language: clean_text(request.form.get(f"text-{language}", ""), MAX_TEXT).strip()
        for language in survey.languages
    }
    by = clean_text(request.form.get("by", ""), 64, single_line=True).strip()
    groups: dict[str, dict[str, str]] = {}
    if by:
        for index in range(MAX_GROUPS):
            value = request.form.get(f"group-{index}")
            if value is None:
                break
            value = clean_text(value, 255, single_line=True)
            wording = {
                language: clean_text(
                    request.form.get(f"group-{index}-{language}", ""), MAX_TEXT
                ).strip()
                for language in survey.languages
            }
            if value and any(wording.values()):
                groups[value] = wording
    return Composed(texts, by, groups)


def _sentence(text: str) -> str:
    """A problem of the file checker as a sentence on the page."""
    return text[:1].upper() + text[1:]


def _groups(slug: str, by: str) -> list[tuple[str, int]]:
    if not by:
        return []
    values = participant_values(console().service, slug, by)
    return list(values.items())[:MAX_GROUPS]


def _page(
    survey: Survey,
    form: OutcomeForm,
    composed: Composed,
    *,
    groups: list[tuple[str, int]] | None = None,
    errors: dict[str, str] | None = None,
    checked: OutcomeCheck | None = None,
    planned: Planned | None = None,
    estimate: SmsEstimate | None = None,
    published: Sequence[PublishedRecord] = (),
    status: int = 200,
) -> ResponseReturnValue:
    shown_groups = list(groups or [])
    # A group typed for that is no longer among those who took part keeps its text.
    for value in composed.groups:
        if value not in {v for v, _ in shown_groups}:
            shown_groups.append((value, 0))
    return render_template(
        "console/consultations/outcome.html",
        survey=survey,
        title=survey.title.get(survey.default_language, survey.id),
        form=form,
        composed=composed,
        groups=shown_groups,
        errors=errors or {},
        checked=checked,
        planned=planned,
        estimate=estimate,
        channels=PREVIEW_CHANNELS,
        published=published,
        # Those who answer after it is published do not get it: say so before publishing.
        still_open=not survey.is_closed(console().pushes.now()),
        closes_at=survey.closes_at,
        language_name=language_name,
    ), status
