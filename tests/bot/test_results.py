"""Results for staff (bot/results): exact counts on a known answer set, on both engines.

The answer set is written straight into the tables, as the service stores answers, so every
count below is known by construction: 20 citizens' responses to ``every-type``, in four
districts (north 5, south 4, west 1, east 10), plus three invited people who never answered
and one staff test run in the simulator.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ResultsConfig
from bot.results.export import RECORD_COLUMNS, chunks
from bot.results.filters import FilterError, ResultsFilter
from bot.results.service import (
    FreeTextWithheldError,
    QuestionResult,
    Results,
    UnknownBreakdownError,
)
from bot.results.tables import OTHER, Count, choice_counts, merge_small_groups
from bot.service import Service, read_survey_sources
from storage.db import transaction
from storage.models import AnswerRow, Contact, PushRecipient, PushRow, SessionRow, SurveyRow
from surveys.model import Choice, Question
from tests.helpers import voxpop

FIXTURES = Path(__file__).parent / "fixtures"
SLUG = "every-type"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TEXTS = {
    "why_unhappy": ["Always late", "Too full", "The bus is LATE again", "Dirty"],
    "remark": ["More buses please", "100% better than last year", "Café at the stop", "=1+2"],
}


@dataclass
class Person:
    district: str | None
    channel: str
    language: str
    colour: str
    transport: list[str]
    happy: bool
    rating: int
    age: int
    started: datetime
    status: str = "completed"
    why: str | None = None
    remark: str | None = None
    simulated: bool = False
    invited: bool = False
    answers: dict[str, Any] = field(default_factory=dict)


def people() -> list[Person]:
    """The known answer set (see the module docstring)."""
    found: list[Person] = []
    day = timedelta(days=1)
    for _ in range(5):  # north: all red, happy, 5 stars, 30 years old, invited by a push
        found.append(Person("north", "sms", "en", "red", ["bus"], True, 5, 30, T0, invited=True))
    for i in range(4):  # south: all green, unhappy
        found.append(
            Person(
                "south",
                "sms",
                "en",
                "green",
                ["bus", "car"],
                False,
                1 + i // 2,
                40,
                T0 + day,
                why=TEXTS["why_unhappy"][i],
                remark=TEXTS["remark"][i],
            )
        )
    # west: 23:30 UTC is already the next day in Brussels (the city's days).
    found.append(
        Person(
            "west",
            "telegram",
            "en",
            "blue",
            ["bike"],
            False,
            3,
            50,
            datetime(2026, 12, 2, 23, 30, tzinfo=UTC),
            why=None,
            remark="no",
        )
    )
    for i in range(10):  # east: 4 red, 2 green, 4 blue; 6 happy
        found.append(
            Person(
                "east",
                "telegram" if i < 6 else "whatsapp",
                "nl" if i < 5 else "en",
                ("red", "red", "red", "red", "green", "green", "blue", "blue", "blue", "blue")[i],
                ["car", "foot"],
                i < 6,
                4,
                60,
                T0 + 3 * day + timedelta(hours=i),
                status=("active", "active", "abandoned")[i] if i < 3 else "completed",
                why=None if i < 6 else "Slow",
                remark="ok",
            )
        )
    return found


@dataclass(frozen=True)
class Answers:
    service: Service
    results: Results
    people: list[Person]


def _store(s: Session, survey_id: int, who: Person, n: int, now: datetime) -> SessionRow:
    contact = Contact(
        language=who.language,
        attributes={"district": who.district} if who.district else {},
        created_at=now,
        updated_at=now,
        tags=[],
    )
    s.add(contact)
    s.flush()
    done = who.status == "completed"
    row = SessionRow(
        contact_id=contact.id,
        survey_id=survey_id,
        respondent=f"r-{n:016x}",
        channel=who.channel,
        language=who.language,
        status=who.status,
        state={},
        started_at=who.started,
        updated_at=who.started,
        completed_at=who.started + timedelta(minutes=5) if done else None,
        simulated=who.simulated,
    )
    s.add(row)
    s.flush()
    return row


def _answer(s: Session, row: SessionRow, who: Person) -> None:
    values: dict[str, Any] = {
        "colour": who.colour,
        "transport": who.transport,
        "happy": who.happy,
        "rating": who.rating,
        "age": who.age,
        "km": 7.25,
    }
    if not who.happy:
        values["why_unhappy"] = who.why  # None: erased by FORGET
    values["remark"] = who.remark  # None: skipped
    who.answers = values
    for qid, value in values.items():
        s.add(
            AnswerRow(
                session_id=row.id,
                question_id=qid,
                value=value,
                raw=str(value),
                how="label",
                answered_at=who.started + timedelta(minutes=1),
            )
        )


@pytest.fixture
def answers(db: sessionmaker[Session]) -> Answers:
    service = Service(db, clock=lambda: T0)
    service.load_surveys(read_survey_sources([str(FIXTURES / "every-type.toml")]))
    everyone = people()
    test_run = Person("north", "sms", "en", "blue", ["bike"], True, 1, 99, T0, simulated=True)
    numbers = itertools.count(1)
    with transaction(db) as s:
        survey_id = s.query(SurveyRow.id).filter(SurveyRow.slug == SLUG).scalar()
        push = PushRow(
            survey_slug=SLUG,
            kind="invitation",
            status="done",
            scheduled_at=T0,
            created_at=T0,
            created_by="staff",
            audience={},
            channels=["sms"],
            timezone="Europe/Brussels",
            rate_per_second=1.0,
        )
        s.add(push)
        s.flush()
        for who in [*everyone, test_run]:
            row = _store(s, survey_id, who, next(numbers), T0)
            _answer(s, row, who)
            if who.invited:
                _invite(s, push.id, row)
        for _ in range(3):  # invited, never answered: not responses, but in the funnel
            idle = Person("north", "sms", "en", "", [], True, 0, 0, T0, status="active")
            _invite(s, push.id, _store(s, survey_id, idle, next(numbers), T0))
    return Answers(service, Results(service, Config()), everyone)


def _invite(s: Session, push_id: int, row: SessionRow) -> None:
    s.add(
        PushRecipient(
            push_id=push_id,
            contact_id=row.contact_id,
            channel=row.channel,
            address=None,
            language=row.language,
            status="invited",
            due_at=T0,
            invited_at=T0,
            session_id=row.id,
        )
    )


def question(result: Any, qid: str) -> QuestionResult:
    found: QuestionResult = next(q for q in result.questions if q.id == qid)
    return found


def table(q: QuestionResult) -> list[tuple[str | None, int, float]]:
    return [(row.key, row.count, row.percent) for row in q.counts]


# --- counts and percentages -----------------------------------------------------------------


def test_choice_counts_and_percentages_in_the_files_order(answers: Answers) -> None:
    overview = answers.results.overview(ResultsFilter(SLUG))
    assert overview.responses == 20
    assert dict(overview.statuses) == {"completed": 17, "partial": 2, "abandoned": 1}
    colour = question(overview, "colour")
    assert table(colour) == [("red", 9, 45.0), ("green", 6, 30.0), ("blue", 5, 25.0)]
    assert [row.label for row in colour.counts] == ["Red", "Green", "Blue"]
    assert (colour.asked, colour.skipped, colour.multiple) == (20, 0, False)


def test_sorted_by_count(answers: Answers) -> None:
    overview = answers.results.overview(ResultsFilter(SLUG), order="count")
    assert table(question(overview, "transport")) == [
        ("car", 14, 70.0),
        ("foot", 10, 50.0),
        ("bus", 9, 45.0),
        ("bike", 1, 5.0),
    ]
    # A text question has no table; "remark" is optional, so its skipped count is known.
    remark = question(overview, "remark")
    assert (remark.free_text, remark.asked, remark.skipped, remark.counts) == (True, 20, 5, ())


def test_skipped_comes_last_whatever_the_order() -> None:
    q = Question(
        id="q",
        type="choice",
        text={"en": "?"},
        optional=True,
        choices=(Choice("a", {"en": "A"}), Choice("b", {"en": "B"})),
    )
    counts = {"a": 1, "b": 3, None: 4}
    by_file, asked = choice_counts(q, counts, language="en", default="en")
    by_count, _ = choice_counts(q, counts, language="en", default="en", order="count")
    assert asked == 8
    assert [(r.key, r.count, r.percent) for r in by_file] == [
        ("a", 1, 12.5),
        ("b", 3, 37.5),
        (None, 4, 50.0),
    ]
    assert [r.key for r in by_count] == ["b", "a", None]
    assert by_count[-1].label == "Skipped"


def test_multi_choice_counts_each_pick_and_says_so(answers: Answers) -> None:
    transport = question(answers.results.overview(ResultsFilter(SLUG)), "transport")
    assert transport.multiple
    assert sum(row.count for row in transport.counts) == 5 + 8 + 1 + 20
    assert sum(row.percent for row in transport.counts) > 100


def test_yes_no_counts(answers: Answers) -> None:
    happy = question(answers.results.overview(ResultsFilter(SLUG)), "happy")
    assert table(happy) == [("yes", 11, 55.0), ("no", 9, 45.0)]


def test_scale_distribution_median_and_mean(answers: Answers) -> None:
    rating = question(answers.results.overview(ResultsFilter(SLUG)), "rating")
    assert table(rating) == [
        ("1", 2, 10.0),
        ("2", 2, 10.0),
        ("3", 1, 5.0),
        ("4", 10, 50.0),
        ("5", 5, 25.0),
    ]
    assert rating.stats is not None
    assert (rating.stats.median, rating.stats.mean) == (4.0, 3.7)


def test_number_distribution_median_and_mean(answers: Answers) -> None:
    age = question(answers.results.overview(ResultsFilter(SLUG)), "age")
    assert table(age) == [("30", 5, 25.0), ("40", 4, 20.0), ("50", 1, 5.0), ("60", 10, 50.0)]
    assert age.stats is not None
    assert (age.stats.median, age.stats.mean, age.stats.minimum, age.stats.maximum) == (
        55.0,
        48.0,
        30.0,
        60.0,
    )
    km = question(answers.results.overview(ResultsFilter(SLUG)), "km")
    assert table(km) == [("7.25", 20, 100.0)]


def test_the_simulators_test_runs_are_left_out_unless_asked_for(answers: Answers) -> None:
    assert answers.results.overview(ResultsFilter(SLUG)).responses == 20
    with_tests = answers.results.overview(ResultsFilter(SLUG, include_simulated=True))
    assert with_tests.responses == 21
    assert table(question(with_tests, "colour"))[2] == ("blue", 6, 28.6)


# --- filters --------------------------------------------------------------------------------


def test_filter_by_status(answers: Answers) -> None:
    done = answers.results.overview(ResultsFilter(SLUG, statuses=("completed",)))
    assert done.responses == 17
    # The three east respondents still answering or gone were red, red, red.
    assert table(question(done, "colour"))[0] == ("red", 6, 35.3)
    partial = answers.results.overview(ResultsFilter(SLUG, statuses=("partial", "abandoned")))
    assert dict(partial.statuses) == {"completed": 0, "partial": 2, "abandoned": 1}


def test_filter_by_the_citys_days(answers: Answers) -> None:
    # West began at 23:30 UTC on 2 December: 3 December in Brussels.
    days = ResultsFilter(SLUG, since=date(2026, 12, 3), until=date(2026, 12, 4))
    overview = answers.results.overview(days)
    assert overview.responses == 11
    assert table(question(overview, "colour")) == [
        ("red", 4, 36.4),
        ("green", 2, 18.2),
        ("blue", 5, 45.5),
    ]
    one_day = answers.results.overview(
        ResultsFilter(SLUG, since=date(2026, 12, 2), until=date(2026, 12, 2))
    )
    assert one_day.responses == 4


def test_a_filter_that_makes_no_sense_is_refused() -> None:
    with pytest.raises(FilterError, match="after the last day"):
        ResultsFilter(SLUG, since=date(2026, 12, 4), until=date(2026, 12, 3))
    with pytest.raises(FilterError, match="unknown status 'done'"):
        ResultsFilter(SLUG, statuses=("done",))


def test_an_unknown_consultation_or_version(answers: Answers) -> None:
    with pytest.raises(LookupError, match="no survey 'nope'"):
        answers.results.overview(ResultsFilter("nope"))
    with pytest.raises(LookupError, match="no version 7"):
        answers.results.overview(ResultsFilter(SLUG, version=7))


def test_one_version_or_all(answers: Answers, db: sessionmaker[Session]) -> None:
    # Version 2 drops "blue" and adds "yellow"; one citizen answers it.
    source = (FIXTURES / "every-type.toml").read_text(encoding="utf-8")
    changed = source.replace(
        '{ id = "blue", label = { en = "Blue", nl = "Blauw" } }',
        '{ id = "yellow", label = { en = "Yellow", nl = "Geel" } }',
    )
    answers.service.load_surveys([("every-type.toml", changed)])
    with transaction(db) as s:
        v2 = s.query(SurveyRow.id).filter(SurveyRow.slug == SLUG, SurveyRow.version == 2)
        who = Person(None, "sms", "en", "yellow", ["bus"], True, 2, 20, T0)
        _answer(s, _store(s, v2.scalar(), who, 99, T0), who)
    every = answers.results.overview(ResultsFilter(SLUG))
    # The current file's choices in its order, then the retired one.
    assert table(question(every, "colour")) == [
        ("red", 9, 42.9),
        ("green", 6, 28.6),
        ("yellow", 1, 4.8),
        ("blue", 5, 23.8),
    ]
    first = answers.results.overview(ResultsFilter(SLUG, version=1))
    assert [row.key for row in question(first, "colour").counts] == ["red", "green", "blue"]
    assert first.responses == 20
    assert answers.results.overview(ResultsFilter(SLUG, version=2)).responses == 1
    (listed,) = answers.results.consultations()
    assert (listed.slug, listed.version, listed.versions, listed.responses) == (
        SLUG,
        2,
        (1, 2),
        21,
    )


# --- breakdowns and small groups ------------------------------------------------------------


def groups(results: Results, by: str, qid: str = "colour") -> dict[str, tuple[int, list[int]]]:
    """``{group label: (people, [count per row of the overall table])}``."""
    breakdown = results.breakdown(ResultsFilter(SLUG), by)
    found = next(q for q in breakdown.questions if q.question.id == qid)
    return {
        g.label: (
            g.size,
            [(g.count(row.key) or Count(None, "", 0, 0)).count for row in found.question.counts],
        )
        for g in found.groups
    }


def test_a_group_of_four_is_hidden_and_a_group_of_five_shown(answers: Answers) -> None:
    by_district = groups(answers.results, "attribute:district")
    # South (4) and west (1) are merged: 5 people, who chose green 4 times and blue once.
    assert by_district == {
        "east": (10, [4, 2, 4]),
        "north": (5, [5, 0, 0]),
        "Other (small groups)": (5, [0, 4, 1]),
    }


def test_hidden_groups_cannot_be_recovered_by_subtracting(answers: Answers) -> None:
    """Every breakdown's groups add up to the total, and the shown groups of any two
    breakdowns never leave a small group alone as the difference."""
    total = [9, 6, 5]
    for by in ("channel", "language", "attribute:district"):
        found = groups(answers.results, by)
        assert [sum(col) for col in zip(*(c for _, c in found.values()), strict=True)] == total
        assert all(size >= 5 for size, _ in found.values()), (by, found)
    # By channel: whatsapp has 4, telegram 7. Hiding whatsapp alone would give it back as
    # total - sms - telegram; so telegram joins it in "other".
    assert groups(answers.results, "channel") == {
        "SMS": (9, [5, 4, 0]),
        "Other (small groups)": (11, [4, 2, 5]),
    }


def test_the_threshold_comes_from_the_config(answers: Answers) -> None:
    four = Results(answers.service, Config(results=ResultsConfig(min_group_size=4)))
    breakdown = four.breakdown(ResultsFilter(SLUG), "attribute:district")
    colour = next(q for q in breakdown.questions if q.question.id == "colour")
    # South (4) is big enough now, but west (1) alone would be singled out: south joins it.
    assert [(g.label, g.size) for g in colour.groups] == [
        ("east", 10),
        ("north", 5),
        ("Other (small groups)", 5),
    ]
    assert breakdown.minimum == 4


def test_breakdowns_on_offer_and_refused(answers: Answers) -> None:
    offered = answers.results.breakdowns(ResultsFilter(SLUG))
    assert offered == [
        ("channel", "Channel"),
        ("language", "Language"),
        ("attribute:district", "District"),
    ]
    for wrong in ("postcode", "attribute:", 'attribute:a"b', "attribute:x\\y"):
        with pytest.raises(UnknownBreakdownError):
            answers.results.breakdown(ResultsFilter(SLUG), wrong)
    # An attribute nobody has: everyone is "not known".
    nobody = answers.results.breakdown(ResultsFilter(SLUG), "attribute:shoe_size")
    assert [(g.label, g.size) for g in nobody.questions[0].groups] == [("Not known", 20)]


def test_a_breakdown_of_numbers_gives_each_groups_median_and_mean(answers: Answers) -> None:
    breakdown = answers.results.breakdown(ResultsFilter(SLUG), "language")
    rating = next(q for q in breakdown.questions if q.question.id == "rating")
    # nl: the five first east respondents (rating 4); en: the other 15.
    stats = {g.label: g.stats for g in rating.groups}
    nl, en = stats["nl"], stats["en"]
    assert nl is not None
    assert en is not None
    assert (nl.median, nl.mean, en.mean) == (4.0, 4.0, 3.6)
    # Text questions are never broken down.
    assert {q.question.id for q in breakdown.questions} == {
        "colour",
        "transport",
        "happy",
        "rating",
        "age",
        "km",
    }


def test_merge_small_groups_rule() -> None:
    assert merge_small_groups({"a": 4, "b": 5}, 5) == {"a": OTHER, "b": OTHER}
    assert merge_small_groups({"a": 4, "b": 1, "c": 5}, 5) == {"a": OTHER, "b": OTHER, "c": "c"}
    assert merge_small_groups({"a": 1, "b": 1}, 1) == {"a": "a", "b": "b"}


# --- over time and the funnel ---------------------------------------------------------------


def test_responses_per_day_in_the_citys_timezone(answers: Answers) -> None:
    days = answers.results.timeline(ResultsFilter(SLUG))
    assert [(d.day.isoformat(), d.started, d.completed) for d in days] == [
        ("2026-12-01", 5, 5),
        ("2026-12-02", 4, 4),
        ("2026-12-03", 1, 1),
        ("2026-12-04", 10, 7),
    ]


def test_the_completion_funnel(answers: Answers) -> None:
    funnel = answers.results.funnel(ResultsFilter(SLUG))
    assert (funnel.invited, funnel.started, funnel.completed) == (8, 20, 17)
    assert (funnel.abandoned, funnel.answering) == (1, 2)


# --- free text ------------------------------------------------------------------------------


def test_free_text_is_listed_newest_first_and_searchable(answers: Answers) -> None:
    results = answers.results
    page = results.texts(ResultsFilter(SLUG), "remark", free_text=True)
    assert page.total == 15
    assert page.answers[0].value == "ok"  # east, the latest
    assert {a.value for a in page.answers} >= set(TEXTS["remark"])
    late = results.texts(ResultsFilter(SLUG), "why_unhappy", free_text=True, search="late")
    assert sorted(a.value for a in late.answers) == ["Always late", "The bus is LATE again"]
    percent = results.texts(ResultsFilter(SLUG), "remark", free_text=True, search="%")
    assert [a.value for a in percent.answers] == ["100% better than last year"]
    cafe = results.texts(ResultsFilter(SLUG), "remark", free_text=True, search="Café")
    assert [a.value for a in cafe.answers] == ["Café at the stop"]


def test_free_text_is_withheld_from_whoever_may_not_read_it(answers: Answers) -> None:
    with pytest.raises(FreeTextWithheldError):
        answers.results.texts(ResultsFilter(SLUG), "remark", free_text=False)
    with pytest.raises(LookupError):
        answers.results.texts(ResultsFilter(SLUG), "colour", free_text=True)
    records = list(answers.results.records(ResultsFilter(SLUG), free_text=False))
    assert all("remark" not in r["answers"] and "why_unhappy" not in r["answers"] for r in records)
    assert "remark" not in answers.results.columns(ResultsFilter(SLUG), free_text=False)


# --- exports --------------------------------------------------------------------------------


def _download(results: Results, fmt: str, *, free_text: bool = True, **f: Any) -> bytes:
    return b"".join(results.export(ResultsFilter(SLUG, **f), fmt, free_text=free_text))


def _xlsx_rows(data: bytes) -> list[list[Any]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    try:
        return [list(row) for row in book["responses"].iter_rows(values_only=True)]
    finally:
        book.close()


def test_the_three_formats_hold_the_same_responses(answers: Answers) -> None:
    results = answers.results
    records = [json.loads(line) for line in _download(results, "jsonl").splitlines()]
    header, *rows = list(csv.reader(io.StringIO(_download(results, "csv").decode())))
    sheet_header, *sheet = _xlsx_rows(_download(results, "xlsx"))
    assert len(records) == len(rows) == len(sheet) == 20
    assert header == sheet_header == [*RECORD_COLUMNS, *[q for q in _QUESTIONS]]
    for record, row, cells in zip(records, rows, sheet, strict=True):
        assert row[0] == str(record["response_id"]) == str(cells[0])
        by_column = dict(zip(sheet_header, cells, strict=True))
        assert by_column["respondent"] == record["respondent"]
        assert by_column["simulated"] is False
        assert by_column["happy"] is record["answers"]["happy"]
        assert by_column["rating"] == record["answers"]["rating"]
        assert by_column["transport"] == ";".join(record["answers"]["transport"])
        assert by_column["started_at"] == datetime.fromisoformat(record["started_at"]).replace(
            tzinfo=None
        )
    # The answers as the set says, in the order they were made.
    assert [r["answers"]["colour"] for r in records] == [p.colour for p in answers.people]


_QUESTIONS = ["colour", "transport", "happy", "why_unhappy", "rating", "age", "km", "remark"]


def test_a_citizens_formula_stays_text_in_every_format(answers: Answers) -> None:
    results = answers.results
    sheet_header, *sheet = _xlsx_rows(_download(results, "xlsx"))
    remarks = [dict(zip(sheet_header, row, strict=True))["remark"] for row in sheet]
    assert "=1+2" in remarks  # a string cell: openpyxl would read a formula as "=1+2" too,
    book = openpyxl.load_workbook(io.BytesIO(_download(results, "xlsx")))
    kinds = {c.data_type for row in book["responses"].iter_rows() for c in row}
    book.close()
    assert "f" not in kinds  # but no cell is a formula
    assert "'=1+2" in _download(results, "csv").decode()


def test_exports_without_free_text_and_filtered(answers: Answers) -> None:
    results = answers.results
    header, *rows = _xlsx_rows(_download(results, "xlsx", free_text=False))
    assert not {"remark", "why_unhappy"} & set(header)
    assert not any("late" in str(cell).lower() for row in rows for cell in row)
    done = _download(results, "jsonl", statuses=("completed",))
    assert len(done.splitlines()) == 17


def test_an_export_of_nothing_is_still_a_file(answers: Answers) -> None:
    empty = ResultsFilter(SLUG, since=date(2027, 1, 1))
    header, *rows = _xlsx_rows(b"".join(answers.results.export(empty, "xlsx", free_text=True)))
    assert (header[0], rows) == ("response_id", [])


def test_the_command_line_writes_the_same_xlsx(
    answers: Answers, db_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "results.xlsx"
    result = voxpop(db_url, "results", "export", SLUG, "--format", "xlsx", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "1 simulator conversation(s) left out" in result.stderr
    assert _xlsx_rows(out.read_bytes()) == _xlsx_rows(_download(answers.results, "xlsx"))
    plain = voxpop(db_url, "results", "export", SLUG, "--format", "csv", "--no-free-text")
    assert plain.exit_code == 0
    assert plain.stdout_bytes == _download(answers.results, "csv", free_text=False)


def test_a_large_export_is_sent_in_pieces_as_it_is_read() -> None:
    read: list[int] = []

    def records() -> Iterator[dict[str, Any]]:
        for n in range(1, 1201):
            read.append(n)
            yield {c: n for c in RECORD_COLUMNS} | {"answers": {"colour": "red"}}

    pieces = chunks("csv", ["colour"], records())
    first = next(pieces)
    assert first.startswith(b"response_id,")
    assert first.count(b"\n") == 501
    assert len(read) == 500  # the rest is not read yet
    assert b"".join([first, *pieces]).count(b"\n") == 1201


def test_the_command_line_takes_the_same_filter(answers: Answers, db_url: str) -> None:
    args = ["results", "export", SLUG, "--format", "jsonl", "--from", "2026-12-03"]
    result = voxpop(db_url, *args, "--to", "2026-12-04", "--status", "completed")
    assert result.exit_code == 0, result.output
    wanted = ResultsFilter(
        SLUG, since=date(2026, 12, 3), until=date(2026, 12, 4), statuses=("completed",)
    )
    assert result.stdout_bytes == b"".join(answers.results.export(wanted, "jsonl", free_text=True))
    assert len(result.stdout_bytes.splitlines()) == 8  # west and east's seven completed
    wrong = voxpop(db_url, *args, "--to", "2026-12-01")
    assert wrong.exit_code == 2
    assert "the first day is after the last day" in wrong.stderr
    assert voxpop(db_url, "results", "export", SLUG, "--survey-version", "3").exit_code == 1
