"""A consultation's results on 100,000 contacts and 100,000 responses, on SQLite and
PostgreSQL: what the console's Results page asks of the database when staff open it, and
again with a breakdown by a contact attribute.

The contacts are those of :mod:`bench.preview_bench` (a language, a district); each answered
Central Park once (seven answers in ten completed it, the rest stopped half-way or gave up),
every question answered or skipped as people do, over thirty days. The page is measured as
its handler asks for it: the breakdowns on offer, the overview (with the breakdown when one is
chosen), the timeline and the funnel, each ``runs`` times; the figure is the 95th percentile.
The baseline, in the same run, is the least such a page can cost: one ``SELECT count(*)`` of
the consultation's answers joined to their responses. Target: under 300 ms.

    python -m bench.results_bench [--contacts 100000] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import func, insert, select, text

from bench.preview_bench import p95, pages
from bench.preview_bench import populate as populate_contacts
from bot.config import Config
from bot.results.filters import ResultsFilter
from bot.results.service import Results
from bot.service import Service
from storage.db import make_engine, session_factory, transaction
from storage.models import AnswerRow, SessionRow, SurveyRow

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SLUG = "central-park"
#: Central Park's questions in order, with what people answer (``None``: skipped).
ANSWERS: dict[str, Callable[[random.Random], object]] = {
    "visits": lambda r: r.choice(["weekly", "monthly", "rarely", "never", None]),
    "why_not": lambda r: r.choice(["Too far", "No time", None, None]),
    "activities": lambda r: r.sample(["walk", "sport", "children", "dog"], r.randint(1, 3)),
    "clean": lambda r: r.randint(1, 5),
    "more_bins": lambda r: r.choice([True, False, None]),
    "playground": lambda r: r.choice([True, False]),
    "birth_year": lambda r: r.randint(1930, 2010),
    "idea": lambda r: r.choice(["More benches", "Longer opening hours", None]),
    "future": lambda r: r.choice([True, False]),
}


def populate(url: str, contacts: int) -> None:
    """The contacts, then one response of Central Park each."""
    populate_contacts(url, contacts)
    populate_responses(url, contacts)


def populate_responses(url: str, contacts: int) -> None:
    rng = random.Random(5)
    engine = make_engine(url)
    with engine.begin() as conn:
        survey_id = conn.scalar(select(func.max(SurveyRow.id)).where(SurveyRow.slug == SLUG))
        questions = list(ANSWERS)
        for start in range(1, contacts + 1, 10_000):
            sessions: list[dict[str, Any]] = []
            answers: list[dict[str, Any]] = []
            for i in range(start, min(start + 10_000, contacts + 1)):
                began = NOW - timedelta(days=30) + timedelta(seconds=rng.randrange(30 * 86400))
                roll = rng.random()
                status = "completed" if roll < 0.7 else "active" if roll < 0.8 else "abandoned"
                reached = len(questions) if status == "completed" else rng.randint(1, 5)
                sessions.append(
                    {
                        "id": i,
                        "contact_id": i,
                        "survey_id": survey_id,
                        "respondent": f"r{i}",
                        "channel": "sms" if roll % 0.1 < 0.07 else "telegram",
                        "language": rng.choice(("en", "nl", "fr")),
                        "status": status,
                        "state": {},
                        "state_version": 1,
                        "started_at": began,
                        "updated_at": began,
                        "completed_at": began + timedelta(minutes=5)
                        if status == "completed"
                        else None,
                        "simulated": False,
                    }
                )
                answers += [
                    {
                        "session_id": i,
                        "question_id": q,
                        "value": ANSWERS[q](rng),
                        "raw": None,
                        "how": "label",
                        "answered_at": began + timedelta(seconds=30 * n),
                    }
                    for n, q in enumerate(questions[:reached])
                ]
            conn.execute(insert(SessionRow), sessions)
            conn.execute(insert(AnswerRow), answers)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def measure(url: str, runs: int) -> dict[str, float]:
    engine = make_engine(url)
    service = Service(session_factory(engine), clock=lambda: NOW)
    results = Results(service, Config())
    f = ResultsFilter(SLUG)

    def baseline() -> None:
        with transaction(service.sessions, read_only=True) as s:
            s.scalar(
                select(func.count())
                .select_from(AnswerRow)
                .join(SessionRow, SessionRow.id == AnswerRow.session_id)
                .where(SessionRow.survey_id.in_(select(SurveyRow.id).where(SurveyRow.slug == SLUG)))
            )

    def page(by: str | None) -> None:
        # What the console's handler asks for (bot/console/results.py, ``consultation``).
        results.versions(SLUG)
        results.breakdowns(f)
        results.overview(f, by=by)
        results.timeline(f)
        results.funnel(f)

    figures = {"baseline": p95(baseline, runs)}
    figures["results page"] = p95(partial(page, None), runs)
    figures["by district"] = p95(partial(page, "attribute:district"), runs)
    figures["by channel"] = p95(partial(page, "channel"), runs)
    figures["  of which overview"] = p95(partial(results.overview, f), runs)
    figures["  of which breakdowns"] = p95(partial(results.breakdowns, f), runs)
    figures["  of which timeline"] = p95(partial(results.timeline, f), runs)
    figures["  of which funnel"] = p95(partial(results.funnel, f), runs)
    engine.dispose()
    return figures


def main(argv: list[str] | None = None) -> None:
    title = "results of {contacts:,} responses"
    pages(argv, title, "count of the answers", populate, measure, runs=10)


if __name__ == "__main__":
    main()
