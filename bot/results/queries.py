"""The results' SQL: every count is grouped by the database (SQLAlchemy Core, the same
statements on SQLite and PostgreSQL); Python only sees one row per distinct value and group.

Every function runs in the caller's read-only transaction.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    case,
    cast,
    false,
    func,
    null,
    select,
    true,
    type_coerce,
)
from sqlalchemy.orm import Session

from bot.rates import Rate
from bot.results.filters import ResultsFilter, sessions_where
from storage.db import UtcDateTime
from storage.models import AnswerRow, Contact, SessionRow, SurveyRow
from storage.pushes import invited_session
from storage.repo import is_response

#: A breakdown by the channel or the language of the response, or ``attribute:<name>``.
BY_CHANNEL: Final = "channel"
BY_LANGUAGE: Final = "language"
ATTRIBUTE: Final = "attribute:"


def group_column(s: Session, by: str) -> Any:
    """The column a breakdown groups by (an attribute is read from the respondent's
    contact, so it is unknown after FORGET)."""
    if by == BY_CHANNEL:
        return SessionRow.channel
    if by == BY_LANGUAGE:
        return SessionRow.language
    if not by.startswith(ATTRIBUTE) or not by[len(ATTRIBUTE) :]:
        raise ValueError(f"unknown breakdown {by!r}")
    key = by[len(ATTRIBUTE) :]
    if s.get_bind().dialect.name == "postgresql":
        return Contact.attributes.op("->>", return_type=String)(key)
    if '"' in key or "\\" in key:
        raise ValueError(f"attribute names may not contain quotes or backslashes: {key!r}")
    return func.json_extract(Contact.attributes, f'$."{key}"')


def _answers(f: ResultsFilter, zone: ZoneInfo, *columns: Any) -> Select[Any]:
    """``columns`` over the answers of the responses ``f`` covers (a session with an answer
    is a response, so the filter's own test for one is not needed)."""
    return (
        select(*columns)
        .select_from(AnswerRow)
        .join(SessionRow, SessionRow.id == AnswerRow.session_id)
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(*sessions_where(f, zone, responses=False))
    )


def _with_contact(stmt: Select[Any], by: str | None) -> Select[Any]:
    if by is not None and by.startswith(ATTRIBUTE):
        return stmt.outerjoin(Contact, Contact.id == SessionRow.contact_id)
    return stmt


def _group(value: Any) -> str | None:
    return None if value is None else str(value)


ValueCounts = dict[tuple[str, str | None], dict[Any, int]]


def value_counts(
    s: Session,
    f: ResultsFilter,
    zone: ZoneInfo,
    question_ids: Collection[str],
    by: str | None = None,
    *,
    free_text: Collection[str] = (),
) -> ValueCounts:
    """``{(question id, group): {stored value: answers}}`` for closed questions (``None``:
    skipped; the group is ``None`` without a breakdown, or when not known). The text
    questions in ``free_text`` are counted in the same pass, as :data:`GIVEN` or ``None``:
    their text never leaves the database."""
    found: ValueCounts = defaultdict(dict)
    wanted = [*question_ids, *free_text]
    if not wanted:
        return found
    group = group_column(s, by) if by else None
    extra = [group] if group is not None else []
    is_text = AnswerRow.question_id.in_(list(free_text)) if free_text else false()
    value = type_coerce(case((is_text, null()), else_=AnswerRow.value), AnswerRow.value.type)
    given = case((is_text, AnswerRow.value.is_not(None)), else_=null())
    stmt = _answers(f, zone, AnswerRow.question_id, value, given, *extra, func.count())
    # Every question's answers, those not asked for dropped here (grouped rows, a few): a
    # test of the question per answer made the database look each one up apart.
    stmt = _with_contact(stmt, by).group_by(AnswerRow.question_id, value, given, *extra)
    # On the connection: plain rows, without the ORM's result machinery (many thousands
    # of rows when a number question has many distinct values per group).
    wanted_ids = set(wanted)
    for row in s.connection().execute(stmt):
        if row[0] not in wanted_ids:
            continue
        key = (row[0], _group(row[3]) if group is not None else None)
        answer = (GIVEN if row[2] else None) if row[2] is not None else _hashable(row[1])
        counts = found[key]
        counts[answer] = counts.get(answer, 0) + int(row[-1])
    return found


#: A text question's answer as :func:`value_counts` counts it (given, whatever it says).
GIVEN: Final = "given"


def _hashable(value: Any) -> Any:
    # A multi's picks come back as a list; the arithmetic needs them as dict keys.
    return tuple(value) if isinstance(value, list) else value


def text_counts(
    s: Session, f: ResultsFilter, zone: ZoneInfo, question_ids: Collection[str]
) -> dict[str, tuple[int, int]]:
    """``{question id: (asked, answered)}`` for text questions, without reading a text."""
    if not question_ids:
        return {}
    stmt = _answers(
        f, zone, AnswerRow.question_id, func.count(AnswerRow.id), func.count(AnswerRow.value)
    ).where(AnswerRow.question_id.in_(list(question_ids)))
    stmt = stmt.group_by(AnswerRow.question_id)
    return {qid: (int(asked), int(given)) for qid, asked, given in s.execute(stmt)}


def repeat_sessions(s: Session, f: ResultsFilter, zone: ZoneInfo, by: str) -> dict[str | None, int]:
    """``{group: responses beyond the first of the same person}``: how far counting
    responses can overstate the people in a group (almost always 0: a citizen answers a
    consultation once, unless a new version came between)."""
    group = group_column(s, by)
    stmt = (
        select(group, func.count(SessionRow.id) - func.count(func.distinct(SessionRow.respondent)))
        .select_from(SessionRow)
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(*sessions_where(f, zone))
    )
    stmt = _with_contact(stmt, by).group_by(group)
    return {_group(value): int(n) for value, n in s.execute(stmt) if n}


def status_counts(s: Session, f: ResultsFilter, zone: ZoneInfo) -> dict[str, int]:
    """Responses by stored status."""
    stmt = (
        select(SessionRow.status, func.count(SessionRow.id))
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(*sessions_where(f, zone))
        .group_by(SessionRow.status)
    )
    return {status: int(n) for status, n in s.execute(stmt)}


@dataclass(frozen=True)
class FunnelCounts:
    #: People a push invited (:func:`storage.pushes.invited_session`: the same definition
    #: as a push's page).
    invited: int
    #: Responses: at least one question answered (or completed).
    started: int
    completed: int
    abandoned: int
    #: Responses still in progress.
    answering: int
    #: Of those invited, how many started, and completed.
    invited_started: int = 0
    invited_completed: int = 0

    @property
    def started_rate(self) -> Rate:
        """Started of those invited, with its interval (as a push's page shows it)."""
        return Rate(self.invited_started, self.invited)

    @property
    def response_rate(self) -> Rate:
        """Completed of those invited: a push's "response rate"."""
        return Rate(self.invited_completed, self.invited)


def funnel(s: Session, f: ResultsFilter, zone: ZoneInfo) -> FunnelCounts:
    """Invited, started, completed, abandoned, still answering: whatever the status filter
    says (the funnel is about statuses), over the filter's consultation, version and days."""
    invited = invited_session()
    started = is_response()
    completed = SessionRow.status == "completed"
    stmt = (
        select(
            func.count(SessionRow.id).filter(invited),
            func.count(SessionRow.id).filter(started),
            func.count(SessionRow.id).filter(completed),
            func.count(SessionRow.id).filter(started & (SessionRow.status == "abandoned")),
            func.count(SessionRow.id).filter(started & (SessionRow.status == "active")),
            func.count(SessionRow.id).filter(invited & started),
            func.count(SessionRow.id).filter(invited & completed),
        )
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(*sessions_where(f, zone, with_status=False, responses=False))
    )
    row = s.execute(stmt).one()
    return FunnelCounts(*(int(n or 0) for n in row))


def hours(
    s: Session, f: ResultsFilter, zone: ZoneInfo
) -> tuple[list[tuple[datetime, int]], list[tuple[datetime, int]]]:
    """How many responses began, and how many were completed, in each hour, as ``(hour in
    UTC, count)`` lists: the caller makes days of them in the city's timezone. One pass
    over the responses, grouped by both hours."""
    started, completed = _hour(s, SessionRow.started_at), _hour(s, SessionRow.completed_at)
    stmt = (
        select(started, completed, func.count(SessionRow.id))
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(*sessions_where(f, zone))
        .group_by(started, completed)
    )
    began: dict[datetime, int] = defaultdict(int)
    done: dict[datetime, int] = defaultdict(int)
    for start, end, n in s.execute(stmt):
        began[_utc_hour(start)] += int(n)
        if end is not None:
            done[_utc_hour(end)] += int(n)
    return sorted(began.items()), sorted(done.items())


def _hour(s: Session, column: Any) -> Any:
    if s.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", column), type_=UtcDateTime())
    return func.strftime("%Y-%m-%d %H:00:00", column)


def _utc_hour(at: Any) -> datetime:
    when = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def attribute_names(s: Session, f: ResultsFilter, zone: ZoneInfo) -> list[str]:
    """The contact attributes the respondents have (``district``, ``age_band``...)."""
    function = func.jsonb_each if s.get_bind().dialect.name == "postgresql" else func.json_each
    each = function(Contact.attributes).table_valued("key")
    stmt = (
        select(each.c.key)
        .select_from(SessionRow)
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .join(Contact, Contact.id == SessionRow.contact_id)
        .join(each, true())
        .where(*sessions_where(f, zone))
        .distinct()
    )
    return sorted(str(key) for (key,) in s.execute(stmt))


@dataclass(frozen=True)
class TextAnswer:
    value: str
    answered_at: datetime
    channel: str
    language: str


def texts(
    s: Session,
    f: ResultsFilter,
    zone: ZoneInfo,
    question_id: str,
    *,
    search: str = "",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[TextAnswer], int]:
    """A text question's answers, newest first, those containing ``search`` (any case);
    and how many there are in all."""
    where: list[ColumnElement[bool]] = [
        AnswerRow.question_id == question_id,
        AnswerRow.value.is_not(None),
    ]
    if search:
        # The stored value is JSON text: look for the search as JSON writes it.
        escaped = _json_inner(search)
        where.append(cast(AnswerRow.value, Text).icontains(escaped, autoescape=True))
    count = _answers(f, zone, func.count(AnswerRow.id)).where(*where)
    total = int(s.scalar(count) or 0)
    stmt = (
        _answers(
            f, zone, AnswerRow.value, AnswerRow.answered_at, SessionRow.channel, SessionRow.language
        )
        .where(*where)
        .order_by(AnswerRow.answered_at.desc(), AnswerRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    found = [
        TextAnswer(str(value), at, channel, language)
        for value, at, channel, language in s.execute(stmt)
    ]
    return found, total


def _json_inner(text: str) -> str:
    """``text`` as it appears inside a JSON string (quotes and backslashes escaped).

    >>> _json_inner('say "hi"')
    'say \\\\"hi\\\\"'
    """
    return json.dumps(text, ensure_ascii=False)[1:-1]


def response_count(s: Session, f: ResultsFilter, zone: ZoneInfo) -> int:
    return sum(status_counts(s, f, zone).values())


@dataclass(frozen=True)
class ResponseRow:
    """A response as an export shows it (its answers come separately)."""

    id: int
    survey_id: int
    respondent: str
    channel: str
    language: str
    status: str
    started_at: datetime
    completed_at: datetime | None
    simulated: bool


def responses(
    s: Session, f: ResultsFilter, zone: ZoneInfo, *, batch_size: int = 1000
) -> Iterator[tuple[ResponseRow, list[tuple[str, Any]]]]:
    """The responses ``f`` covers in the order they were made, each with its answers
    ``(question id, value)`` in the order given: plain rows (no ORM objects), one answers
    query per batch, flat memory."""
    stmt = (
        select(
            SessionRow.id,
            SessionRow.survey_id,
            SessionRow.respondent,
            SessionRow.channel,
            SessionRow.language,
            SessionRow.status,
            SessionRow.started_at,
            SessionRow.completed_at,
            SessionRow.simulated,
        )
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(*sessions_where(f, zone))
        .order_by(SessionRow.id)
        .execution_options(yield_per=batch_size)
    )
    conn = s.connection()
    result = conn.execute(stmt)
    try:
        for batch in result.partitions():
            rows = [ResponseRow(*row) for row in batch]
            answers: defaultdict[int, list[tuple[str, Any]]] = defaultdict(list)
            found = conn.execute(
                select(AnswerRow.session_id, AnswerRow.question_id, AnswerRow.value)
                .where(AnswerRow.session_id.in_([row.id for row in rows]))
                .order_by(AnswerRow.id)
            )
            for session_id, question_id, value in found:
                answers[session_id].append((question_id, value))
            for row in rows:
                yield row, answers[row.id]
    finally:
        # A download stopped half-way must not leave a server-side cursor open.
        result.close()


__all__: Sequence[str] = (
    "ATTRIBUTE",
    "BY_CHANNEL",
    "BY_LANGUAGE",
    "GIVEN",
    "FunnelCounts",
    "TextAnswer",
    "attribute_names",
    "funnel",
    "group_column",
    "hours",
    "repeat_sessions",
    "response_count",
    "responses",
    "status_counts",
    "text_counts",
    "texts",
    "value_counts",
)
