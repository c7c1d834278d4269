"""``voxpop results export``: the record shape of docs/results.md, on both engines.

The responses are made through the service (as citizens would make them), then exported
through the command line as staff do.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.service import Service, read_survey_sources
from messages import Address, InboundMessage
from storage.db import make_engine, session_factory
from tests.helpers import voxpop

FIXED = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures"
QUESTIONS = ["colour", "transport", "happy", "why_unhappy", "rating", "age", "km", "remark"]
#: docs/results.md: the record's keys, and the CSV's leading columns in this order.
RECORD_COLUMNS = [
    "response_id",
    "survey_version",
    "respondent",
    "channel",
    "language",
    "status",
    "started_at",
    "completed_at",
    "simulated",
]
RECORD_KEYS = {*RECORD_COLUMNS, "answers"}
CSV_HEADER = [*RECORD_COLUMNS, *QUESTIONS]


@dataclass(frozen=True)
class Respondent:
    """One citizen's conversation and what their export record must hold."""

    address: Address
    lines: tuple[str | tuple[str, str], ...]  # text, or (text, button payload)
    status: str
    language: str
    answers: dict[str, Any]
    csv: dict[str, str]


RESPONDENTS = [
    Respondent(
        Address("sms", "+32470000001"),
        ("EVERY", "green", "car, 1", "yes", "4", "42", "12,5", "SKIP"),
        "completed",
        "en",
        # why_unhappy was not asked (happy = yes): absent. remark was skipped: null.
        {
            "colour": "green",
            "transport": ["bus", "car"],
            "happy": True,
            "rating": 4,
            "age": 42,
            "km": 12.5,
            "remark": None,
        },
        {
            "colour": "green",
            "transport": "bus;car",
            "happy": "true",
            "why_unhappy": "",
            "rating": "4",
            "age": "42",
            "km": "12.5",
            "remark": "",
        },
    ),
    Respondent(
        Address("whatsapp", "+32470000002"),
        ("LANG NL", "EVERY", "rood", "4,2,1", "nee", "Te laat", "2", "80", "7,25", "Meer bussen"),
        "completed",
        "nl",
        {
            "colour": "red",
            "transport": ["bus", "bike", "foot"],
            "happy": False,
            "why_unhappy": "Te laat",
            "rating": 2,
            "age": 80,
            "km": 7.25,
            "remark": "Meer bussen",
        },
        {
            "colour": "red",
            "transport": "bus;bike;foot",
            "happy": "false",
            "why_unhappy": "Te laat",
            "rating": "2",
            "age": "80",
            "km": "7.25",
            "remark": "Meer bussen",
        },
    ),
    Respondent(
        Address("telegram", "100003"),
        ("EVERY", ("Blue", "colour:blue")),
        "partial",
        "en",
        {"colour": "blue"},
        {"colour": "blue"},
    ),
    Respondent(
        # Switched to another consultation half-way: that response is abandoned, answers kept.
        Address("sms", "+32470000004"),
        ("EVERY", "3", "bike", "OTHER", "YES", "yes"),
        "abandoned",
        "en",
        {"colour": "blue", "transport": ["bike"]},
        {"colour": "blue", "transport": "bike"},
    ),
]


@pytest.fixture
def responses(db_url: str) -> str:
    """Every respondent's conversation, one minute per message; the database URL."""
    now = [FIXED]
    engine = make_engine(db_url)
    try:
        service = Service(session_factory(engine), clock=lambda: now[0])
        service.load_surveys(
            read_survey_sources([str(FIXTURES / "every-type.toml"), str(FIXTURES / "other.toml")])
        )
        ids = itertools.count()
        for who in RESPONDENTS:
            for line in who.lines:
                text, payload = line if isinstance(line, tuple) else (line, None)
                msg = InboundMessage(who.address, text, f"ex-{next(ids)}", now[0], payload)
                service.receive(msg)
                now[0] += timedelta(minutes=1)
    finally:
        engine.dispose()
    return db_url


def _jsonl(db_url: str, slug: str = "every-type") -> list[dict[str, Any]]:
    result = voxpop(db_url, "results", "export", slug, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _started(who: Respondent) -> datetime:
    """The clock when ``who`` sent the message that began the session."""
    index = RESPONDENTS.index(who)
    before = sum(len(r.lines) for r in RESPONDENTS[:index])
    first = next(i for i, line in enumerate(who.lines) if line == "EVERY")
    return FIXED + timedelta(minutes=before + first)


def _completed(who: Respondent) -> datetime | None:
    if who.status != "completed":
        return None
    index = RESPONDENTS.index(who)
    before = sum(len(r.lines) for r in RESPONDENTS[:index])
    return FIXED + timedelta(minutes=before + len(who.lines) - 1)


def test_jsonl_records_have_the_documented_shape(responses: str) -> None:
    records = _jsonl(responses)
    assert len(records) == len(RESPONDENTS)
    for record, who in zip(records, RESPONDENTS, strict=True):
        assert set(record) == RECORD_KEYS
        completed = _completed(who)
        expected = {
            "survey_version": 1,
            "simulated": False,
            "channel": who.address.channel,
            "language": who.language,
            "status": who.status,
            "started_at": _started(who).isoformat(),
            "completed_at": completed.isoformat() if completed else None,
            "answers": who.answers,
        }
        assert {k: record[k] for k in expected} == expected, who.address.channel
        # Exactly, types included: in Python True == 1 == 1.0, in a JSON consumer they differ.
        assert json.dumps(record["answers"], sort_keys=True) == json.dumps(
            who.answers, sort_keys=True
        )
        assert type(record["response_id"]) is int


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("colour", str),
        ("transport", list),
        ("happy", bool),
        ("rating", int),
        ("age", int),
        ("km", float),
        ("why_unhappy", str),
        ("remark", str),
    ],
)
def test_jsonl_answer_types(responses: str, question: str, kind: type) -> None:
    completed = [r for r in _jsonl(responses) if r["status"] == "completed"]
    values = [r["answers"][question] for r in completed if r["answers"].get(question) is not None]
    assert values
    assert all(type(v) is kind for v in values), values
    if kind is list:
        assert all(all(type(item) is str for item in v) for v in values)


def test_skipped_is_null_and_not_asked_is_absent(responses: str) -> None:
    first = _jsonl(responses)[0]["answers"]
    assert "remark" in first
    assert first["remark"] is None
    assert "why_unhappy" not in first


def test_timestamps_are_iso_8601_with_an_offset(responses: str) -> None:
    for record in _jsonl(responses):
        for key in ("started_at", "completed_at"):
            if record[key] is None:
                assert record["status"] != "completed"
                continue
            parsed = datetime.fromisoformat(record[key])
            assert parsed.utcoffset() == timedelta(0), record[key]
            assert re.search(r"[+-]\d\d:\d\d$", record[key]), record[key]


def test_respondents_are_pseudonyms_never_addresses(responses: str) -> None:
    records = _jsonl(responses)
    respondents = [r["respondent"] for r in records]
    assert len(set(respondents)) == len(RESPONDENTS)
    for respondent, who in zip(respondents, RESPONDENTS, strict=True):
        assert re.fullmatch(r"r-[0-9a-f]{16}", respondent), respondent
        assert who.address.value.lstrip("+")[-6:] not in respondent
    for record in records:
        shown = json.dumps(record)
        assert not any(who.address.value in shown for who in RESPONDENTS)


@pytest.mark.parametrize("reply", ["7.0", "7,0", "100.0"])
def test_a_decimal_answer_stays_a_decimal_on_every_engine(db_url: str, reply: str) -> None:
    # SQLite gives a column declared JSON NUMERIC affinity, which would turn 7.0 into 7.
    engine = make_engine(db_url)
    try:
        service = Service(session_factory(engine), clock=lambda: FIXED)
        service.load_surveys(read_survey_sources([str(FIXTURES / "every-type.toml")]))
        address = Address("sms", "+32470000005")
        for i, text in enumerate(["EVERY", "red", "bus", "yes", "3", "30", reply]):
            service.receive(InboundMessage(address, text, f"dec-{i}", FIXED))
    finally:
        engine.dispose()
    (record,) = _jsonl(db_url)
    value = record["answers"]["km"]
    assert (value, type(value)) == (float(reply.replace(",", ".")), float)
    header, row = _csv(db_url)
    assert dict(zip(header, row, strict=True))["km"] == str(float(reply.replace(",", ".")))


def _csv(db_url: str, slug: str = "every-type") -> list[list[str]]:
    result = voxpop(db_url, "results", "export", slug, "--format", "csv")
    assert result.exit_code == 0, result.output
    return list(csv.reader(io.StringIO(result.stdout)))


def test_csv_has_one_column_per_question_in_survey_order(responses: str) -> None:
    header, *rows = _csv(responses)
    # The record's columns first, in the documented order, then the questions.
    assert header[-len(QUESTIONS) :] == QUESTIONS
    leading = header[: -len(QUESTIONS)]
    assert leading == [c for c in RECORD_COLUMNS if c in leading]
    assert {"response_id", "respondent", "status", "started_at", "completed_at"} <= set(leading)
    assert len(rows) == len(RESPONDENTS)
    assert all(len(row) == len(header) for row in rows)


def test_csv_has_the_documented_columns(responses: str) -> None:
    header, *rows = _csv(responses)
    assert header == CSV_HEADER
    assert {(row[1], row[8]) for row in rows} == {("1", "false")}


@pytest.mark.parametrize("who", RESPONDENTS, ids=lambda r: f"{r.address.channel}-{r.status}")
def test_csv_cells(responses: str, who: Respondent) -> None:
    header, *rows = _csv(responses)
    cells = dict(zip(header, rows[RESPONDENTS.index(who)], strict=True))
    expected = {q: who.csv.get(q, "") for q in QUESTIONS}
    assert {q: cells[q] for q in QUESTIONS} == expected
    completed = _completed(who)
    assert (cells["status"], cells["channel"], cells["language"]) == (
        who.status,
        who.address.channel,
        who.language,
    )
    assert cells["started_at"] == _started(who).isoformat()
    assert cells["completed_at"] == (completed.isoformat() if completed else "")
    assert re.fullmatch(r"r-[0-9a-f]{16}", cells["respondent"])


def test_the_default_format_is_csv(responses: str) -> None:
    result = voxpop(responses, "results", "export", "every-type")
    assert result.exit_code == 0, result.output
    assert (
        result.stdout
        == voxpop(responses, "results", "export", "every-type", "--format", "csv").stdout
    )
    assert next(csv.reader(io.StringIO(result.stdout)))[-len(QUESTIONS) :] == QUESTIONS


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_out_writes_the_file(responses: str, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"results.{fmt}"
    to_file = voxpop(
        responses, "results", "export", "every-type", "--format", fmt, "--out", str(target)
    )
    assert to_file.exit_code == 0, to_file.output
    assert to_file.stdout == ""
    to_stdout = voxpop(responses, "results", "export", "every-type", "--format", fmt)
    assert target.read_text(encoding="utf-8") == to_stdout.stdout
    assert len(target.read_text(encoding="utf-8").splitlines()) == len(RESPONDENTS) + (
        1 if fmt == "csv" else 0
    )


def test_a_survey_without_responses_exports_only_the_header(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        service = Service(session_factory(engine), clock=lambda: FIXED)
        service.load_surveys(read_survey_sources([str(FIXTURES / "other.toml")]))
    finally:
        engine.dispose()
    (header,) = _csv(db_url, "other")
    assert header[-1] == "ok"
    assert "response_id" in header
    assert voxpop(db_url, "results", "export", "other", "--format", "jsonl").stdout == ""


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_unknown_survey_is_a_clear_error(responses: str, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "out.txt"
    result = voxpop(
        responses, "results", "export", "no-such-survey", "--format", fmt, "--out", str(target)
    )
    assert result.exit_code != 0
    assert "no survey 'no-such-survey' is loaded" in result.stderr
    assert result.stdout == ""
    assert not target.exists()


# --- versions, spreadsheets, the simulator ----------------------------------------------------

POLL_V1 = """id = "poll"
title = { en = "Poll" }
languages = ["en"]
keywords = ["POLL"]

[[questions]]
id = "a"
type = "yesno"
text = { en = "A?" }

[[questions]]
id = "old"
type = "yesno"
text = { en = "Old?" }
"""
POLL_V2 = POLL_V1.replace('id = "old"', 'id = "new"').replace("Old?", "New?")


def test_questions_only_older_versions_had_come_last(db_url: str) -> None:
    now = [FIXED]
    engine = make_engine(db_url)
    try:
        service = Service(session_factory(engine), clock=lambda: now[0])
        for i, (source, phone) in enumerate([(POLL_V1, "+32470000011"), (POLL_V2, "+32470000012")]):
            service.load_surveys([("poll.toml", source)])
            for j, text in enumerate(["POLL", "yes", "no"]):
                msg = InboundMessage(Address("sms", phone), text, f"v{i}-{j}", now[0])
                service.receive(msg)
            now[0] += timedelta(minutes=10)
    finally:
        engine.dispose()

    header, v1, v2 = _csv(db_url, "poll")
    assert header[-3:] == ["a", "new", "old"]
    rows = [dict(zip(header, row, strict=True)) for row in (v1, v2)]
    assert [(row["a"], row["new"], row["old"]) for row in rows] == [
        ("true", "", "false"),
        ("true", "false", ""),
    ]
    records = _jsonl(db_url, "poll")
    assert [(r["survey_version"], r["answers"]) for r in records] == [
        (1, {"a": True, "old": False}),
        (2, {"a": True, "new": False}),
    ]


@pytest.mark.parametrize(
    ("remark", "cell"),
    [
        ("Fine", "Fine"),
        ('=HYPERLINK("http://evil.example")', '\'=HYPERLINK("http://evil.example")'),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("+1 for more buses", "'+1 for more buses"),
        ("- more buses", "'- more buses"),
        ("a = b", "a = b"),
    ],
)
def test_a_text_answer_never_runs_as_a_spreadsheet_formula(
    db_url: str, remark: str, cell: str
) -> None:
    engine = make_engine(db_url)
    try:
        service = Service(session_factory(engine), clock=lambda: FIXED)
        service.load_surveys(read_survey_sources([str(FIXTURES / "every-type.toml")]))
        address = Address("sms", "+32470000006")
        for i, text in enumerate(["EVERY", "red", "bus", "yes", "3", "30", "5", remark]):
            service.receive(InboundMessage(address, text, f"csv-{i}", FIXED))
    finally:
        engine.dispose()
    header, row = _csv(db_url)
    assert dict(zip(header, row, strict=True))["remark"] == cell
    # JSONL is data, not a spreadsheet: the text as typed.
    (record,) = _jsonl(db_url)
    assert record["answers"]["remark"] == remark


def test_simulator_conversations_are_left_out(responses: str) -> None:
    chat = voxpop(responses, "chat", "--from", "+32470000099", input="EVERY\nred\n")
    assert chat.exit_code == 0, chat.output
    assert all(r["simulated"] is False for r in _jsonl(responses))
    assert len(_jsonl(responses)) == len(RESPONDENTS)
    assert len(_csv(responses)) == 1 + len(RESPONDENTS)


def test_include_simulator_adds_the_simulator_conversations(responses: str) -> None:
    chat = voxpop(responses, "chat", "--from", "+32470000099", input="EVERY\nred\n")
    assert chat.exit_code == 0, chat.output
    result = voxpop(
        responses, "results", "export", "every-type", "--format", "jsonl", "--include-simulator"
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["simulated"] for r in records] == [False] * len(RESPONDENTS) + [True]
    assert records[-1]["answers"] == {"colour": "red"}
    assert records[-1]["status"] == "partial"


# --- without free text ------------------------------------------------------------------------

FREE_TEXT = ("why_unhappy", "remark")


def _export(db_url: str, fmt: str, *options: str) -> str:
    result = voxpop(db_url, "results", "export", "every-type", "--format", fmt, *options)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_no_free_text_leaves_out_what_people_typed_and_nothing_else(responses: str) -> None:
    typed = [str(who.answers[q]) for who in RESPONDENTS for q in FREE_TEXT if who.answers.get(q)]
    assert typed  # the respondents did type something
    for fmt in ("csv", "jsonl"):
        full, bare = _export(responses, fmt), _export(responses, fmt, "--no-free-text")
        assert all(t in full for t in typed)
        assert not any(t in bare for t in typed), fmt
    full_records = [json.loads(line) for line in _export(responses, "jsonl").splitlines()]
    bare_records = [
        json.loads(line) for line in _export(responses, "jsonl", "--no-free-text").splitlines()
    ]
    assert bare_records == [
        r | {"answers": {q: v for q, v in r["answers"].items() if q not in FREE_TEXT}}
        for r in full_records
    ]
    header, *rows = list(csv.reader(io.StringIO(_export(responses, "csv", "--no-free-text"))))
    assert header == [c for c in CSV_HEADER if c not in FREE_TEXT]
    full_header, *full_rows = _csv(responses)
    kept = [i for i, c in enumerate(full_header) if c not in FREE_TEXT]
    assert rows == [[row[i] for i in kept] for row in full_rows]
