"""The Consultations pages: the list, a new consultation or version (upload or edit, checked
line by line, priced as SMS, previewed per channel), a consultation's page, closing.

Every rule is the domain's (:mod:`bot.consultations`): the pages check, price, preview, load
and close with the functions ``voxpop survey`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import HiddenField, TextAreaField

from bot.console.access import Role, current_staff, is_possible_id, requires
from bot.console.context import console
from bot.consultations.checking import check_text, normalise_source
from bot.consultations.manage import consultation, consultations, load_text
from bot.consultations.preview import PREVIEW_CHANNELS, previews
from bot.consultations.pricing import sms_prices
from safetext import clean_text
from surveys.loader import EXAMPLES_DIR
from surveys.validate import Problem, ValidationReport

bp = Blueprint("consultations", __name__, url_prefix="/consultations")

#: The largest consultation file the page takes (the examples are about 6 KB).
MAX_SOURCE = 200_000
#: The name problems use when the text was typed rather than uploaded.
TYPED_NAME = "consultation.toml"
#: The examples the help page shows in full, the short one first.
HELP_EXAMPLES = (EXAMPLES_DIR / "street-lighting.toml", EXAMPLES_DIR / "central-park.toml")


class SourceForm(FlaskForm):  # type: ignore[misc]  # Flask-WTF has no types
    """A consultation file, uploaded or typed; ``name`` keeps the uploaded file's name."""

    upload = FileField("Upload a consultation file")
    source = TextAreaField("Consultation file")
    name = HiddenField()


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    """A button that changes something: only its CSRF token."""


@dataclass(frozen=True)
class SourceLine:
    """One line of the text as the page lists it, with the problems that name it."""

    number: int
    text: str
    problems: tuple[Problem, ...]


@bp.get("")
@requires(Role.EDITOR)
def index() -> ResponseReturnValue:
    ctx = console()
    listed = consultations(ctx.service, ctx.config.pushes.timezone)
    return render_template("console/consultations/list.html", consultations=listed)


@bp.route("/new", methods=["GET", "POST"])
@requires(Role.EDITOR)
def new() -> ResponseReturnValue:
    ctx = console()
    form = SourceForm()
    if request.method == "GET":
        slug = request.args.get("from", "")
        if slug and not is_possible_id(slug):
            abort(404)
        if slug:
            try:
                form.source.data = consultation(
                    ctx.service, slug, ctx.config.pushes.timezone
                ).source
            except LookupError:
                abort(404)
            form.name.data = f"{slug}.toml"
        return _editor(form, None)
    if not form.validate_on_submit():
        # An expired form: keep what was typed, and say what to do.
        form.source.errors = ["The page had expired: press Check again"]
        return _editor(form, None, status=400)
    text, name = _submitted(form)
    if text is None:
        return _editor(form, None, status=400)
    form.source.data, form.name.data = text, name
    if request.form.get("action") == "load":
        staff = current_staff()
        loading = load_text(ctx.service, text, name, staff.actor)
        if loading.loaded is None:
            return _editor(form, loading.report, status=400)
        loaded = loading.loaded
        flash(_loaded_message(loaded.survey.id, loaded.version, loaded.outcome), "success")
        return redirect(url_for("consultations.detail", slug=loaded.survey.id))
    report = check_text(text, name, ctx.service.loaded_keywords)
    return _editor(form, report)


@bp.get("/help/writing")
@requires(Role.EDITOR)
def writing_help() -> ResponseReturnValue:
    """How to write a consultation file: the guide's key facts, and the examples in full
    (staff have the console, not the project's docs/surveys.md)."""
    examples = [(path.name, path.read_text("utf-8")) for path in HELP_EXAMPLES]
    return render_template("console/consultations/help.html", examples=examples)


@bp.get("/<slug>")
@requires(Role.EDITOR)
def detail(slug: str) -> ResponseReturnValue:
    ctx = console()
    try:
        found = consultation(ctx.service, slug, ctx.config.pushes.timezone)
    except LookupError:
        abort(404)
    return render_template(
        "console/consultations/detail.html",
        detail=found,
        summary=found.summary,
        keyword=_keyword(found.summary.survey.keywords),
        # A closed consultation cannot be started, in the simulator as by citizens.
        simulator_url=None
        if found.summary.status == "closed"
        else simulator_url(slug, found.summary.survey.keywords),
        form=ConfirmForm(),
    )


@bp.route("/<slug>/close", methods=["GET", "POST"])
@requires(Role.EDITOR)
def close(slug: str) -> ResponseReturnValue:
    ctx = console()
    try:
        found = consultation(ctx.service, slug, ctx.config.pushes.timezone)
    except LookupError:
        abort(404)
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        now = ctx.service.now()
        ctx.service.close_survey(slug, now, current_staff().actor)
        flash(f"{found.summary.title} is closed: nobody more is invited or reminded.", "success")
        return redirect(url_for("consultations.detail", slug=slug))
    status = 400 if request.method == "POST" else 200
    return render_template(
        "console/consultations/close.html",
        summary=found.summary,
        form=form,
        running=ctx.pushes.running(slug),
    ), status


def _submitted(form: SourceForm) -> tuple[str | None, str]:
    """The text to check: the uploaded file's if one was chosen, else the text area's; None
    (with the problem next to the field) when it cannot be read."""
    upload = form.upload.data
    if upload is not None and getattr(upload, "filename", None):
        name = clean_text(str(upload.filename), 200).rsplit("/", 1)[-1] or TYPED_NAME
        data = upload.read(MAX_SOURCE + 1)
        if len(data) > MAX_SOURCE:
            form.upload.errors = [f"The file is larger than {MAX_SOURCE // 1000} KB"]
            return None, name
        try:
            return normalise_source(clean_text(data.decode("utf-8-sig"))), name
        except UnicodeDecodeError:
            form.upload.errors = [
                "The file is not UTF-8 text: save it as UTF-8 and upload it again"
            ]
            return None, name
    text = normalise_source(clean_text(form.source.data or ""))
    if not text.strip():
        form.source.errors = ["Upload a consultation file, or type or paste it here"]
        return None, TYPED_NAME
    if len(text) > MAX_SOURCE:
        form.source.errors = [f"The text is longer than {MAX_SOURCE // 1000} KB"]
        return None, TYPED_NAME
    name = clean_text(form.name.data or "", 200) or TYPED_NAME
    return text, name


def _editor(
    form: SourceForm, report: ValidationReport | None, status: int = 200
) -> ResponseReturnValue:
    text = form.source.data or ""
    lines: list[SourceLine] = []
    general: list[Problem] = []
    prices = []
    shown = []
    simulator = None
    if report is not None:
        by_line: dict[int, list[Problem]] = {}
        for problem in report.problems:
            if problem.line is None:
                general.append(problem)
            else:
                by_line.setdefault(problem.line, []).append(problem)
        lines = [
            SourceLine(number, line, tuple(by_line.get(number, ())))
            for number, line in enumerate(text.removesuffix("\n").split("\n"), start=1)
        ]
        if report.survey is not None:
            prices = sms_prices(report)
            shown = previews(report.survey)
            simulator = simulator_url(report.survey.id, report.survey.keywords)
    return render_template(
        "console/consultations/new.html",
        form=form,
        report=report,
        lines=lines,
        general=general,
        prices=prices,
        previews=shown,
        channels=PREVIEW_CHANNELS,
        keyword=_keyword(report.survey.keywords) if report and report.survey else "",
        simulator_url=simulator,
    ), status


def simulator_url(slug: str, keywords: tuple[str, ...]) -> str | None:
    """Where to try ``slug`` in the simulator, picked already; None when it is off."""
    if "simulator.page" not in current_app.view_functions:
        return None
    return url_for("simulator.page", survey=slug, keyword=_keyword(keywords) or None)


def _keyword(keywords: tuple[str, ...]) -> str:
    return keywords[0] if keywords else ""


def _loaded_message(slug: str, version: int, outcome: str) -> str:
    if outcome == "unchanged":
        return f"{slug} has not changed: version {version} is still the current one."
    if outcome == "restored":
        return f"{slug} is back to an earlier text: version {version} is the current one again."
    return f"{slug} is loaded as version {version}."
