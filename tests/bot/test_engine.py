"""The pure engine: conditions, flow, re-asks, and its independence from I/O."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.conversation import engine
from bot.conversation.engine import Finish, Record, Say
from surveys.answers import Reask
from surveys.loader import parse_survey
from surveys.model import AnswerValue, Condition, Question, Range

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def q_when(**when: Condition) -> Question:
    return Question(id="later", type="text", text={"en": "?"}, when=when)


@pytest.mark.parametrize(
    ("when", "answers", "holds"),
    [
        ({"visits": "never"}, {"visits": "never"}, True),
        ({"visits": "never"}, {"visits": "weekly"}, False),
        ({"visits": ("weekly", "monthly")}, {"visits": "monthly"}, True),
        ({"visits": ("weekly", "monthly")}, {"visits": "never"}, False),
        ({"do": ("dog",)}, {"do": ["walk", "dog"]}, True),
        ({"do": "dog"}, {"do": ["walk", "picnic"]}, False),
        ({"ok": True}, {"ok": True}, True),
        ({"ok": True}, {"ok": False}, False),
        ({"ok": False}, {"ok": False}, True),
        ({"clean": Range(max=2)}, {"clean": 2}, True),
        ({"clean": Range(max=2)}, {"clean": 3}, False),
        ({"age": Range(min=18, max=30)}, {"age": 30.0}, True),
        ({"age": Range(min=18, max=30)}, {"age": 17.9}, False),
        # A condition on a question that was not asked, or was skipped, is false.
        ({"visits": "never"}, {}, False),
        ({"visits": "never"}, {"visits": None}, False),
        ({"ok": False}, {"ok": None}, False),
        ({"clean": Range(max=2)}, {"clean": None}, False),
        # All conditions must hold.
        ({"visits": "never", "ok": True}, {"visits": "never", "ok": False}, False),
        ({"visits": "never", "ok": True}, {"visits": "never", "ok": True}, True),
    ],
)
def test_conditions(
    when: dict[str, Condition], answers: dict[str, AnswerValue], holds: bool
) -> None:
    assert engine.conditions_hold(q_when(**when), answers) is holds


SURVEY = parse_survey(
    """
id = "mini"
title = { en = "Mini", nl = "Mini" }
languages = ["en", "nl"]
keywords = ["MINI"]
closes_at = 2027-01-01T00:00:00+00:00

[[questions]]
id = "ok"
type = "yesno"
text = { en = "OK?", nl = "Goed?" }

[[questions]]
id = "why"
type = "text"
optional = true
when = { ok = false }
text = { en = "Why not?", nl = "Waarom niet?" }
""",
    "mini.toml",
)


def test_flow_records_and_finishes() -> None:
    step = engine.start(SURVEY, "nl", NOW)
    assert step.state.language == "nl"
    assert step.says[0].text == "Goed?"
    assert [o.label for o in step.says[0].options] == ["Ja", "Nee"]
    step = engine.resume(SURVEY, step.state, engine.Reply("nee"), NOW)
    assert Record("ok", False, "nee", "yesno") in step.effects
    assert step.state.current == "why"
    step = engine.resume(SURVEY, step.state, engine.Skip(), NOW)
    assert Record("why", None, None, "skip") in step.effects
    assert Finish("completed") in step.effects
    assert step.state.status == "completed"
    assert step.state.answers == {"ok": False, "why": None}


def test_branch_not_taken_leaves_the_question_unasked() -> None:
    step = engine.start(SURVEY, "en", NOW)
    step = engine.resume(SURVEY, step.state, engine.Reply("yes"), NOW)
    assert step.state.status == "completed"
    assert "why" not in step.state.answers
    assert step.state.asked == ("ok",)


def test_reask_mentions_help_from_the_second_failed_try() -> None:
    state = engine.start(SURVEY, "en", NOW).state
    first = engine.resume(SURVEY, state, engine.Reply("perhaps"), NOW)
    second = engine.resume(SURVEY, first.state, engine.Reply("perhaps"), NOW)
    assert first.says == (Say("Please reply YES or NO."),)
    assert second.says == (Say("Please reply YES or NO. Send HELP for help."),)
    assert second.state.tries == 2
    assert engine.resume(SURVEY, second.state, engine.Reply("y"), NOW).state.tries == 0


def test_optional_question_reask_mentions_skip() -> None:
    question = Question(id="t", type="text", text={"en": "?"}, optional=True, max_length=5)
    hint = engine.hint_text(question, Reask("text_too_long", {"max": 5}), "en", tries=2)
    assert hint == "Please keep it under 5 characters. Send HELP for help or SKIP to skip."


def test_closed_survey_answers_politely_and_ends_the_session() -> None:
    state = engine.start(SURVEY, "en", NOW).state
    later = datetime(2027, 1, 1, tzinfo=UTC) + timedelta(seconds=1)
    step = engine.resume(SURVEY, state, engine.Reply("yes"), later)
    assert step.says[0].text.startswith("Sorry, this consultation is closed.")
    assert step.state.status == "abandoned"
    assert not any(isinstance(e, Record) for e in step.effects)
    assert engine.start(SURVEY, "en", later).state.status == "abandoned"


def test_state_round_trips_through_json() -> None:
    step = engine.start(SURVEY, "en", NOW)
    step = engine.resume(SURVEY, step.state, engine.Reply("no"), NOW)
    assert engine.SessionState.from_json(step.state.to_json()) == step.state


@pytest.mark.parametrize(
    "module",
    ["bot/conversation/engine.py", "bot/conversation/router.py", "bot/conversation/commands.py"],
)
def test_pure_modules_import_no_io(module: str) -> None:
    # DESIGN.md: the engine imports nothing from storage, channels, Flask, APScheduler or the clock.
    tree = ast.parse((ROOT / module).read_text())
    imported = {
        alias.name if isinstance(node, ast.Import) else node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    forbidden = ("storage", "channels", "flask", "apscheduler", "sqlalchemy", "time")
    shell = [m for m in imported if m == "bot.service" or m.startswith("bot.service.")]
    assert not [m for m in imported if m.split(".")[0] in forbidden] + shell
    source = (ROOT / module).read_text()
    assert "datetime.now" not in source
    assert "utcnow" not in source
