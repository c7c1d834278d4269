"""``voxpop contacts``: import a list, list and show contacts, erase one (docs/contacts.md).

Phone numbers are masked on screen unless staff ask for them (``--show-numbers``); they never
go to the log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from bot.cli.common import runtime
from bot.config import Config
from bot.contacts.csv_file import ContactsFileError
from bot.contacts.masking import mask
from bot.contacts.service import (
    CONSENT_FILTERS,
    AddressView,
    Contacts,
    ContactView,
    ImportReport,
    Progress,
    parse_where,
    problem_kinds,
)
from bot.runtime import Runtime
from messages import CHANNEL_NAMES

#: Files with more lines than this get a progress bar on stderr.
PROGRESS_MIN_LINES = 2000
#: Problems printed one by one; the rest are counted by kind.
MAX_PROBLEMS_SHOWN = 100


@click.group()
def contacts() -> None:
    """Contacts: import a list, look people up, erase them."""


def _contacts(config: Config, rt: Runtime) -> Contacts:
    try:
        return Contacts.from_config(config, rt.sessions, rt.service)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


# --- import -----------------------------------------------------------------------------------


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the file and count; store nothing.")
@click.pass_obj
def contacts_import(config: Config, file: str, dry_run: bool) -> None:
    """Add or update the contacts in a CSV file (one row per address; see docs/contacts.md).

    Valid rows are stored in one transaction; rows with problems are skipped and named by
    line. Exit status 1 when anything was not imported.
    """
    with runtime(config) as rt:
        service = _contacts(config, rt)
        try:
            with _progress() as progress:
                report = service.import_file(file, progress=progress, dry_run=dry_run)
        except ContactsFileError as exc:
            raise click.ClickException(f"{exc}\nnothing was imported") from exc
        except OSError as exc:
            raise click.ClickException(f"cannot read {file}: {exc.strerror}") from exc
    _print_import(report, dry_run)
    if report.skipped:
        sys.exit(1)


@contextmanager
def _progress() -> Iterator[Progress]:
    """A progress callback that shows a bar on stderr once the file proves large."""
    with ExitStack() as stack:
        update: Callable[[int], None] | None = None
        done = 0

        def advance(line: int, total: int) -> None:
            nonlocal update, done
            step: Callable[[int], None] | None = update
            if step is None:
                if total < PROGRESS_MIN_LINES:
                    return
                bar = stack.enter_context(
                    click.progressbar(length=total, label="importing", file=sys.stderr)
                )
                step = bar.update
                update = step
            step(line - done)
            done = line

        yield advance


def _print_import(report: ImportReport, dry_run: bool) -> None:
    for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
        click.echo(str(problem), err=True)
    rest = report.problems[MAX_PROBLEMS_SHOWN:]
    if rest:
        click.echo(f"... and {len(rest):,} more problems, most often:", err=True)
        for message, count in problem_kinds(rest):
            click.echo(f"  {count:,} x {message}", err=True)
    c = report.counts
    verb = "would be" if dry_run else "were"
    click.echo(
        f"{report.rows:,} rows: {c.created:,} created, {c.updated:,} updated, "
        f"{c.unchanged:,} unchanged, {report.skipped:,} skipped"
        + (" (dry run: nothing was stored)" if dry_run else "")
    )
    if c.opted_out:
        click.echo(
            f"{c.opted_out:,} of them opted out earlier (STOP): they stay opted out, "
            "and nothing is pushed to them"
        )
    if c.declined:
        click.echo(
            f"{c.declined:,} of them declined further consultations in a survey: their "
            f"consent from the file {verb} not applied"
        )


# --- list and show ----------------------------------------------------------------------------


def _shown(address: AddressView, show_numbers: bool) -> str:
    return address.value if show_numbers else mask(address.channel, address.value)


def _zone(contact: ContactView, config: Config) -> ZoneInfo:
    """Times are shown in the contact's own timezone: a consent date reads as written."""
    try:
        return ZoneInfo(contact.timezone or config.pushes.timezone)
    except (ValueError, ZoneInfoNotFoundError):
        return ZoneInfo("UTC")


def _date(value: datetime | None, zone: ZoneInfo) -> str:
    return f"{value.astimezone(zone):%Y-%m-%d}" if value else "-"


def _time(value: datetime | None, zone: ZoneInfo) -> str:
    return f"{value.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}" if value else "-"


def _consent(address: AddressView, zone: ZoneInfo) -> str:
    if address.declined:
        return "declined"
    return _date(address.consent_at, zone)


def _where(values: Sequence[str]) -> dict[str, str]:
    try:
        return parse_where(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--where") from None


@contacts.command("list")
@click.option("--channel", type=click.Choice(CHANNEL_NAMES), help="Only contacts on it.")
@click.option("--language", help="Only contacts with this language, like nl.")
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="ATTRIBUTE=VALUE",
    help="Only contacts with this attribute value, like district=north (repeatable).",
)
@click.option("--tag", "tags", multiple=True, help="Only contacts with this tag (repeatable).")
@click.option(
    "--consent",
    type=click.Choice(list(CONSENT_FILTERS)),
    help="Only contacts whose address (on --channel) is so: "
    + "; ".join(f"{name}: {meaning}" for name, meaning in CONSENT_FILTERS.items())
    + ".",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--show-numbers", is_flag=True, help="Show phone numbers and chat ids in full.")
@click.pass_obj
def contacts_list(
    config: Config,
    channel: str | None,
    language: str | None,
    where: tuple[str, ...],
    tags: tuple[str, ...],
    consent: str | None,
    limit: int,
    show_numbers: bool,
) -> None:
    """Contacts, one line per address: id, channel, address (masked), language, consent,
    opt-out."""
    filters = _where(where)
    with runtime(config) as rt:
        found, total = _contacts(config, rt).list(
            channel=channel,
            language=language.strip().lower() if language else None,
            where=filters,
            tags=tags,
            consent=consent,
            limit=limit,
        )
    if not found:
        click.echo(
            "no contacts match"
            if total == 0 and (filters or tags or channel or language or consent)
            else "no contacts yet (try: voxpop contacts import FILE.csv)"
        )
        return
    table: list[tuple[str, ...]] = [
        ("ID", "CHANNEL", "ADDRESS", "LANGUAGE", "CONSENT", "OPTED OUT")
    ]
    for contact in found:
        zone = _zone(contact, config)
        for address in contact.addresses:
            if channel is not None and address.channel != channel:
                continue
            table.append(
                (
                    str(contact.id),
                    address.channel,
                    _shown(address, show_numbers),
                    contact.language or "-",
                    _consent(address, zone),
                    _date(address.opted_out_at, zone),
                )
            )
    _table(table)
    if total > len(found):
        click.echo(f"showing {len(found):,} of {total:,} contacts (--limit to see more)")
    else:
        click.echo(f"{total:,} contact{'s' if total != 1 else ''}")


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def _find(service: Contacts, ref: str) -> int:
    try:
        return service.find(ref)
    except LookupError as exc:
        raise click.ClickException(str(exc.args[0])) from exc


@contacts.command("show")
@click.argument("ref", metavar="ID_OR_ADDRESS")
@click.option("--show-numbers", is_flag=True, help="Show phone numbers and chat ids in full.")
@click.pass_obj
def contacts_show(config: Config, ref: str, show_numbers: bool) -> None:
    """Everything Voxpop holds about one contact: addresses, consent, opt-out, attributes,
    tags, consultations. ID_OR_ADDRESS: a contact id, a phone number, whatsapp:<number> or
    telegram:<chat id>."""
    with runtime(config) as rt:
        service = _contacts(config, rt)
        try:
            details = service.details(_find(service, ref))
        except LookupError as exc:
            raise click.ClickException(str(exc.args[0])) from exc
    contact = details.contact
    zone = _zone(contact, config)
    click.echo(f"contact {contact.id}")
    click.echo(f"  created     {_time(contact.created_at, zone)}")
    click.echo(f"  updated     {_time(contact.updated_at, zone)}")
    click.echo(f"  language    {contact.language or '-'}")
    click.echo(f"  timezone    {contact.timezone or '-'}")
    click.echo(f"  tags        {', '.join(contact.tags) or '-'}")
    attributes = sorted(contact.attributes.items())
    if not attributes:
        click.echo("  attributes  -")
    for index, (key, value) in enumerate(attributes):
        click.echo(f"  {'attributes' if index == 0 else '':10}  {key} = {value}")
    click.echo("  addresses")
    for address in contact.addresses:
        click.echo(f"    {address.channel} {_shown(address, show_numbers)}")
        click.echo(f"      consent       {_consent_detail(address, zone)}")
        opted_out = _time(address.opted_out_at, zone) if address.opted_out_at else "no"
        click.echo(f"      opted out     {opted_out}")
        if address.invalid_at:
            invalid = _time(address.invalid_at, zone)
            click.echo(f"      invalid       since {invalid} (said the provider)")
        click.echo(f"      last message  {_time(address.last_inbound_at, zone)}")
    click.echo("  consultations" + ("" if details.consultations else "  -"))
    for c in details.consultations:
        test = " (simulator)" if c.simulated else ""
        click.echo(
            f"    {c.survey} v{c.version} on {c.channel}: {c.status}, started "
            f"{_time(c.started_at, zone)}{test}"
        )
    click.echo(f"  answers     {details.answers}")
    if details.invitations:
        click.echo("  invitations")
        for i in details.invitations:
            click.echo(
                f"    push {i.push_id} ({i.survey} {i.kind}) on {i.channel}: {i.status}"
                + (f", invited {_time(i.invited_at, zone)}" if i.invited_at else "")
            )


def _consent_detail(address: AddressView, zone: ZoneInfo) -> str:
    if address.declined:
        return f"no: {address.consent_source}"
    if address.consent_at is None:
        return "none recorded (reached only when they write first)"
    source = address.consent_source or "source not recorded"
    return f"{_time(address.consent_at, zone)}, {source}"


# --- erase ------------------------------------------------------------------------------------


@contacts.command("erase")
@click.argument("ref", metavar="ID_OR_ADDRESS")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def contacts_erase(config: Config, ref: str, yes: bool) -> None:
    """Erase a contact as their own FORGET would: addresses and messages go, answers stay
    without a link to them. Nothing is sent to them."""
    with runtime(config) as rt:
        service = _contacts(config, rt)
        contact_id = _find(service, ref)
        try:
            contact = service.details(contact_id).contact
        except LookupError as exc:
            raise click.ClickException(str(exc.args[0])) from exc
        if not yes:
            shown = ", ".join(f"{a.channel} {mask(a.channel, a.value)}" for a in contact.addresses)
            click.confirm(
                f"Erase contact {contact_id} ({shown or 'no address'})? Their choices stay, "
                "anonymous; what they typed goes. This cannot be undone.",
                abort=True,
            )
        try:
            scrubbed = service.erase(contact_id)
        except LookupError as exc:
            raise click.ClickException(str(exc.args[0])) from exc
    click.echo(f"contact {contact_id} erased")
    if not scrubbed:
        click.echo(
            "note: another program is reading the database; old copies stay in its "
            "write-ahead log until the dispatcher clears them (within a minute of that read)",
            err=True,
        )
