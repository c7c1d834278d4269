"""``voxpop push``: send a consultation to an audience at a chosen time, and follow it.

``voxpop push SURVEY_ID --at ... [filters]`` makes a push (``--dry-run`` shows who it would
reach and what it costs, and makes nothing); ``push list``, ``push show ID`` and
``push cancel ID`` follow it. The scheduler (``voxpop serve`` or ``voxpop scheduler``) fires
it at its time and sends the invitations as they fall due.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import click

from bot.cli.common import runtime
from bot.config import Config
from bot.pushes import form
from bot.pushes.audience import Audience
from bot.pushes.quiet import zone_of
from bot.pushes.service import Preview, PushError, Pushes, PushReport, PushSpec
from bot.pushes.stats import FunnelRow


class _PushGroup(click.Group):
    """``push SURVEY_ID ...`` makes a push; ``push list|show|cancel`` are subcommands."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "create", self.commands["create"], args
        return super().resolve_command(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """``push --help`` shows the options of making a push (the hidden ``create``), which
        is what most people came for, before the subcommands."""
        create = self.commands["create"]
        own_help = create.get_help_option(ctx)
        records = [
            record
            for param in create.get_params(ctx)
            if isinstance(param, click.Option)
            and param is not own_help
            and (record := param.get_help_record(ctx)) is not None
        ]
        with formatter.section("Making a push (voxpop push SURVEY_ID --at WHEN [OPTIONS])"):
            formatter.write_dl(records)
        super().format_options(ctx, formatter)


@click.group(cls=_PushGroup, invoke_without_command=False)
def push() -> None:
    """Send a consultation to an audience at a chosen time (docs/pushes.md).

    \b
    voxpop push SURVEY_ID --at '2026-12-01 10:00' [--where district=north] [--dry-run]
    voxpop push list | show ID | cancel ID
    """


# --- options to a push --------------------------------------------------------------------------

#: The option that gives each field of the push form, to name it in a problem.
OPTION_OF = {
    "survey": "SURVEY_ID",
    "at": "--at",
    "timezone": "--timezone",
    "channels": "--channel",
    "languages": "--language",
    "where": "--where",
    "tags": "--tag",
    "not_answered": "--not-answered",
    "took_part": "--took-part",
    "quiet_hours": "--quiet-hours",
    "rate": "--rate",
    "remind_after": "--remind-after",
    "reminders": "--reminders",
    "variants": "--variant/--variants",
}


def parse_at(text: str, timezone: str, now: datetime) -> datetime:
    """:func:`bot.pushes.form.parse_at` for an ``--at`` option."""
    try:
        return form.parse_at(text, timezone, now)
    except form.FormError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None


def checked(pushes: Pushes, given: form.PushForm) -> PushSpec:
    """The push the options ask for (:meth:`Pushes.check`, the console's reading too), or a
    usage error naming each option that is wrong."""
    result = pushes.check(given)
    if result.spec is None:
        lines = [f"{OPTION_OF.get(name, name)}: {problem}" for name, problem in result.listed()]
        raise click.UsageError("\n".join(lines))
    return result.spec


def _read(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--variants") from None


# --- making a push ----------------------------------------------------------------------------


@push.command("create", hidden=True)
@click.argument("survey_id")
@click.option("--at", "at_text", required=True, help="now, +10m, +2h, or '2026-12-01 10:00'.")
@click.option("--where", multiple=True, help="NAME=VALUE[,VALUE...]: a contact attribute.")
@click.option("--channel", "channels", multiple=True, help="sms, whatsapp, telegram (in order).")
@click.option("--language", "languages", multiple=True, help="Only contacts in these languages.")
@click.option("--tag", "tags", multiple=True, help="Only contacts with this tag.")
@click.option("--not-answered", multiple=True, metavar="SURVEY_ID", help="Has not completed.")
@click.option("--took-part", multiple=True, metavar="SURVEY_ID", help="Answered at least once.")
@click.option("--timezone", help="For --at and for contacts without one (default: config).")
@click.option("--quiet-hours", help="21:00-09:00 in each contact's time; '' for none.")
@click.option("--rate", "rate_text", help="Invitations per second: 50/s, 600/min.")
@click.option("--remind-after", help="Remind who did not start or finish after 24h, 90m...")
@click.option("--reminders", type=click.IntRange(min=1), help="At most this many (default 1).")
@click.option("--variant", "variant_texts", multiple=True, help="An intro wording to compare.")
@click.option("--variants", "variants_file", type=click.Path(dir_okay=False), help="TOML file.")
@click.option("--dry-run", is_flag=True, help="Show the audience and cost; make nothing.")
@click.pass_obj
def push_create(
    config: Config,
    survey_id: str,
    at_text: str,
    where: tuple[str, ...],
    channels: tuple[str, ...],
    languages: tuple[str, ...],
    tags: tuple[str, ...],
    not_answered: tuple[str, ...],
    took_part: tuple[str, ...],
    timezone: str | None,
    quiet_hours: str | None,
    rate_text: str | None,
    remind_after: str | None,
    reminders: int | None,
    variant_texts: tuple[str, ...],
    variants_file: str | None,
    dry_run: bool,
) -> None:
    """Make a push of SURVEY_ID (see `voxpop push --help`)."""
    given = form.PushForm(
        survey=survey_id,
        at=at_text,
        timezone=timezone or "",
        channels=channels,
        languages=languages,
        where=where,
        tags=tags,
        not_answered=not_answered,
        took_part=took_part,
        quiet_hours=quiet_hours,
        rate=rate_text or "",
        remind_after=remind_after or "",
        reminders=str(reminders) if reminders is not None else "",
        variant_texts=variant_texts,
        variants_toml=_read(variants_file),
        variants_source=variants_file or "variants",
    )
    with _pushes(config) as pushes:
        spec = checked(pushes, given)
        try:
            preview = pushes.preview(spec)
        except (PushError, LookupError) as exc:
            raise click.ClickException(str(exc).strip("'\"")) from None
        show_plan(spec, preview)
        if dry_run:
            click.echo("dry run: nothing was made")
            return
        push_id = pushes.create(spec)
        click.echo(f"push {push_id} scheduled")
        if spec.at <= pushes.now():
            fired = pushes.fire(push_id)
            click.echo(f"fired: {fired.planned} recipients planned")
        click.echo(
            "The scheduler sends it (voxpop serve, or voxpop scheduler with voxpop dispatch); "
            f"follow it with: voxpop push show {push_id}"
        )


def show_plan(spec: PushSpec, preview: Preview) -> None:
    """The audience and cost of a push, for staff to check before it goes."""
    zone = zone_of(spec.timezone)
    local = spec.at.astimezone(zone)
    click.echo(
        f"{spec.kind} of {spec.survey} at {local:%Y-%m-%d %H:%M} {spec.timezone} "
        f"({spec.at:%H:%M} UTC)"
    )
    click.echo(f"  audience: {spec.audience.describe()}")
    click.echo(f"  channels in order: {', '.join(spec.channels)}")
    click.echo(
        f"  quiet hours: {spec.quiet_hours or 'none'}; rate: {spec.rate_per_second:g}/s"
        + (
            f"; reminders: after {_hours(spec.reminders.after)}, at most {spec.reminders.most}"
            if spec.reminders
            else ""
        )
    )
    if spec.variants:
        click.echo(f"  variants: {', '.join(v.name for v in spec.variants)}")
    click.echo(f"  recipients: {preview.recipients}")
    for channel, n in sorted(preview.by_channel.items()):
        click.echo(f"    {channel}: {n}")
    if preview.by_language:
        languages = ", ".join(f"{lang} {n}" for lang, n in sorted(preview.by_language.items()))
        click.echo(f"  languages: {languages}")
    if preview.left_out:
        reasons = ", ".join(f"{why} {n}" for why, n in preview.left_out.items())
        click.echo(f"  left out: {preview.left_out_total} ({reasons})")
    if preview.answering:
        click.echo(
            f"  answering it already: {preview.answering} (counted as invited, sent nothing)"
        )
    if preview.busy:
        click.echo(f"  in another consultation now: {preview.busy} (invited when it ends)")
    if preview.sms_segments:
        cost = f", about {preview.currency} {preview.cost:.2f}" if preview.cost else ""
        if not preview.cost:
            cost = " (set [pushes] sms_price_per_segment to see the cost)"
        plural = "s" if preview.sms_segments != 1 else ""
        click.echo(f"  SMS: {preview.sms_segments} segment{plural}{cost}")


def _hours(delta: timedelta) -> str:
    """``24 h``, ``90 min``, ``30 s``.

    >>> _hours(timedelta(hours=24)), _hours(timedelta(minutes=90)), _hours(timedelta(seconds=30))
    ('24 h', '90 min', '30 s')
    """
    seconds = delta.total_seconds()
    if (seconds >= 3600 and seconds % 3600 == 0) or seconds >= 6 * 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


@contextmanager
def _pushes(config: Config) -> Iterator[Pushes]:
    with runtime(config) as rt:
        yield Pushes(rt.sessions, rt.service, config)


# --- following pushes -----------------------------------------------------------------------


@push.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.pass_obj
def push_list(config: Config, limit: int) -> None:
    """The latest pushes, newest first."""
    with _pushes(config) as pushes:
        rows = pushes.recent(limit)
    if not rows:
        click.echo("no pushes yet (make one with: voxpop push SURVEY_ID --at ...)")
        return
    click.echo(f"{'ID':>4}  {'SURVEY':<20} {'KIND':<10} {'STATUS':<10} {'AT (UTC)':<16} PLANNED")
    for row in rows:
        click.echo(
            f"{row.id:>4}  {row.survey_slug:<20} {row.kind:<10} {row.status:<10} "
            f"{row.scheduled_at:%Y-%m-%d %H:%M} {row.planned:>7}"
        )
        if row.status in ("missed", "cancelled") and row.note:
            click.echo(f"      {row.note}")


@push.command("show")
@click.argument("push_id", type=int)
@click.pass_obj
def push_show(config: Config, push_id: int) -> None:
    """Where a push is: planned, sent, delivered, failed, started, completed, by channel and
    by variant, with response rates and their 95% intervals."""
    with _pushes(config) as pushes:
        try:
            report = pushes.report(push_id)
        except LookupError as exc:
            raise click.ClickException(str(exc).strip("'\"")) from None
    show_report(report)


def show_report(report: PushReport) -> None:
    row = report.push
    click.echo(f"push {row.id}: {row.kind} of {row.survey_slug}, {row.status}")
    fired = f", fired {row.fired_at:%Y-%m-%d %H:%M} UTC" if row.fired_at else ""
    click.echo(f"  at {row.scheduled_at:%Y-%m-%d %H:%M} UTC{fired}; by {row.created_by}")
    click.echo(f"  audience: {Audience.from_json(row.audience).describe()}")
    if row.note:
        click.echo(f"  note: {row.note}")
    invitation = row.kind == "invitation"
    header = (
        f"  {'':<12}{'planned':>8}{'invited':>8}{'waiting':>8}{'skipped':>8}{'sent':>7}"
        f"{'delivered':>10}{'failed':>7}"
    )
    if invitation:
        header += f"{'started':>8}{'completed':>10}  response rate (95%)"
    click.echo(header)
    rows = report.funnel()
    for line in rows:
        if line.group != "variant":
            click.echo(_counts_line(line, invitation))
    variants = [line for line in rows if line.group == "variant"]
    if variants:
        click.echo("  by variant (started and completed of those invited):")
        for line in variants:
            click.echo(
                f"    {line.label:<10} invited {line.counts.invited}: started {line.started}, "
                f"completed {line.response}"
            )
    if report.total.reminders:
        click.echo(f"  reminders sent: {report.total.reminders}")
    reasons = report.not_invited()
    if reasons:
        listed = ", ".join(f"{why} {n}" for why, n in reasons.items())
        click.echo(f"  not invited (yet): {listed}")


def _counts_line(line: FunnelRow, invitation: bool = True) -> str:
    c = line.counts
    line_text = (
        f"  {line.label:<12}{c.planned:>8}{c.invited:>8}{c.waiting:>8}{c.skipped:>8}{c.sent:>7}"
        f"{c.delivered:>10}{c.failed:>7}"
    )
    if invitation:  # an outcome is not answered: no rates
        line_text += f"{c.started:>8}{c.completed:>10}  {line.response}"
    return line_text


@push.command("cancel")
@click.argument("push_id", type=int)
@click.pass_obj
def push_cancel(config: Config, push_id: int) -> None:
    """Cancel a push: nobody more is invited; invitations not sent yet are not sent."""
    with _pushes(config) as pushes:
        try:
            waiting = pushes.cancel(push_id)
        except (LookupError, PushError) as exc:
            raise click.ClickException(str(exc).strip("'\"")) from None
    click.echo(f"push {push_id} cancelled; {waiting} recipients were still waiting")
