"""What ``RESULTS`` answers: the latest outcome the city published, or how a consultation is
going so far. Read-only queries, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.conversation.i18n import N_, t
from storage.models import AnswerRow, OutcomeRow, SessionRow, SurveyRow
from surveys.model import Question, Survey
from surveys.outcomes import text_for


def latest_outcome(
    s: Session, slug: str | None, attributes: Mapping[str, Any], language: str
) -> str | None:
    """The text of the latest outcome published for ``slug`` (of any survey when ``None``)."""
    stmt = select(OutcomeRow.message).order_by(OutcomeRow.published_at.desc(), OutcomeRow.id.desc())
    if slug is not None:
        stmt = stmt.where(OutcomeRow.survey_slug == slug)
    message = s.scalar(stmt.limit(1))
    if not isinstance(message, Mapping):
        return None
    return text_for(message, language, attributes) or None


def summary_text(s: Session, survey: Survey, language: str) -> str | None:
    """How the consultation is going: who took part, and its first choice question's most
    chosen answer. ``None`` before anyone answered."""
    slug = survey.id
    sessions = (
        select(SessionRow.id)
        .join(SurveyRow, SurveyRow.id == SessionRow.survey_id)
        .where(SurveyRow.slug == slug, SessionRow.simulated.is_(False))
    )
    took_part = s.scalar(
        select(func.count(func.distinct(AnswerRow.session_id))).where(
            AnswerRow.session_id.in_(sessions)
        )
    )
    if not took_part:
        return None
    title = survey.title.get(language) or survey.title.get(survey.default_language, survey.id)
    question = next((q for q in survey.questions if q.type in ("choice", "yesno")), None)
    if question is not None:
        counts: dict[Any, int] = {}
        for value, n in s.execute(
            select(AnswerRow.value, func.count(AnswerRow.id))
            .where(AnswerRow.session_id.in_(sessions), AnswerRow.question_id == question.id)
            .group_by(AnswerRow.value)
        ):
            if value is not None:
                counts[value] = counts.get(value, 0) + int(n)
        if counts:
            top, n = max(counts.items(), key=lambda item: (item[1], str(item[0])))
            share = round(100 * n / sum(counts.values()))
            return t(
                language,
                N_("Participants in {title} so far: {count}. Most chose: {label} ({share}%)."),
                title=title,
                count=took_part,
                label=_label(question, top, language, survey.default_language),
                share=share,
            )
    return t(
        language,
        N_("Participants in {title} so far: {count}. The city will share what it decides."),
        title=title,
        count=took_part,
    )


def _label(question: Question, value: Any, language: str, default: str) -> str:
    if question.type == "yesno":
        return t(language, N_("Yes")) if value is True else t(language, N_("No"))
    choice = question.choice(str(value))
    return str(choice.label_in(language, default)) if choice is not None else str(value)
