"""Results for staff: the use cases the console's Results pages and ``voxpop results``
share (docs/results.md). Every count is made by the database (:mod:`bot.results.queries`);
the arithmetic on those counts is :mod:`bot.results.tables`.

Free text (the answers to text questions) is personal data: editors and admins may read it,
analysts may not. Every function that could hand it out takes ``free_text`` without a
default, so each caller says which it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.config import Config
from bot.results import export, queries
from bot.results.filters import ResultsFilter, export_status
from bot.results.queries import ATTRIBUTE, BY_CHANNEL, BY_LANGUAGE, FunnelCounts, TextAnswer
from bot.results.tables import (
    Count,
    NumberStats,
    Order,
    choice_counts,
    group_label,
    merge_small_groups,
    number_counts,
    shown_order,
)
from bot.service import Service
from messages import CHANNEL_LABELS, channel_label
from storage import repo
from storage.db import transaction
from storage.models import SurveyRow
from surveys.model import Question, Survey

#: A page of text answers.
TEXTS_PER_PAGE: Final = 50
_CLOSED: Final = ("choice", "multi", "yesno")
_NUMBERS: Final = ("scale", "number")


class FreeTextWithheldError(PermissionError):
    """Free text was asked for by a caller that may not read it."""


class UnknownBreakdownError(ValueError):
    """A breakdown by something the respondents have no value for."""


@dataclass(frozen=True)
class Consultation:
    """A consultation in the list of results: its current version and how far it got."""

    slug: str
    title: str
    version: int
    versions: tuple[int, ...]
    #: Citizens' responses over every version (the simulator's left out).
    responses: int
    closes_at: datetime | None
    #: Staff's test runs in the simulator, over every version.
    test_runs: int = 0


@dataclass(frozen=True)
class QuestionResult:
    """One question's table (choices, values or ranges, then "skipped")."""

    id: str
    type: str
    text: str
    #: People asked (answered or skipped).
    asked: int
    skipped: int
    counts: tuple[Count, ...] = ()
    #: A multi: each pick is counted, so the percentages add up to more than 100.
    multiple: bool = False
    stats: NumberStats | None = None
    #: A text question: what people typed (see :meth:`Results.texts`).
    free_text: bool = False

    @property
    def answered(self) -> int:
        return self.asked - self.skipped


@dataclass(frozen=True)
class Overview:
    slug: str
    title: str
    filter: ResultsFilter
    #: Responses by status as staff see it (``completed``, ``partial``, ``abandoned``).
    statuses: Mapping[str, int]
    questions: tuple[QuestionResult, ...]
    #: With a breakdown asked for: each closed question per group.
    breakdown: Breakdown | None = None

    @property
    def responses(self) -> int:
        return sum(self.statuses.values())


@dataclass(frozen=True)
class GroupResult:
    """One group's column of a breakdown: its people, and the question's table for them."""

    key: str | None
    label: str
    #: People in the group who were asked the question.
    size: int
    counts: tuple[Count, ...]
    stats: NumberStats | None = None

    def count(self, key: str | None) -> Count | None:
        """The row for ``key`` (a row of the question's overall table), if it has one."""
        return next((row for row in self.counts if row.key == key), None)


@dataclass(frozen=True)
class QuestionBreakdown:
    question: QuestionResult
    groups: tuple[GroupResult, ...]
    #: How many groups were merged into "other (small groups)".
    merged: int


@dataclass(frozen=True)
class Breakdown:
    by: str
    label: str
    #: Groups with fewer people than this are merged (``[results] min_group_size``).
    minimum: int
    questions: tuple[QuestionBreakdown, ...]


@dataclass(frozen=True)
class Day:
    day: date
    started: int
    completed: int


@dataclass(frozen=True)
class TextPage:
    question: QuestionResult
    answers: tuple[TextAnswer, ...]
    #: Answers matching the search, on every page.
    total: int
    search: str
    page: int
    per_page: int = TEXTS_PER_PAGE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class _Questions:
    """A consultation's questions as the results show them: the current (or chosen)
    version's order, then questions only older versions had; choice ids older versions
    had and the current one has not."""

    survey: Survey
    questions: tuple[Question, ...]
    retired: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Text in any version: free text is withheld if any version asked for it.
    free_text: frozenset[str] = frozenset()

    @property
    def language(self) -> str:
        return self.survey.default_language


class Results:
    """Results of the consultations in one database; build once per process."""

    def __init__(self, service: Service, config: Config) -> None:
        self._service = service
        self._sessions = service.sessions
        self.zone = ZoneInfo(config.pushes.timezone)
        self.minimum = config.results.min_group_size

    # --- what there is ----------------------------------------------------------------------

    def consultations(self) -> list[Consultation]:
        """Every loaded consultation, current version first, with its citizens' responses."""
        with transaction(self._sessions, read_only=True) as s:
            found: list[Consultation] = []
            for row in repo.latest_surveys(s):
                survey = self._service.survey_version(s, row.id)
                versions = tuple(r.version for r in repo.all_versions(s, row.slug))
                citizens, tests = repo.count_by_origin(s, row.slug)
                found.append(
                    Consultation(
                        row.slug,
                        _title(survey),
                        row.version,
                        versions,
                        citizens,
                        row.closes_at,
                        tests,
                    )
                )
            return found

    def versions(self, slug: str) -> tuple[int, ...]:
        """The stored versions of ``slug``, oldest first; :class:`LookupError` if none."""
        with transaction(self._sessions, read_only=True) as s:
            found = tuple(row.version for row in repo.all_versions(s, slug))
        if not found:
            raise LookupError(f"no survey {slug!r} is loaded")
        return found

    def simulator_runs(self, slug: str) -> int:
        """How many of the consultation's responses are staff's test runs in the simulator."""
        with transaction(self._sessions, read_only=True) as s:
            return repo.count_by_origin(s, slug)[1]

    def breakdowns(self, f: ResultsFilter) -> list[tuple[str, str]]:
        """What the responses can be broken down by: ``(by, label)``: channel, language,
        and each contact attribute the respondents have."""
        with transaction(self._sessions, read_only=True) as s:
            self._questions(s, f)
            names = queries.attribute_names(s, f, self.zone)
        found = [BY_CHANNEL, BY_LANGUAGE] + [ATTRIBUTE + n for n in names if _NAME.fullmatch(n)]
        return [(by, breakdown_label(by)) for by in found]

    # --- counts -----------------------------------------------------------------------------

    def overview(
        self, f: ResultsFilter, *, order: Order = "file", by: str | None = None
    ) -> Overview:
        """Each question's counts and percentages, and the responses by status; with
        ``by``, each closed question broken down too (:meth:`breakdown`), from the same
        single pass over the answers."""
        label = breakdown_label(by) if by is not None else ""
        with transaction(self._sessions, read_only=True) as s:
            qs = self._questions(s, f)
            statuses = queries.status_counts(s, f, self.zone)
            closed = [q for q in qs.questions if q.id not in qs.free_text]
            ids = [q.id for q in closed]
            # One pass over the answers: the closed questions' values, the texts as given.
            grouped = queries.value_counts(s, f, self.zone, ids, by=by, free_text=qs.free_text)
            repeats = queries.repeat_sessions(s, f, self.zone, by) if by is not None else {}
        values: dict[str, dict[Any, int]] = {}
        for (qid, _group), counts in grouped.items():
            total = values.setdefault(qid, {})
            for value, n in counts.items():
                total[value] = total.get(value, 0) + n
        texts = {
            qid: (sum(values.get(qid, {}).values()), values.get(qid, {}).get(queries.GIVEN, 0))
            for qid in qs.free_text
        }
        grouped = {key: counts for key, counts in grouped.items() if key[0] not in qs.free_text}
        results = tuple(
            self._question(qs, q, values.get(q.id, {}), texts.get(q.id, (0, 0)), order)
            for q in qs.questions
        )
        shown = {export_status(status): n for status, n in statuses.items()}
        broken_down = None
        if by is not None:
            by_id = {r.id: r for r in results}
            broken_down = Breakdown(
                by,
                label,
                self.minimum,
                tuple(self._broken_down(qs, q, by_id[q.id], grouped, repeats, by) for q in closed),
            )
        return Overview(
            f.slug,
            _title(qs.survey),
            f,
            {status: shown.get(status, 0) for status in ("completed", "partial", "abandoned")},
            results,
            broken_down,
        )

    def _question(
        self,
        qs: _Questions,
        q: Question,
        values: Mapping[Any, int],
        text: tuple[int, int],
        order: Order,
    ) -> QuestionResult:
        label = q.text_in(qs.language, qs.language)
        if q.id in qs.free_text:
            asked, given = text
            return QuestionResult(q.id, "text", label, asked, asked - given, free_text=True)
        if q.type in _NUMBERS:
            rows, stats, asked = number_counts(q, values)
            return QuestionResult(
                q.id, q.type, label, asked, values.get(None, 0), rows, stats=stats
            )
        rows, asked = choice_counts(
            q,
            values,
            language=qs.language,
            default=qs.language,
            order=order,
            retired=qs.retired.get(q.id, ()),
        )
        skipped = values.get(None, 0)
        return QuestionResult(q.id, q.type, label, asked, skipped, rows, multiple=q.type == "multi")

    def breakdown(self, f: ResultsFilter, by: str, *, order: Order = "file") -> Breakdown:
        """Each closed question's table per group of ``by`` (channel, language or a contact
        attribute); groups of fewer than ``[results] min_group_size`` people are merged into
        "other (small groups)" (see :func:`bot.results.tables.merge_small_groups`)."""
        found = self.overview(f, order=order, by=by).breakdown
        assert found is not None
        return found

    def _broken_down(
        self,
        qs: _Questions,
        q: Question,
        question: QuestionResult,
        grouped: queries.ValueCounts,
        repeats: Mapping[str | None, int],
        by: str,
    ) -> QuestionBreakdown:
        values = {group: counts for (qid, group), counts in grouped.items() if qid == q.id}
        # People asked, per group: the responses, less those beyond a person's first (a
        # bound that never overstates, so a group is never shown for more than it is).
        sizes = {
            group: max(0, sum(counts.values()) - repeats.get(group, 0))
            for group, counts in values.items()
        }
        shown_as = merge_small_groups(sizes, self.minimum)
        merged_values: dict[str | None, dict[Any, int]] = {}
        merged_sizes: dict[str | None, int] = {}
        for group, shown in shown_as.items():
            target = merged_values.setdefault(shown, {})
            for value, n in values[group].items():
                target[value] = target.get(value, 0) + n
            merged_sizes[shown] = merged_sizes.get(shown, 0) + sizes[group]
        groups = []
        for group in shown_order(merged_values):
            table = self._question(qs, q, merged_values[group], (0, 0), "file")
            # A number's ranges depend on its values: per group, only its statistics.
            counts = () if q.type == "number" else table.counts
            label = group_label(group)
            if by == BY_CHANNEL and group is not None and group in CHANNEL_LABELS:
                label = channel_label(group)  # "SMS", as every page and chart names it
            groups.append(GroupResult(group, label, merged_sizes[group], counts, table.stats))
        merged = sum(1 for g, shown in shown_as.items() if shown != g)
        return QuestionBreakdown(question, tuple(groups), merged)

    def timeline(self, f: ResultsFilter) -> list[Day]:
        """Responses begun and completed per day (in the city's timezone), every day from
        the first to the last, quiet days included."""
        with transaction(self._sessions, read_only=True) as s:
            self._questions(s, f)
            started, completed = queries.hours(s, f, self.zone)
        days: dict[date, list[int]] = {}
        for index, hours in enumerate((started, completed)):
            for hour, n in hours:
                slot = days.setdefault(hour.astimezone(self.zone).date(), [0, 0])
                slot[index] += n
        if not days:
            return []
        first, last = min(days), max(days)
        out: list[Day] = []
        while first <= last:
            counts = days.get(first, [0, 0])
            out.append(Day(first, counts[0], counts[1]))
            first += timedelta(days=1)
        return out

    def funnel(self, f: ResultsFilter) -> FunnelCounts:
        """Invited, started, completed, abandoned, still answering (whatever the filter's
        statuses: the funnel is made of them)."""
        with transaction(self._sessions, read_only=True) as s:
            self._questions(s, f)
            return queries.funnel(s, f, self.zone)

    def texts(
        self,
        f: ResultsFilter,
        question_id: str,
        *,
        free_text: bool,
        search: str = "",
        page: int = 1,
    ) -> TextPage:
        """A text question's answers, newest first, those containing ``search``; a page of
        :data:`TEXTS_PER_PAGE`. Only for callers that may read free text."""
        if not free_text:
            raise FreeTextWithheldError("free text answers are shown to editors and admins only")
        page = max(1, page)
        with transaction(self._sessions, read_only=True) as s:
            qs = self._questions(s, f)
            question = next((q for q in qs.questions if q.id == question_id), None)
            if question is None or question_id not in qs.free_text:
                raise LookupError(f"{f.slug} has no text question {question_id!r}")
            counts = queries.text_counts(s, f, self.zone, [question_id])
            answers, total = queries.texts(
                s,
                f,
                self.zone,
                question_id,
                search=search,
                limit=TEXTS_PER_PAGE,
                offset=(page - 1) * TEXTS_PER_PAGE,
            )
        result = self._question(qs, question, {}, counts.get(question_id, (0, 0)), "file")
        return TextPage(result, tuple(answers), total, search, page)

    # --- exports ----------------------------------------------------------------------------

    def columns(self, f: ResultsFilter, *, free_text: bool) -> list[str]:
        """The question columns of an export: the current (or chosen) version's order,
        then questions only older versions had; no text question without ``free_text``."""
        with transaction(self._sessions, read_only=True) as s:
            qs = self._questions(s, f)
        return [q.id for q in qs.questions if free_text or q.id not in qs.free_text]

    def records(self, f: ResultsFilter, *, free_text: bool) -> Iterator[dict[str, Any]]:
        """One record per response, in the documented export shape (docs/results.md);
        without ``free_text``, the answers to text questions are left out."""
        with transaction(self._sessions, read_only=True) as s:
            qs = self._questions(s, f)
            versions = {row.id: row.version for row in repo.all_versions(s, f.slug)}
            left_out = set() if free_text else qs.free_text
            for row, answers in queries.responses(s, f, self.zone):
                yield {
                    "response_id": row.id,
                    "survey_version": versions[row.survey_id],
                    "respondent": row.respondent,
                    "channel": row.channel,
                    "language": row.language,
                    "status": export_status(row.status),
                    "started_at": _iso(row.started_at),
                    "completed_at": _iso(row.completed_at),
                    "simulated": row.simulated,
                    "answers": {qid: value for qid, value in answers if qid not in left_out},
                }

    def export(
        self, f: ResultsFilter, fmt: str, *, free_text: bool, actor: str = "staff"
    ) -> Iterator[bytes]:
        """The export file in ``fmt`` (``csv``, ``jsonl``, ``xlsx``), as pieces of bytes:
        what ``voxpop results export`` writes and the console sends. :class:`LookupError`
        at once (not at the first piece) for a consultation that is not loaded. Audited as
        ``export downloaded`` by ``actor``, with the format and the filter."""
        if fmt not in export.FORMATS:
            raise ValueError(f"unknown format {fmt!r} (known: {', '.join(export.FORMATS)})")
        columns = self.columns(f, free_text=free_text)
        with transaction(self._sessions) as s:
            details = {"format": fmt, "free_text": free_text, **_filter_details(f)}
            repo.audit(s, actor, "export downloaded", f.slug, details, self._service.now())
        return export.chunks(fmt, columns, self.records(f, free_text=free_text))

    # --- the consultation's questions -------------------------------------------------------

    def _questions(self, s: Session, f: ResultsFilter) -> _Questions:
        rows = repo.all_versions(s, f.slug)
        if not rows:
            raise LookupError(f"no survey {f.slug!r} is loaded")
        if f.version is not None:
            chosen = [r for r in rows if r.version == f.version]
            if not chosen:
                raise LookupError(f"{f.slug} has no version {f.version}")
            rows = chosen
        current = repo.latest_survey(s, f.slug) if f.version is None else rows[0]
        assert current is not None
        ordered: list[SurveyRow] = [current, *(r for r in reversed(rows) if r.id != current.id)]
        questions: dict[str, Question] = {}
        choices: dict[str, list[str]] = {}
        free_text: set[str] = set()
        for row in ordered:
            survey = self._service.survey_version(s, row.id)
            for q in survey.questions:
                questions.setdefault(q.id, q)
                if q.free_text:
                    free_text.add(q.id)
                known = choices.setdefault(q.id, [])
                known += [c.id for c in q.choices if c.id not in known]
        retired = {
            qid: tuple(c for c in ids if questions[qid].choice(c) is None)
            for qid, ids in choices.items()
        }
        return _Questions(
            self._service.survey_version(s, current.id),
            tuple(questions.values()),
            retired,
            frozenset(free_text),
        )


#: The attribute names a breakdown accepts (contacts files name them: docs/contacts.md).
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_ .-]{0,63}")


def _filter_details(f: ResultsFilter) -> dict[str, Any]:
    """The parts of ``f`` that narrow an export, as the audit log records them.

    >>> _filter_details(ResultsFilter("parks", version=2, statuses=("completed",)))
    {'version': 2, 'status': 'completed'}
    """
    found: dict[str, Any] = {
        "version": f.version,
        "from": f.since.isoformat() if f.since else None,
        "to": f.until.isoformat() if f.until else None,
        "status": ", ".join(f.statuses),
        "simulated": f.include_simulated,
    }
    return {key: value for key, value in found.items() if value}


def breakdown_label(by: str) -> str:
    """How a breakdown is named for staff; :class:`UnknownBreakdownError` for one that
    cannot be made (an attribute nobody has makes one group, "not known").

    >>> breakdown_label("channel"), breakdown_label("attribute:age_band")
    ('Channel', 'Age band')
    """
    if by == BY_CHANNEL:
        return "Channel"
    if by == BY_LANGUAGE:
        return "Language"
    name = by[len(ATTRIBUTE) :] if by.startswith(ATTRIBUTE) else ""
    if not _NAME.fullmatch(name):
        raise UnknownBreakdownError(f"the responses cannot be broken down by {by!r}")
    return name.replace("_", " ").capitalize()


def _title(survey: Survey) -> str:
    return survey.title.get(survey.default_language) or survey.id


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


__all__: Sequence[str] = (
    "Breakdown",
    "Consultation",
    "Day",
    "FreeTextWithheldError",
    "GroupResult",
    "Overview",
    "QuestionBreakdown",
    "QuestionResult",
    "Results",
    "TextPage",
    "UnknownBreakdownError",
)
