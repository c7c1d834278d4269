"""``voxpop staff``: add, list and disable the accounts that sign in to the console, and
reset their one-time codes.

The console's Staff page does the same through the same functions
(:class:`bot.staff.accounts.StaffAccounts`); this is how the first admin is made on a server
where nobody can open the setup link, and how an admin locked out gets back in.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from bot.cli.common import runtime
from bot.config import Config
from bot.service import utc_now
from bot.staff.accounts import StaffAccounts, StaffError, parse_role
from bot.staff.codes import OneTimeCodes

#: The audit log's name for what was done from the command line.
ACTOR = "staff:command line"


@contextmanager
def _accounts(config: Config) -> Iterator[StaffAccounts]:
    with runtime(config) as rt:
        yield StaffAccounts(rt.sessions, utc_now)


@click.group()
def staff() -> None:
    """Staff accounts for the console (docs/console.md)."""


@staff.command("add")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice(["admin", "editor", "analyst"]),
    required=True,
    help="admin: everything; editor: consultations, contacts, pushes; analyst: results.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (one line) instead of asking.",
)
@click.pass_obj
def staff_add(config: Config, email: str, role: str, password_stdin: bool) -> None:
    """Add an account that signs in with EMAIL."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _accounts(config) as accounts:
        try:
            added = accounts.add(email, password, parse_role(role), actor=ACTOR)
        except StaffError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"added {added.email} ({added.role.value})")


@staff.command("list")
@click.pass_obj
def staff_list(config: Config) -> None:
    """List the accounts: email, role, and whether they are disabled or use one-time codes."""
    with _accounts(config) as accounts:
        everyone = accounts.all()
    if not everyone:
        click.echo("no staff accounts (voxpop staff add EMAIL --role admin)")
        return
    rows = [("EMAIL", "ROLE", "LAST SIGN-IN (UTC)", "NOTES")]
    for member in everyone:
        notes = [
            note
            for note, on in (("disabled", member.disabled), ("codes", member.totp_enabled))
            if on
        ]
        last = (
            member.last_sign_in_at.strftime("%Y-%m-%d %H:%M") if member.last_sign_in_at else "never"
        )
        rows.append((member.email, member.role.value, last, ", ".join(notes)))
    # Every column as wide as its widest cell, so the header sits over its values.
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())


@staff.command("disable")
@click.argument("email")
@click.pass_obj
def staff_disable(config: Config, email: str) -> None:
    """Disable the account EMAIL: it cannot sign in, and its open sessions end at once."""
    with _accounts(config) as accounts:
        try:
            member = accounts.disable(email, actor=ACTOR)
        except StaffError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"disabled {member.email}; their sessions have ended")


@staff.command("reset-codes")
@click.argument("email")
@click.pass_obj
def staff_reset_codes(config: Config, email: str) -> None:
    """Turn off the one-time codes of EMAIL (a lost phone): they sign in with their password
    and set up codes again."""
    with runtime(config) as rt:
        member = StaffAccounts(rt.sessions, utc_now).by_email(email)
        if member is None:
            raise click.ClickException("There is no account with this email.")
        OneTimeCodes(rt.sessions, utc_now).reset(member.id, actor=ACTOR)
    click.echo(
        f"reset the one-time codes of {member.email}; they set them up at their next sign-in"
    )
