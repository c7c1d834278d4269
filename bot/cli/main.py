"""The ``voxpop`` command line: database, surveys, the chat simulator, results, the server."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import signal
import sqlite3
import sys
import uuid
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import click
from flask import Flask
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.cli.common import check_channels, database_error, real_channels, runtime
from bot.cli.contacts import contacts
from bot.cli.outcome import outcome
from bot.cli.push import parse_at, push
from bot.cli.scheduler import scheduler as scheduler_command
from bot.cli.staff import staff
from bot.cli.telegram import telegram
from bot.config import Config, ConfigError, configured_channels, load_config
from bot.console.context import EXTENSION as CONSOLE
from bot.consultations.checking import Loaded, check_files
from bot.consultations.manage import consultations
from bot.delivery.dispatcher import DispatcherThread
from bot.pushes.scheduler import Scheduler
from bot.pushes.service import Pushes
from bot.results.export import FORMATS
from bot.results.filters import STATUSES, FilterError, ResultsFilter
from bot.results.service import Results
from bot.runtime import configure_logging
from bot.service import Outgoing, read_survey_sources
from bot.web.storable import storable_message
from channels.addresses import address_problem
from channels.simulator import PREFIX, display_lines
from messages import CHANNEL_NAMES, Address, InboundMessage
from safetext import clean_text
from storage.backup import BackupError, backup_sqlite
from storage.migrate import current, head, upgrade
from surveys.loader import SurveyError
from surveys.validate import ValidationReport

#: The terminal's own test phone: not the browser simulator's, so the two don't share a
#: conversation (numbers in the 555 fiction range, a made-up chat id).
TERMINAL_TEST_ADDRESSES = {"sms": "+15555550101", "whatsapp": "+15555550101", "telegram": "100001"}


@click.group()
@click.option("--config", "config_path", metavar="PATH", help="Config file (TOML).")
# The installed package's version (pyproject.toml), printed before any config is read.
@click.version_option(package_name="voxpop", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Voxpop: short citizen consultations over SMS, WhatsApp and Telegram."""
    try:
        config = load_config(config_path)
        configure_logging(config)
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    ctx.obj = config


# --- db ---------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(config: Config) -> None:
    """Create or migrate the schema to the latest version."""
    try:
        before = current(config.database.url)
        upgrade(config.database.url)
    except (SQLAlchemyError, ValueError) as exc:
        raise database_error(exc) from exc
    if before == head():
        click.echo(f"database already up to date (revision {before})")
    else:
        click.echo(f"database migrated from {before or 'empty'} to revision {head()}")


@db.command("backup")
@click.argument("target", metavar="PATH", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def db_backup(config: Config, target: Path) -> None:
    """Copy the SQLite database to PATH while Voxpop keeps running (a consistent snapshot;
    PATH must not exist). PostgreSQL: use pg_dump (docs/deployment.md)."""
    try:
        done = backup_sqlite(config.database.url, target)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    except (SQLAlchemyError, sqlite3.Error) as exc:
        raise database_error(exc) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror}") from exc
    click.echo(f"backed up to {done.target} ({done.size} bytes, schema revision {done.revision})")


# --- surveys ----------------------------------------------------------------------------------


@main.group()
def survey() -> None:
    """Consultation files: validate, load, list."""


def _loaded_keywords(config: Config) -> Loaded:
    """What ``survey validate`` checks keywords against: the configured database's
    consultations, if it has any; a database that cannot be opened is said, not fatal."""

    def loaded(replaced: Collection[str]) -> Mapping[str, str]:
        url = make_url(config.database.url)
        if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
            return {}  # no database yet (and validating must not create one)
        try:
            if current(config.database.url) != head():
                return {}  # nothing loaded yet, or a database `db upgrade` must see first
            with runtime(config) as rt:
                return rt.service.loaded_keywords(replaced)
        except (SQLAlchemyError, ValueError, click.ClickException) as exc:
            reason = getattr(exc, "orig", None) or exc
            click.echo(
                f"note: keywords not checked against loaded consultations (database: {reason})",
                err=True,
            )
            return {}

    return loaded


def _print_report(report: ValidationReport, costs: bool) -> None:
    for problem in report.problems:
        click.echo(str(problem), err=problem.severity == "error")
    if costs:
        for cost in report.costs:
            c = cost.cost
            click.echo(
                f"{report.source}: sms {cost.where} [{cost.language}]: {c.encoding}, "
                f"{c.characters} characters, {c.segments} segment{'s' if c.segments != 1 else ''}"
            )


def _survey_files(paths: tuple[str, ...]) -> list[str]:
    """Files as given, folders expanded to their ``*.toml`` files; a folder without any is
    an error (loading "nothing" from the wrong folder must not look like success)."""
    for raw in paths:
        folder = Path(raw)
        if folder.is_dir() and not any(folder.glob("*.toml")):
            raise click.ClickException(
                f"{raw}: no consultation files (*.toml) in this folder; the examples are in "
                "surveys/examples/"
            )
    return [name for name, _ in read_survey_sources(paths, read=False)]


@survey.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--quiet", is_flag=True, help="Only problems, no SMS costs.")
@click.pass_obj
def survey_validate(config: Config, files: tuple[str, ...], quiet: bool) -> None:
    """Check consultation files as `load` does (with each other, and with the consultations
    already loaded) and show each message's SMS cost. Exit 1 on errors."""
    reports = check_files(_survey_files(files), _loaded_keywords(config))
    for report in reports:
        _print_report(report, costs=not quiet)
        if not report.has_errors:
            click.echo(f"{report.source}: ok")
    sys.exit(1 if any(r.has_errors for r in reports) else 0)


@survey.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.pass_obj
def survey_load(config: Config, files: tuple[str, ...]) -> None:
    """Validate and store consultation files; a changed file becomes a new version."""
    paths = _survey_files(files)
    with runtime(config) as rt:
        reports = check_files(paths, rt.service.loaded_keywords)
        for report in reports:
            _print_report(report, costs=False)
        if any(r.has_errors for r in reports):
            click.echo("nothing was loaded", err=True)
            sys.exit(1)
        try:
            loaded_surveys = rt.service.load_surveys(read_survey_sources(paths))
        except SurveyError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            click.echo("nothing was loaded", err=True)
            sys.exit(1)
        for loaded in loaded_surveys:
            click.echo(f"{loaded.survey.id}: {_OUTCOMES[loaded.outcome]} {loaded.version}")


_OUTCOMES = {
    "new": "loaded as version",
    "unchanged": "unchanged, current version is",
    "restored": "back to an earlier text: current version is again",
}


@survey.command("list")
@click.pass_obj
def survey_list(config: Config) -> None:
    """Loaded consultations: id, title, version, status, responses."""
    with runtime(config) as rt:
        listed = consultations(rt.service, config.pushes.timezone)
        if not listed:
            click.echo("no surveys loaded (try: voxpop survey load surveys/examples/*.toml)")
            return
        table = [("ID", "TITLE", "VERSION", "STATUS", "RESPONSES", "SIMULATOR")]
        for c in listed:
            status = "closed" if c.status == "closed" else "open"
            table.append(
                (c.slug, c.title, str(c.version), status, str(c.responses), str(c.simulator_runs))
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for r in table:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@survey.command("close")
@click.argument("survey_id")
@click.option("--at", "at_text", default="now", show_default=True, help="now, +2h, or a time.")
@click.pass_obj
def survey_close(config: Config, survey_id: str, at_text: str) -> None:
    """Close a consultation (every version): nobody more is invited or reminded, and late
    replies hear that it is closed. Loading its file again later reopens it."""
    with runtime(config) as rt:
        at = parse_at(at_text, config.pushes.timezone, rt.service.now())
        try:
            versions = rt.service.close_survey(survey_id, at)
        except LookupError as exc:
            raise click.ClickException(str(exc).strip("'\"")) from None
    click.echo(f"{survey_id}: closes at {at:%Y-%m-%d %H:%M} UTC ({versions} version(s))")


# --- chat -------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--from",
    "sender",
    metavar="ADDRESS",
    help="The citizen's address (default: +15555550101, or chat id 100001 on telegram).",
)
@click.option(
    "--channel",
    type=click.Choice(CHANNEL_NAMES),
    default="sms",
    show_default=True,
    help="Render replies as this channel would.",
)
@click.option("--start", "start_slug", metavar="SURVEY_ID", help="Begin a survey as an invitation.")
@click.pass_obj
def chat(config: Config, sender: str | None, channel: str, start_slug: str | None) -> None:
    """Talk to Voxpop as a citizen: each line you type is an inbound message."""
    address = Address(channel, sender or TERMINAL_TEST_ADDRESSES[channel])
    problem = address_problem(channel, address.value)
    if problem is not None:
        raise click.BadParameter(
            f"{address.value!r} is not a {channel} address: {problem}", param_hint="--from"
        )
    interactive = sys.stdin.isatty()
    # The transcript is the output here; routine INFO lines would only interleave with it.
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    with runtime(config) as rt:
        if start_slug:
            try:
                _show(rt.service.start_survey(address, start_slug, simulated=True))
            except LookupError as exc:
                raise click.ClickException(str(exc.args[0])) from exc
        elif interactive:
            click.echo(f"Chatting as {address.channel}:{address.value}. Ctrl-D to leave.")
        for line in _lines(sys.stdin, interactive):
            if not line.strip():
                continue  # no channel delivers an empty message
            if not interactive:
                click.echo(f"you> {line}")
            msg = InboundMessage(address, line, f"chat-{uuid.uuid4().hex}", datetime.now(UTC))
            _show(rt.service.receive(storable_message(msg), simulated=True).outgoing)


def _lines(stream: TextIO, interactive: bool) -> Iterator[str]:
    while True:
        if interactive:
            try:
                line = input("you> ")
            except EOFError:
                click.echo()
                return
        else:
            raw = stream.readline()
            if not raw:
                return
            line = raw.rstrip("\r\n")
        yield line


def _show(outgoing: tuple[Outgoing, ...]) -> None:
    for out in outgoing:
        for line in display_lines(out.render()):
            click.echo(f"{PREFIX}{line}")


# --- results ----------------------------------------------------------------------------------


@main.group()
def results() -> None:
    """Consultation results."""


@results.command("export")
@click.argument("survey_id")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="File (default: stdout).")
@click.option(
    "--include-simulator",
    is_flag=True,
    help="Also export conversations staff had in the simulator (left out by default).",
)
@click.option(
    "--no-free-text",
    is_flag=True,
    help="Leave out the answers to text questions: what people typed can name them.",
)
@click.option("--survey-version", "version", type=click.IntRange(min=1), help="Only this version.")
@click.option("--from", "since", type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD).")
@click.option("--to", "until", type=click.DateTime(["%Y-%m-%d"]), help="Last day, inclusive.")
@click.option(
    "--status",
    "statuses",
    type=click.Choice(STATUSES),
    multiple=True,
    help="Only responses with this status (repeat for several).",
)
@click.pass_obj
def results_export(
    config: Config,
    survey_id: str,
    fmt: str,
    out: str | None,
    include_simulator: bool,
    no_free_text: bool,
    version: int | None,
    since: datetime | None,
    until: datetime | None,
    statuses: tuple[str, ...],
) -> None:
    """One row per response; respondents are pseudonyms, never addresses (docs/results.md).
    Days are the city's ([pushes] timezone), the day a response began."""
    try:
        wanted = ResultsFilter(
            survey_id,
            version=version,
            since=since.date() if since else None,
            until=until.date() if until else None,
            statuses=statuses,
            include_simulated=include_simulator,
        )
    except FilterError as exc:
        raise click.UsageError(str(exc)) from None
    with runtime(config) as rt:
        results = Results(rt.service, config)
        try:
            chunks = results.export(wanted, fmt, free_text=not no_free_text)
        except LookupError as exc:
            raise click.ClickException(str(exc.args[0])) from exc
        if fmt == "xlsx" and out is None and sys.stdout.isatty():
            raise click.ClickException("an XLSX file is not for a terminal: add --out FILE")
        try:
            # "-" is standard output, which stays open after the file is written.
            target = click.open_file(out or "-", "wb")
        except OSError as exc:
            raise click.ClickException(f"cannot write {out}: {exc.strerror}") from exc
        with target as stream:
            for chunk in chunks:
                stream.write(chunk)
        left_out = 0 if include_simulator else results.simulator_runs(survey_id)
        if left_out:
            click.echo(
                f"note: {left_out} simulator conversation(s) left out "
                "(add --include-simulator to export them)",
                err=True,
            )


# --- serve ------------------------------------------------------------------------------------


@main.command()
@click.option("--host", help="Interface to listen on (default from [server] host).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port (default from [server] port); 0 takes any free port, printed at start.",
)
@click.pass_obj
def serve(config: Config, host: str | None, port: int | None) -> None:
    """Run the web server (waitress): provider webhooks, the browser simulator at /simulator,
    the scheduler (standing by if another process runs it), and, when a real channel is
    configured, a dispatcher that sends the outbox."""
    from bot.delivery.transports import dispatch_forever
    from bot.web.app import create_app, make_server, server_url, simulator_warning
    from bot.web.app import serve as run_server

    check_channels(config)
    thread: DispatcherThread | None = None
    with runtime(config, on_outbox=lambda: thread.wake() if thread else None) as rt:
        if config.surveys.load:
            paths = _survey_files(tuple(config.surveys.load))
            try:
                loaded_surveys = rt.service.load_surveys(read_survey_sources(paths))
            except SurveyError as exc:
                problems = "\n".join(str(problem) for problem in exc.problems)
                message = f"[surveys] load: nothing was loaded\n{problems}"
                raise click.ClickException(message) from None
            for loaded in loaded_surveys:
                click.echo(f"survey {loaded.survey.id} version {loaded.version}")
        bind_host = host or config.server.host
        # The app judges the simulator by the interface it really listens on.
        config = dataclasses.replace(
            config, server=dataclasses.replace(config.server, host=bind_host)
        )
        warning = simulator_warning(config.server)
        if warning:
            # Said before anything else can fail: it is about the configuration, not the port.
            click.echo(f"WARNING: {warning}", err=True)
        bind_port = config.server.port if port is None else port  # 0: any free port
        app = create_app(rt.service, config, on_outbox=rt.on_outbox)
        try:
            server = make_server(app, bind_host, bind_port, config.server.threads)
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {bind_host}:{bind_port}: {exc.strerror} "
                "(is another Voxpop running? choose another port: voxpop serve --port N, "
                "or make run PORT=N; 0 takes any free port)"
            ) from exc
        url = server_url(server)
        click.echo(f"listening on {url}")
        click.echo(f"staff console: {url}/")
        _print_setup_link(app, config.server.public_url.rstrip("/") or url)
        if real_channels(config):
            thread = DispatcherThread(partial(dispatch_forever, config, rt.sessions))
            thread.start()
        channels = configured_channels(config)
        if channels:
            click.echo(f"channels: {', '.join(channels)}")
        else:
            click.echo(
                "channels: none configured, so citizens cannot reach Voxpop and nothing is "
                "sent (only the simulator answers); to add Telegram, SMS or WhatsApp, see "
                "docs/channels.md"
            )
        # Stands by when another process (`voxpop scheduler`, another serve) holds the lock.
        pushes = Pushes(rt.sessions, rt.service, config, on_outbox=rt.on_outbox)
        scheduler = Scheduler(rt.engine, pushes, config.scheduler)
        if config.server.simulator_public:
            public = config.server.public_url.rstrip("/")
            click.echo(f"simulator: {public}/simulator (signed-in editors and admins only)")
        elif config.server.simulator_enabled:
            click.echo(f"simulator: {url}/simulator")
        elif not config.server.simulator_enabled:
            why = "[server] public_url is set" if config.server.public_url else "turned off"
            click.echo(f"simulator: off ({why}; [server] simulator = true turns it on)")
        try:
            scheduler.start()
            run_server(server)
        finally:
            scheduler.stop()
            if thread is not None:
                thread.stop()


def _print_setup_link(app: Flask, base_url: str) -> None:
    """On a database with no staff account, the one-time link that creates the first admin:
    printed here only, so only whoever started the server can use it."""
    token = app.extensions[CONSOLE].staff.setup_token()
    if token is None:
        return
    click.echo(
        "No staff account yet. Open this link to create the first admin; it works once, "
        f"for 24 hours, and a restart makes a new one:\n  {base_url}/setup/{token}"
    )


@main.command()
@click.pass_obj
def dispatch(config: Config) -> None:
    """Send the outbox through the configured channels until interrupted (several may run
    on PostgreSQL; see docs/delivery.md)."""
    from bot.delivery.transports import dispatch_forever

    check_channels(config)
    if not real_channels(config):
        raise click.ClickException(
            "no channel is configured ([telegram] or [twilio]): there is nothing to send"
        )

    async def main_loop() -> None:
        stop, wake = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        with runtime(config) as rt:
            click.echo("dispatching; Ctrl-C to stop")
            await dispatch_forever(config, rt.sessions, stop, wake)

    asyncio.run(main_loop())


main.add_command(scheduler_command)
main.add_command(telegram)
main.add_command(contacts)
main.add_command(push)
main.add_command(outcome)
main.add_command(staff)


def _clean_typed_values(command: click.Command) -> None:
    """What staff type is outside input too: every text value of every command (but paths,
    which name files as they are) is cleaned like a webhook's before any command sees it.
    A shell can hand over bytes that are not UTF-8 (lone surrogates to Python), which no
    PostgreSQL column takes."""
    for sub in getattr(command, "commands", {}).values():
        _clean_typed_values(sub)
    callback = command.callback
    if callback is None:
        return
    paths = {p.name for p in command.params if isinstance(p.type, click.Path | click.File)}

    @functools.wraps(callback)
    def cleaned(*args: Any, **params: Any) -> Any:
        return callback(
            *args, **{k: v if k in paths else clean_value(v) for k, v in params.items()}
        )

    command.callback = cleaned


def clean_value(value: Any) -> Any:
    r"""A typed value made safe for both engines (:func:`safetext.clean_text`); tuples of
    them (options given several times) each.

    >>> clean_value("district=a\udcffb"), clean_value(("x", 3)), clean_value(None)
    ('district=a\ufffdb', ('x', 3), None)
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, tuple):
        return tuple(clean_value(v) for v in value)
    return value


_clean_typed_values(main)

if __name__ == "__main__":
    main()
