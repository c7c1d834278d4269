"""The Results pages (docs/console.md, "Results"): the consultations with answers, one
consultation's results (per question a chart with its table, breakdowns, answers over time,
the funnel), the answers to a text question, and downloads.

Analysts, editors and admins read results; only editors and admins read free text (the
answers to text questions, which can name people): the views pass ``free_text`` to
:class:`bot.results.service.Results`, which refuses it otherwise. No page shows a phone number
or a chat id: results know only channels, languages and pseudonyms.

Every form here is a GET form (it changes nothing, so it needs no CSRF token): a filter is
a link staff can bookmark. The page works without JavaScript (the tables hold every number);
``results.js`` draws the charts from ``data-`` attributes and polls ``live.json`` to keep
the counts up to date while answers arrive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from flask import Blueprint, Response, abort, jsonify, render_template, request, stream_with_context
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from bot.console.access import Role, audit, current_staff, requires
from bot.console.context import console
from bot.console.times import parse_day
from bot.results.export import FORMATS, MEDIA_TYPES, filename
from bot.results.filters import STATUSES, ResultsFilter
from bot.results.service import (
    FreeTextWithheldError,
    Overview,
    QuestionResult,
    Results,
    UnknownBreakdownError,
)
from bot.results.tables import ORDERS, Order
from safetext import whole_number

__all__ = ["POLL_SECONDS", "bp"]

bp = Blueprint("console_results", __name__)

#: How often the page asks for new counts while it is open.
POLL_SECONDS: Final = 5
STATUS_LABELS: Final = {
    "completed": "Completed",
    "partial": "Still answering",
    "abandoned": "Abandoned",
}
ORDER_LABELS: Final = {"file": "As in the consultation file", "count": "Most chosen first"}
FORMAT_LABELS: Final = {"csv": "CSV", "jsonl": "JSON Lines", "xlsx": "Excel (XLSX)"}
#: The filter's field that adds staff's test runs in the simulator (``voxpop results export
#: --include-simulator`` in the terminal): ``yes``, or left out.
TEST_RUNS: Final = "include_simulator"
#: The data attribute's key for "skipped" (a choice id is never empty).
SKIPPED_KEY: Final = ""
#: Chart.js, vendored with the design system (bot/console/static/vendor/README.md). Until
#: it is there, the page shows its tables alone (every number is in them anyway).
CHART_JS: Final = Path(__file__).parent / "static" / "vendor" / "chartjs" / "chart.umd.min.js"


def _results() -> Results:
    context = console()
    return Results(context.service, context.config)


def _may_read_free_text() -> bool:
    return current_staff().role.allows(Role.EDITOR)


@dataclass
class FilterForm:
    """The filter form as sent (``?version=&from=&to=&status=&order=&by=``): the values to
    show again, a problem per field, and what they ask for."""

    values: dict[str, Any]
    errors: dict[str, str]
    filter: ResultsFilter
    order: Order = "file"
    by: str | None = None
    query: dict[str, Any] = field(default_factory=dict)


def read_filter(slug: str, args: MultiDict[str, str], versions: tuple[int, ...]) -> FilterForm:
    """The filter asked for in ``args``; each field that cannot be used is named with its
    problem, and left out of the filter (the page still shows results)."""
    errors: dict[str, str] = {}
    version: int | None = None
    raw_version = args.get("version", "").strip()
    if raw_version:
        if whole_number(raw_version) in versions:
            version = whole_number(raw_version)
        else:
            errors["version"] = "Choose a version of this consultation"
    days: dict[str, date | None] = {}
    for name, what in (("from", "first"), ("to", "last")):
        raw = args.get(name, "").strip()
        days[name] = None
        if raw:
            try:
                days[name] = parse_day(raw)
            except ValueError:
                errors[name] = f"Enter the {what} day as a date, like 2026-12-01"
    if days["from"] and days["to"] and days["from"] > days["to"]:
        errors["to"] = "The last day must be the same as or after the first day"
        days["to"] = None
    statuses = [s for s in args.getlist("status") if s]
    if any(s not in STATUSES for s in statuses):
        errors["status"] = "Choose completed, still answering or abandoned"
        statuses = [s for s in statuses if s in STATUSES]
    order_raw = args.get("order", "file")
    order: Order = "count" if order_raw == "count" else "file"
    if order_raw not in ORDERS:
        errors["order"] = "Choose an order"
    by = args.get("by", "").strip() or None
    # Off unless asked for, so a link or a bookmark never mixes test runs in unnoticed.
    test_runs = args.get(TEST_RUNS) == "yes"
    values = {
        "version": raw_version,
        "from": args.get("from", ""),
        "to": args.get("to", ""),
        "status": statuses,
        "order": order,
        "by": by or "",
        TEST_RUNS: test_runs,
    }
    wanted = ResultsFilter(
        slug,
        version=version,
        since=days["from"],
        until=days["to"],
        statuses=tuple(dict.fromkeys(statuses)),
        include_simulated=test_runs,
    )
    query: dict[str, Any] = {
        "version": version,
        "from": days["from"].isoformat() if days["from"] else None,
        "to": days["to"].isoformat() if days["to"] else None,
        "status": list(wanted.statuses) or None,
        "order": order if order != "file" else None,
        "by": by,
        TEST_RUNS: "yes" if test_runs else None,
    }
    query = {k: v for k, v in query.items() if v}
    return FilterForm(values, errors, wanted, order, by, query)


def _consultation(slug: str) -> tuple[int, ...]:
    """The versions of ``slug``; 404 when no such consultation is loaded."""
    try:
        return _results().versions(slug)
    except LookupError:
        abort(404)


@bp.get("/results")
@requires(Role.ANALYST)
def index() -> ResponseReturnValue:
    consultations = _results().consultations()
    return render_template(
        "console/results/list.html",
        answered=[c for c in consultations if c.responses],
        waiting=[c for c in consultations if not c.responses],
        now=console().clock(),
    )


@bp.get("/results/<slug>")
@requires(Role.ANALYST)
def consultation(slug: str) -> ResponseReturnValue:
    versions = _consultation(slug)
    results = _results()
    form = read_filter(slug, request.args, versions)
    breakdowns = results.breakdowns(form.filter)
    if form.by is not None and form.by not in dict(breakdowns):
        form.errors["by"] = "Choose what to break the results down by"
        form.by = None
        form.query.pop("by", None)
    try:
        overview = results.overview(form.filter, order=form.order, by=form.by)
    except UnknownBreakdownError:
        abort(400)
    return render_template(
        "console/results/consultation.html",
        overview=overview,
        form=form,
        versions=versions,
        breakdowns=breakdowns,
        timeline=results.timeline(form.filter),
        funnel=results.funnel(form.filter),
        free_text=_may_read_free_text(),
        formats=[(fmt, FORMAT_LABELS[fmt]) for fmt in FORMATS],
        status_labels=STATUS_LABELS,
        order_labels=ORDER_LABELS,
        chart=chart_data,
        key_of=key_of,
        poll_seconds=POLL_SECONDS,
        charts=CHART_JS.is_file(),
        minimum=results.minimum,
        test_runs=results.simulator_runs(slug),
    )


@bp.get("/results/<slug>/live.json")
@requires(Role.ANALYST, poll=True)
def live(slug: str) -> ResponseReturnValue:
    """The page's counts now, for ``results.js`` (the same filter as the page)."""
    form = read_filter(slug, request.args, _consultation(slug))
    overview = _results().overview(form.filter, order=form.order)
    return jsonify(live_numbers(overview))


def live_numbers(overview: Overview) -> dict[str, Any]:
    """What the page's script updates: the responses and each question's rows."""
    return {
        "responses": overview.responses,
        "statuses": dict(overview.statuses),
        "questions": {
            q.id: {
                "asked": q.asked,
                "answered": q.answered,
                "rows": [[key_of(row.key), row.count, row.percent] for row in q.counts],
            }
            for q in overview.questions
        },
    }


def key_of(key: str | None) -> str:
    """A row's key in ``data-`` attributes and the live numbers (``""`` for skipped)."""
    return SKIPPED_KEY if key is None else key


def chart_data(question: QuestionResult) -> dict[str, Any]:
    """What ``results.js`` draws for a question (its table holds the same numbers)."""
    return {
        "id": question.id,
        "labels": [row.label for row in question.counts],
        "keys": [key_of(row.key) for row in question.counts],
        "counts": [row.count for row in question.counts],
    }


@bp.get("/results/<slug>/download.<fmt>")
@requires(Role.ANALYST)
def download(slug: str, fmt: str) -> ResponseReturnValue:
    """The responses as a file; analysts' files never hold free text. Audited."""
    if fmt not in FORMATS:
        abort(404)
    form = read_filter(slug, request.args, _consultation(slug))
    if form.errors:
        abort(400)
    wanted = request.args.get("free_text") == "yes"
    if wanted and not _may_read_free_text():
        audit("access refused", path=request.path, needed=Role.EDITOR.value)
        abort(403)
    try:
        chunks = _results().export(form.filter, fmt, free_text=wanted, actor=current_staff().actor)
    except LookupError:
        abort(404)
    name = filename(slug, fmt, free_text=wanted)
    return Response(
        stream_with_context(chunks),
        mimetype=MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            # Personal data: neither the browser nor a proxy keeps a copy.
            "Cache-Control": "no-store",
        },
    )


@bp.get("/results/<slug>/answers/<question_id>")
@requires(Role.EDITOR)
def answers(slug: str, question_id: str) -> ResponseReturnValue:
    """The answers to a text question, newest first, searchable (editors and admins)."""
    form = read_filter(slug, request.args, _consultation(slug))
    search = request.args.get("search", "").strip()[:200]
    page_raw = request.args.get("page", "1")
    page = min(max(whole_number(page_raw) or 1, 1), 100_000)
    try:
        found = _results().texts(
            form.filter, question_id, free_text=_may_read_free_text(), search=search, page=page
        )
    except FreeTextWithheldError:
        abort(403)
    except LookupError:
        abort(404)
    return render_template(
        "console/results/answers.html",
        slug=slug,
        found=found,
        form=form,
        status_labels=STATUS_LABELS,
    )


def query_with(query: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """``query`` with ``changes`` (``None`` removes a key), for links that keep the filter."""
    out = dict(query)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@bp.app_template_global("results_query")
def results_query(query: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    return query_with(query, **changes)
