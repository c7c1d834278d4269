"""Consultations as staff manage them: the list with status and counts, one consultation's
versions, loading a new version from text, and closing. ``voxpop survey list|load|close`` and
the console's pages call these functions (or the :class:`~bot.service.Service` methods they
name), so both say and do the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import days
from bot.consultations.catalog import LoadedSurvey
from bot.consultations.checking import check_text, normalise_source
from bot.service import Service
from safetext import clean_text
from storage import repo
from storage.db import transaction
from storage.models import AnswerRow, SessionRow, SurveyRow
from surveys.loader import SurveyError
from surveys.model import Survey
from surveys.validate import ValidationReport

__all__ = [
    "ConsultationDetail",
    "ConsultationSummary",
    "Loading",
    "Status",
    "VersionInfo",
    "answered_since",
    "consultation",
    "consultation_labels",
    "consultations",
    "day_start",
    "load_text",
    "status_of",
]

#: ``open``; ``closing``: open, with a closing time set; ``closed``.
Status: TypeAlias = Literal["open", "closing", "closed"]


@dataclass(frozen=True)
class ConsultationSummary:
    """One consultation in the list: its current version and what came in."""

    slug: str
    title: str
    survey: Survey
    version: int
    versions: int
    status: Status
    closes_at: datetime | None
    #: Citizens who answered at least one question today (the city's day); no test runs.
    answered_today: int
    #: Citizens' responses over every version (as ``voxpop survey list`` counts them).
    responses: int
    #: Conversations staff had in the simulator.
    simulator_runs: int


@dataclass(frozen=True)
class VersionInfo:
    version: int
    loaded_at: datetime
    digest: str
    #: Citizens' responses to this version.
    responses: int
    current: bool


@dataclass(frozen=True)
class ConsultationDetail:
    summary: ConsultationSummary
    #: Newest first.
    versions: tuple[VersionInfo, ...]
    #: The current version's file, as loaded.
    source: str


@dataclass(frozen=True)
class Loading:
    """What loading a text did: its report, and the version it made (None: nothing loaded)."""

    report: ValidationReport
    loaded: LoadedSurvey | None


def status_of(closes_at: datetime | None, now: datetime) -> Status:
    """>>> from datetime import UTC, timedelta
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> status_of(None, now), status_of(now, now), status_of(now + timedelta(days=1), now)
    ('open', 'closed', 'closing')
    """
    if closes_at is None:
        return "open"
    return "closed" if now >= closes_at else "closing"


def day_start(now: datetime, zone: str) -> datetime:
    """Midnight of ``now``'s day in the city's time zone (``[pushes] timezone``), in UTC."""
    city = ZoneInfo(zone)
    return days.day_start(now.astimezone(city).date(), city)


def answered_since(s: Session, since: datetime) -> dict[str, int]:
    """Per consultation, the citizens who answered a question since ``since`` (one count
    each, however many answers; the simulator's conversations left out)."""
    rows = s.execute(
        select(SurveyRow.slug, func.count(func.distinct(AnswerRow.session_id)))
        .join(SessionRow, SessionRow.id == AnswerRow.session_id)
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(AnswerRow.answered_at >= since, SessionRow.simulated.is_(False))
        .group_by(SurveyRow.slug)
    )
    return {slug: int(n) for slug, n in rows}


def consultations(service: Service, zone: str) -> list[ConsultationSummary]:
    """Every loaded consultation, by id, with its current version; ``zone`` is the city's
    time zone, where today begins."""
    now = service.now()
    with transaction(service.sessions, read_only=True) as s:
        today = answered_since(s, day_start(now, zone))
        counts = _version_counts(s)
        return [
            _summary(s, service, row, survey, now, today, counts)
            for row, survey in _current(s, service)
        ]


def consultation_labels(service: Service, zone: str) -> dict[str, str]:
    """Each loaded consultation's name for lists and choices: its title, id and current
    version, so two consultations with the same title can be told apart."""
    return {
        c.slug: f"{c.title} ({c.slug}, version {c.version})" for c in consultations(service, zone)
    }


def consultation(service: Service, slug: str, zone: str) -> ConsultationDetail:
    """One consultation with its versions; :class:`LookupError` if none is loaded."""
    now = service.now()
    with transaction(service.sessions, read_only=True) as s:
        row = repo.latest_survey(s, slug)
        if row is None:
            raise LookupError(f"no consultation {slug!r} is loaded")
        survey = service.survey(s, slug)
        today = answered_since(s, day_start(now, zone))
        summary = _summary(s, service, row, survey, now, today, _version_counts(s))
        per_version = {
            k: int(n)
            for k, n in s.execute(
                select(SessionRow.survey_id, func.count(SessionRow.id))
                .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
                .where(
                    SurveyRow.slug == slug,
                    SessionRow.simulated.is_(False),
                    repo.is_response(),
                )
                .group_by(SessionRow.survey_id)
            )
        }
        versions = tuple(
            VersionInfo(
                v.version, v.loaded_at, v.digest, int(per_version.get(v.id, 0)), v.id == row.id
            )
            for v in reversed(repo.all_versions(s, slug))
        )
        return ConsultationDetail(summary, versions, row.source)


def load_text(service: Service, text: str, name: str, actor: str = "staff") -> Loading:
    """Check consultation ``text`` as ``voxpop survey load`` checks a file (alone, and with
    the consultations already loaded), then store it the same way
    (:meth:`Service.load_surveys`): a changed text is a new version."""
    source = normalise_source(clean_text(text))
    report = check_text(source, name, service.loaded_keywords)
    if report.has_errors:
        return Loading(report, None)
    try:
        (loaded,) = service.load_surveys([(name, source)], actor)
    except SurveyError as exc:
        # Another consultation took a keyword between the check and the load.
        return Loading(report.adding(exc.problems), None)
    return Loading(report, loaded)


def _current(s: Session, service: Service) -> Sequence[tuple[SurveyRow, Survey]]:
    # service.survey looks again for what another process loaded or closed.
    return [(row, service.survey(s, row.slug)) for row in repo.latest_surveys(s)]


def _version_counts(s: Session) -> dict[str, int]:
    rows = s.execute(select(SurveyRow.slug, func.count(SurveyRow.id)).group_by(SurveyRow.slug))
    return {slug: int(n) for slug, n in rows}


def _summary(
    s: Session,
    service: Service,
    row: SurveyRow,
    survey: Survey,
    now: datetime,
    today: dict[str, int],
    versions: dict[str, int],
) -> ConsultationSummary:
    responses, tests = repo.count_by_origin(s, row.slug)
    return ConsultationSummary(
        slug=row.slug,
        title=survey.title.get(survey.default_language, row.slug),
        survey=survey,
        version=row.version,
        versions=versions.get(row.slug, 1),
        status=status_of(row.closes_at, now),
        closes_at=row.closes_at,
        answered_today=today.get(row.slug, 0),
        responses=responses,
        simulator_runs=tests,
    )
