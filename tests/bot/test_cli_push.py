"""``voxpop push`` and ``voxpop outcome`` as staff use them, on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.cli.push import push
from bot.service import Service, utc_now
from storage.db import transaction
from storage.models import OutcomeRow, PushRecipient, PushRow
from tests.bot.conftest import FIXTURES, Clock
from tests.bot.test_pushes import add_contact, reply
from tests.helpers import voxpop

SURVEYS = [str(FIXTURES / "every-type.toml"), str(FIXTURES / "other.toml")]


@pytest.fixture
def loaded(db_url: str, db: sessionmaker[Session]) -> str:
    assert voxpop(db_url, "survey", "load", *SURVEYS).exit_code == 0
    add_contact(db, "+32470000001", attributes={"district": "north"})
    add_contact(db, "+32470000002", attributes={"district": "south"})
    add_contact(db, "4242", channel="telegram", attributes={"district": "north"}, language="nl")
    add_contact(db, "+32470000004", attributes={"district": "north"}, consent=False)
    return db_url


def _pushes(db: sessionmaker[Session]) -> list[PushRow]:
    with transaction(db, read_only=True) as s:
        return list(s.scalars(select(PushRow).order_by(PushRow.id)))


def test_a_dry_run_shows_audience_and_cost_and_makes_nothing(
    loaded: str, db: sessionmaker[Session]
) -> None:
    result = voxpop(
        loaded, "push", "every-type", "--at", "+1h", "--where", "district=north", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert "audience: district = north" in result.output
    assert "recipients: 2" in result.output
    assert "    sms: 1\n    telegram: 1" in result.output
    assert "languages: en 1, nl 1" in result.output
    assert "left out: 1 (no consent 1)" in result.output
    assert "SMS: 2 segments" in result.output
    assert "dry run: nothing was made" in result.output
    assert _pushes(db) == []


def test_a_push_is_scheduled_listed_shown_and_cancelled(
    loaded: str, db: sessionmaker[Session]
) -> None:
    made = voxpop(loaded, "push", "every-type", "--at", "2030-01-15 10:00", "--rate", "600/min")
    assert made.exit_code == 0, made.output
    assert "at 2030-01-15 10:00 Europe/Brussels (09:00 UTC)" in made.output
    assert "rate: 10/s" in made.output
    assert "push 1 scheduled" in made.output
    (row,) = _pushes(db)
    assert (row.status, row.rate_per_second) == ("scheduled", 10.0)
    listed = voxpop(loaded, "push", "list")
    assert "   1  every-type           invitation scheduled  2030-01-15 09:00       0" in (
        listed.output
    )
    shown = voxpop(loaded, "push", "show", "1")
    assert "push 1: invitation of every-type, scheduled" in shown.output
    cancelled = voxpop(loaded, "push", "cancel", "1")
    assert cancelled.output.strip() == "push 1 cancelled; 0 recipients were still waiting"
    again = voxpop(loaded, "push", "cancel", "1")
    assert again.exit_code == 1
    assert "push 1 is cancelled: there is nothing to cancel" in again.output
    assert "cancelled by staff" in voxpop(loaded, "push", "list").output


def test_a_push_now_is_planned_at_once(loaded: str, db: sessionmaker[Session]) -> None:
    result = voxpop(
        loaded,
        "push",
        "every-type",
        "--at",
        "now",
        "--quiet-hours",
        "",
        "--channel",
        "sms",
        "--remind-after",
        "24h",
        "--reminders",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert "fired: 2 recipients planned" in result.output
    assert "reminders: after 24 h, at most 2" in result.output
    with transaction(db, read_only=True) as s:
        assert s.scalar(select(func.count(PushRecipient.id))) == 2
    shown = voxpop(loaded, "push", "show", "1").output
    assert "  all                2       0       2       0" in shown
    assert "  sms                2" in shown


def test_variants_come_from_options_and_a_file(
    loaded: str, db: sessionmaker[Session], tmp_path: Path
) -> None:
    wordings = tmp_path / "variants.toml"
    wordings.write_text('[C]\nen = "Your city asks."\nnl = "Uw stad vraagt."\n')
    result = voxpop(
        loaded,
        "push",
        "every-type",
        "--at",
        "+1h",
        "--variant",
        "Seven short questions.",
        "--variant",
        "Help your city: seven questions.",
        "--variants",
        str(wordings),
    )
    assert result.exit_code == 0, result.output
    assert "variants: A, B, C" in result.output
    (row,) = _pushes(db)
    assert [v["name"] for v in row.variants or []] == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--at", "tomorrow"), "use now, +10m, +2h, '2026-12-01 10:00'"),
        (("--at", "now", "--rate", "fast"), "use 50/s, 600/min or 1000/h"),
        (("--at", "now", "--where", "district"), "--where: an attribute needs NAME=VALUE[,VALUE"),
        (("--at", "now", "--reminders", "2"), "--remind-after: say how long to wait"),
        (("--at", "now", "--channel", "fax"), "unknown channel 'fax'"),
        (("--at", "now", "--timezone", "Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        (("--at", "now", "--quiet-hours", "late"), "quiet hours must look like 21:00-09:00"),
        (("--at", "now", "--remind-after", "soon"), "use 24h, 90m or 2d"),
    ],
)
def test_bad_options_say_what_is_wrong(
    loaded: str, db: sessionmaker[Session], args: tuple[str, ...], message: str
) -> None:
    result = voxpop(loaded, "push", "every-type", *args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert _pushes(db) == []


def test_an_unknown_survey_is_a_clear_error(loaded: str) -> None:
    result = voxpop(loaded, "push", "nope", "--at", "now", "--not-answered", "other,gone")
    assert result.exit_code == 2
    assert "SURVEY_ID: no consultation 'nope' is loaded" in result.output
    assert "--not-answered: no consultation 'gone' is loaded" in result.output


def test_an_outcome_is_checked_previewed_and_published(
    loaded: str, db: sessionmaker[Session], tmp_path: Path
) -> None:
    clock = Clock(utc_now())
    service = Service(db, clock=clock)
    reply(service, clock, "+32470000002", "OTHER")
    reply(service, clock, "+32470000002", "yes")
    outcome = tmp_path / "outcome.toml"
    outcome.write_text('text.en = "You said yes: we do it."\n')
    preview = voxpop(loaded, "outcome", "publish", "other", "--file", str(outcome), "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert "text [en]: 1 SMS segment(s), GSM-7" in preview.output
    assert "audience: took part in other" in preview.output
    assert "recipients: 1" in preview.output
    assert "dry run: nothing was published" in preview.output
    published = voxpop(
        loaded, "outcome", "publish", "other", "--file", str(outcome), "--quiet-hours", ""
    )
    assert published.exit_code == 0, published.output
    assert "is published: push 1 sends it to 1 person who took part." in published.output
    assert "fired: 1 recipients planned" in published.output
    listed = voxpop(loaded, "outcome", "list")
    assert "other" in listed.output
    assert "[en], push 1" in listed.output
    with transaction(db, read_only=True) as s:
        assert s.scalar(select(func.count(OutcomeRow.id))) == 1


def test_an_outcome_nobody_can_get_is_published_for_results_only(
    loaded: str, db: sessionmaker[Session], tmp_path: Path
) -> None:
    outcome = tmp_path / "outcome.toml"
    outcome.write_text('text.en = "We do it."\n')
    published = voxpop(loaded, "outcome", "publish", "other", "--file", str(outcome))
    assert published.exit_code == 0, published.output
    assert "is published for RESULTS only: nobody who took part can get it" in published.output
    assert "voxpop push show" not in published.output
    with transaction(db, read_only=True) as s:
        assert s.scalar(select(func.count(PushRow.id))) == 0
        assert s.scalar(select(func.count(OutcomeRow.id))) == 1


def test_a_bad_outcome_file_is_not_published(
    loaded: str, db: sessionmaker[Session], tmp_path: Path
) -> None:
    outcome = tmp_path / "outcome.toml"
    outcome.write_text('text.en = "fine"\nwhen = "may"\n')
    result = voxpop(loaded, "outcome", "publish", "other", "--file", str(outcome))
    assert result.exit_code == 1
    assert f"{outcome}:2: error: unknown key 'when'" in result.output
    assert "not published: fix the errors above" in result.output
    assert _pushes(db) == []


def test_push_help_shows_how_to_make_a_push_with_every_option() -> None:
    """``push SURVEY_ID ...`` is the hidden ``create``: ``push --help`` shows its options."""
    shown = voxpop("sqlite://", "push", "--help").stdout
    create = push.commands["create"]
    options = [o for p in create.params for o in p.opts if o.startswith("--")]
    assert {"--at", "--where", "--remind-after", "--dry-run", "--quiet-hours"} <= set(options)
    for option in options:
        assert f"  {option} " in shown, option
    assert "Making a push (voxpop push SURVEY_ID --at WHEN [OPTIONS])" in shown
    assert "now, +10m, +2h, or '2026-12-01 10:00'." in shown  # with their help
    assert shown.index("Making a push") < shown.index("Commands:")
    assert "  list " in shown
