"""``voxpop outcome``: tell everyone who took part what the city decided ("you said, we did").

``voxpop outcome publish SURVEY_ID --file outcome.toml`` checks the file (problems as
``file:line``, SMS cost per language), shows who will get it, stores it, and pushes it to
everyone who answered at least one question and did not opt out. From then on, ``RESULTS``
answers with it. ``voxpop outcome list`` shows what was published.
"""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli.common import runtime
from bot.cli.push import checked, show_plan
from bot.config import Config
from bot.consultations.outcome import (
    check_outcome,
    plan_outcome,
    publish_outcome,
    published_message,
    published_outcomes,
)
from bot.pushes.form import PushForm
from bot.pushes.service import PushError, Pushes
from storage.db import transaction


@click.group()
def outcome() -> None:
    """What the city decided after a consultation, sent to those who took part."""


@outcome.command("publish")
@click.argument("survey_id")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False))
@click.option("--at", "at_text", default="now", show_default=True, help="now, +1h, or a time.")
@click.option("--channel", "channels", multiple=True, help="sms, whatsapp, telegram (in order).")
@click.option("--timezone", help="For --at and for contacts without one (default: config).")
@click.option("--quiet-hours", help="21:00-09:00 in each contact's time; '' for none.")
@click.option("--rate", "rate_text", help="Messages per second: 50/s, 600/min.")
@click.option("--dry-run", is_flag=True, help="Check the file and show who gets it; send nothing.")
@click.pass_obj
def outcome_publish(
    config: Config,
    survey_id: str,
    path: str,
    at_text: str,
    channels: tuple[str, ...],
    timezone: str | None,
    quiet_hours: str | None,
    rate_text: str | None,
    dry_run: bool,
) -> None:
    """Publish the outcome in FILE for SURVEY_ID and push it to everyone who took part."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read: {exc.strerror}") from None
    with runtime(config) as rt:
        pushes = Pushes(rt.sessions, rt.service, config)
        with transaction(rt.sessions, read_only=True) as s:
            try:
                survey = rt.service.survey(s, survey_id)
            except LookupError as exc:
                raise click.ClickException(str(exc).strip("'\"")) from None
        outcome_check = check_outcome(survey, data, path)
        for problem in outcome_check.report.problems:
            click.echo(str(problem), err=True)
        for price in outcome_check.prices:
            click.echo(
                f"  {price.what} [{price.language}]: {price.segments} SMS segment(s), "
                f"{price.encoding}"
            )
        if outcome_check.outcome is None:
            raise click.ClickException(f"{path}: not published: fix the errors above")
        base = checked(
            pushes,
            PushForm(
                survey=survey_id,
                at=at_text,
                channels=channels,
                timezone=timezone or "",
                quiet_hours=quiet_hours,
                rate=rate_text or "",
            ),
        )
        try:
            planned = plan_outcome(pushes, outcome_check.outcome, base)
            show_plan(planned.spec, planned.preview)
            if dry_run:
                click.echo("dry run: nothing was published")
                return
            published = publish_outcome(
                pushes, rt.service, outcome_check.outcome, outcome_check.source, planned
            )
        except PushError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(published_message(survey_id, planned, published))
        if published.fired is not None:
            click.echo(f"fired: {published.fired.planned} recipients planned")
        if published.push_id is not None:
            click.echo(f"follow it with: voxpop push show {published.push_id}")


@outcome.command("list")
@click.argument("survey_id", required=False)
@click.pass_obj
def outcome_list(config: Config, survey_id: str | None) -> None:
    """The outcomes published, newest first."""
    with runtime(config) as rt:
        rows = published_outcomes(rt.service, survey_id)
        if not rows:
            click.echo("no outcome published yet")
            return
        click.echo(f"{'ID':>4}  {'SURVEY':<20} {'PUBLISHED (UTC)':<20} LANGUAGES, PUSH")
        for row in rows:
            languages = ", ".join(row.message.get("texts", {}))
            push = f", push {row.push_id}" if row.push_id else ""
            click.echo(
                f"{row.id:>4}  {row.survey_slug:<20} {row.published_at:%Y-%m-%d %H:%M}     "
                f"[{languages}]{push}"
            )
