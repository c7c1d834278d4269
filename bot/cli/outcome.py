"""``voxpop outcome``: tell everyone who took part what the city decided ("you said, we did").

``voxpop outcome publish SURVEY_ID --file outcome.toml`` checks the file (problems as
``file:line``, SMS cost per language), shows who will get it, stores it, and pushes it to
everyone who answered at least one question and did not opt out. From then on, ``RESULTS``
answers with it. ``voxpop outcome list`` shows what was published.
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from bot.cli.common import runtime
from bot.cli.push import checked, show_plan
from bot.config import Config
from bot.pushes.form import PushForm
from bot.pushes.outcomes import outcome_push, publish
from bot.pushes.service import PushError, Pushes
from storage.db import transaction
from storage.models import OutcomeRow
from surveys.outcomes import parse_outcome


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
        report = parse_outcome(data, path, survey_id, survey.languages)
        for problem in report.problems:
            click.echo(str(problem), err=True)
        for where, language, segments, encoding in report.costs:
            click.echo(f"  {where} [{language}]: {segments} SMS segment(s), {encoding}")
        if report.outcome is None:
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
            spec = pushes.complete(outcome_push(report.outcome, base))
            preview = pushes.preview(spec)
            show_plan(spec, preview)
            if dry_run:
                click.echo("dry run: nothing was published")
                return
            source = data.decode("utf-8-sig")
            published = publish(pushes, rt.service, report.outcome, source, spec)
        except PushError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"outcome {published.outcome_id} published for {survey_id}: push "
            f"{published.push_id} to {preview.recipients} who took part"
        )
        if spec.at <= pushes.now():
            fired = pushes.fire(published.push_id)
            click.echo(f"fired: {fired.planned} recipients planned")
        click.echo(f"follow it with: voxpop push show {published.push_id}")


@outcome.command("list")
@click.argument("survey_id", required=False)
@click.pass_obj
def outcome_list(config: Config, survey_id: str | None) -> None:
    """The outcomes published, newest first."""
    with runtime(config) as rt, transaction(rt.sessions, read_only=True) as s:
        stmt = select(OutcomeRow).order_by(OutcomeRow.published_at.desc(), OutcomeRow.id.desc())
        if survey_id:
            stmt = stmt.where(OutcomeRow.survey_slug == survey_id)
        rows = s.scalars(stmt).all()
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
