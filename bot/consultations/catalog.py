"""The survey catalog of one process: every stored version parsed once, the keywords of the
current versions, and a cheap check that notices another process's loads and closings.

Parsing a consultation file costs far more than answering a message, so each stored version
(row id) is parsed once and kept. Every message asks for the keywords; at most once a second
(:data:`CATALOG_RECHECK`) one query tells whether the catalog changed elsewhere: a version
loaded (the rows' count, highest id and latest load time) or a survey closed (the
``catalog_changed`` setting, which closing rewrites).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import repo
from storage.models import Setting, SurveyRow
from surveys.loader import SurveyError, clashes, parse_survey
from surveys.model import Survey
from surveys.text import normalize

__all__ = [
    "CATALOG_RECHECK",
    "CATALOG_SETTING",
    "LoadedSurvey",
    "SurveyCatalog",
    "loaded_keywords",
]

#: Changed whenever staff close a survey, so every process re-reads its closing time.
CATALOG_SETTING = "catalog_changed"
#: How long a process trusts its survey catalog before checking for another process's loads
#: or closings (its own take effect at once).
CATALOG_RECHECK = 1.0
_CATALOG_MARK = select(
    func.count(SurveyRow.id),
    func.max(SurveyRow.id),
    func.max(SurveyRow.loaded_at),
    select(Setting.value).where(Setting.key == CATALOG_SETTING).scalar_subquery(),
)


def loaded_keywords(s: Session, replaced: Collection[str]) -> dict[str, str]:
    """The normalised keywords of the stored consultations, with their survey id, for
    :func:`surveys.loader.clashes`: ``voxpop survey validate`` and ``load`` check files
    against them, and :meth:`SurveyCatalog.store` again in its own transaction. Surveys in
    ``replaced`` are left out (a file with the same id is their next version)."""
    return {
        normalize(word): row.slug
        for row in repo.latest_surveys(s)
        if row.slug not in replaced
        for word in row.keywords
    }


@dataclass(frozen=True)
class LoadedSurvey:
    survey: Survey
    version: int
    #: "new" (a new version), "unchanged" (already current), or "restored" (an earlier
    #: version made current again because the file went back to its text).
    outcome: str


class SurveyCatalog:
    """Surveys as stored, for one process; every method works in the caller's transaction."""

    def __init__(self) -> None:
        self._surveys: dict[int, Survey] = {}
        self._keywords: dict[str, tuple[Survey, int]] = {}
        self._mark: tuple[int, int, datetime | None, str | None] | None = None
        self._checked = 0.0

    def changed(self) -> None:
        """This process loaded or closed a survey: look again at the next question."""
        self._mark = None

    def store(
        self, s: Session, sources: Iterable[tuple[str, str]], now: datetime, actor: str = "staff"
    ) -> list[LoadedSurvey]:
        """Store parsed ``(source_name, toml_text)`` pairs; a changed text is a new version.

        The caller validates first; this raises :class:`surveys.loader.SurveyError` otherwise.
        """
        named = list(sources)
        parsed = [(parse_survey(text, name), text) for name, text in named]
        loaded: list[LoadedSurvey] = []
        taken = loaded_keywords(s, {survey.id for survey, _ in parsed})
        entries = [(sv, name, text) for (sv, text), (name, _) in zip(parsed, named, strict=True)]
        problems = clashes(entries, taken)
        if problems:
            raise SurveyError(problems)
        for survey, text in parsed:
            before = repo.latest_survey(s, survey.id)
            row, created = repo.store_survey_version(
                s,
                slug=survey.id,
                digest=survey.digest,
                source=text,
                title=dict(survey.title),
                keywords=list(survey.keywords),
                closes_at=survey.closes_at,
                now=now,
            )
            outcome = "new" if created else "unchanged"
            if not created and before is not None and before.id != row.id:
                outcome = "restored"
            if outcome != "unchanged":
                details = {"version": row.version, "outcome": outcome}
                repo.audit(s, actor, "consultation loaded", survey.id, details, now)
            loaded.append(LoadedSurvey(survey, row.version, outcome))
        self.changed()
        return loaded

    def version(self, s: Session, row_id: int) -> Survey:
        """The survey version stored as ``row_id`` (as closed by staff since)."""
        survey = self._surveys.get(row_id)
        if survey is None:
            row = repo.survey_by_id(s, row_id)
            if row is None:
                raise LookupError(f"survey version {row_id} is not stored")
            survey = parse_survey(row.source, f"{row.slug} v{row.version}")
            if row.closes_at != survey.closes_at:
                # Closed by staff (voxpop survey close): every version closes together.
                survey = replace(survey, closes_at=row.closes_at)
            self._surveys[row_id] = survey
        return survey

    def keywords(self, s: Session, *, fresh: bool = False) -> dict[str, tuple[Survey, int]]:
        """Each current survey's keywords (normalised), with the survey and its row id."""
        # One cheap query tells whether another process loaded or closed a survey since we
        # looked; at most once a second (CATALOG_RECHECK) unless ``fresh``: every message asks.
        clock = time.monotonic()
        recent = clock - self._checked < CATALOG_RECHECK
        if self._mark is not None and recent and not fresh:
            return self._keywords
        mark = s.execute(_CATALOG_MARK).one()
        self._checked = clock
        key = (int(mark[0] or 0), int(mark[1] or 0), mark[2], mark[3])
        if key != self._mark:
            self._surveys.clear()  # closing times may have changed
            keywords: dict[str, tuple[Survey, int]] = {}
            for row in repo.latest_surveys(s):
                survey = self.version(s, row.id)
                for word in survey.keywords:
                    keywords[normalize(word)] = (survey, row.id)
            self._keywords = keywords
            self._mark = key
        return self._keywords

    def row_id_of(self, s: Session, survey: Survey) -> int:
        """The row id of a current survey version."""
        for known, row_id in self.keywords(s).values():
            if known is survey:
                return row_id
        return self.current_row(s, survey.id).id

    def current_row(self, s: Session, slug: str) -> SurveyRow:
        """The current version's row; :class:`LookupError` if none is loaded."""
        row = next((r for r in repo.latest_surveys(s) if r.slug == slug), None)
        if row is None:
            raise LookupError(f"no survey {slug!r} is loaded (try: voxpop survey load FILE)")
        return row

    def current(self, s: Session, slug: str) -> Survey:
        """The current version of ``slug`` as this process knows it."""
        return self.version(s, self.current_row(s, slug).id)
