"""Readiness from heartbeats: what a web worker that runs neither a dispatcher nor a
scheduler reports about them, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ServerConfig, TelegramConfig, TwilioConfig
from bot.health import OK, Heartbeat, readiness
from storage import repo
from storage.db import make_engine, session_factory, transaction

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CHANNELS = Config(
    telegram=TelegramConfig(token="123:abc", webhook_secret="s3cret-webhook"),
    twilio=TwilioConfig(account_sid="AC1", auth_token="twilio-auth", sms_from="+15555550199"),
)
NO_DISPATCHER = "nothing is sent: no dispatcher is running"


def _beat(
    db: sessionmaker[Session], role: str, parts: dict[str, str], age: float = 0.0
) -> Heartbeat:
    heartbeat = Heartbeat(db, role, 10.0, clock=lambda: NOW - timedelta(seconds=age))
    heartbeat.beat(parts)
    return heartbeat


def _running(db: sessionmaker[Session], telegram: str = OK) -> None:
    _beat(db, "scheduler", {"scheduler": OK})
    _beat(db, "dispatcher", {"dispatcher": OK, "telegram": telegram, "sms": OK})


def test_ready_when_every_part_reports_ok(db: sessionmaker[Session]) -> None:
    _running(db)

    assert readiness(db, CHANNELS, NOW) == (
        True,
        {"database": OK, "scheduler": OK, "dispatcher": OK, "telegram": OK, "sms": OK},
    )


#: Readiness when no dispatcher or scheduler has written a heartbeat lately.
NOTHING_REPORTS = {
    "scheduler": "no scheduler has reported lately: is `voxpop scheduler` (or serve) running?",
    "dispatcher": "no dispatcher has reported lately: is `voxpop dispatch` (or serve) running?",
    "telegram": NO_DISPATCHER,
    "sms": NO_DISPATCHER,
}


@pytest.mark.parametrize(
    ("situation", "expected"),
    [
        (
            "nothing runs beside the web server",
            NOTHING_REPORTS,
        ),
        ("telegram refuses the token", {"telegram": "the token was rejected by Telegram"}),
        (
            "the scheduler stands by only",
            {"scheduler": "no scheduler is active (one is standing by)"},
        ),
        (
            "the heartbeats are old",
            NOTHING_REPORTS,
        ),
    ],
)
def test_not_ready_names_the_failing_parts(
    db: sessionmaker[Session], situation: str, expected: dict[str, str]
) -> None:
    if situation == "telegram refuses the token":
        _running(db, telegram="the token was rejected by Telegram")
    elif situation == "the scheduler stands by only":
        _beat(db, "scheduler", {"scheduler": "standing by"})
        _beat(db, "dispatcher", {"dispatcher": OK, "telegram": OK, "sms": OK})
    elif situation == "the heartbeats are old":
        _beat(db, "scheduler", {"scheduler": OK}, age=31)
        _beat(db, "dispatcher", {"dispatcher": OK, "telegram": OK, "sms": OK}, age=31)

    ready, parts = readiness(db, CHANNELS, NOW)

    assert not ready
    assert {part: state for part, state in parts.items() if state != OK} == expected


def test_one_working_dispatcher_is_enough_for_a_channel(db: sessionmaker[Session]) -> None:
    _beat(db, "scheduler", {"scheduler": OK})
    _beat(db, "dispatcher", {"dispatcher": OK, "telegram": "Telegram cannot be reached", "sms": OK})
    _beat(db, "dispatcher", {"dispatcher": OK, "telegram": OK, "sms": OK})

    assert readiness(db, CHANNELS, NOW)[0]


def test_without_channels_no_dispatcher_is_expected(db: sessionmaker[Session]) -> None:
    _beat(db, "scheduler", {"scheduler": OK})

    assert readiness(db, Config(), NOW) == (True, {"database": OK, "scheduler": OK})


def test_a_stopped_process_no_longer_counts(db: sessionmaker[Session]) -> None:
    _running(db)
    scheduler = _beat(db, "scheduler", {"scheduler": OK})

    scheduler.remove()
    assert readiness(db, CHANNELS, NOW)[0]  # the other scheduler still runs

    with transaction(db) as s:
        repo.delete_settings(s, [k for k, _ in repo.settings_with_prefix(s, "heartbeat:")])
    assert not readiness(db, CHANNELS, NOW)[0]


def test_rows_of_dead_processes_are_pruned(db: sessionmaker[Session]) -> None:
    dead = _beat(db, "dispatcher", {"dispatcher": OK}, age=2 * 3600)
    alive = _beat(db, "dispatcher", {"dispatcher": OK})

    with transaction(db, read_only=True) as s:
        keys = [key for key, _ in repo.settings_with_prefix(s, "heartbeat:")]
    assert keys == [alive.key]
    assert dead.key not in keys


def test_an_unreachable_database_is_named(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-folder' / 'voxpop.db'}")
    try:
        ready, parts = readiness(session_factory(engine), CHANNELS, NOW)
    finally:
        engine.dispose()

    assert not ready
    assert parts["database"] == "the database cannot be reached"
    assert parts["telegram"] == "unknown: the database cannot be reached"


def test_readiness_says_nothing_secret(db: sessionmaker[Session]) -> None:
    config = Config(
        server=ServerConfig(public_url="https://voxpop.example.org"),
        telegram=CHANNELS.telegram,
        twilio=CHANNELS.twilio,
    )
    _running(db, telegram="the token was rejected by Telegram")

    said = repr(readiness(db, config, NOW))

    for secret in ("123:abc", "s3cret-webhook", "twilio-auth", "+15555550199", "AC1"):
        assert secret not in said
