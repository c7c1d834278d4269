"""The Contacts pages (docs/console.md, "Contacts"): search, import, a contact, erase.

Editors and admins only: contacts are personal data (analysts get 403). Addresses are shown
masked on every page (:func:`bot.contacts.masking.mask`); no page ever holds a whole phone
number or chat id. Every rule is the service's (:class:`bot.contacts.service.Contacts`), the
same the CLI calls; a view checks the role, calls it, and renders.

An import is a staged import: the upload is stored, checked by a worker thread (a dry run:
problems by line, nothing written), shown for confirmation, then imported in chunks by a
worker thread while the page shows a ``<progress>`` bar (a small static script polls
``/contacts/import/<id>.json``; without script, reloading the page shows how far it is). The
browser may go away: the import goes on, and a poll resumes one whose process stopped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from bot.console.access import Role, current_staff, load_staff, requires
from bot.console.context import console
from bot.console.forms import EmptyForm as ActionForm
from bot.console.forms import UploadForm
from bot.console.times import local_time
from bot.contacts.service import (
    CONSENT_FILTERS,
    ContactFilter,
    Contacts,
    ContactView,
    ImportJob,
    parse_where,
)
from bot.contacts.worker import ImportWorker
from bot.conversation.i18n import SUPPORTED_LANGUAGES
from messages import CHANNEL_LABELS, CHANNEL_NAMES
from safetext import clean_text, whole_number

__all__ = ["WORKER_EXTENSION", "bp", "import_worker"]

bp = Blueprint("console_contacts", __name__)

#: Contacts per page of a search.
PER_PAGE: Final = 50
#: The worker of this app (one per app, as tests build several).
WORKER_EXTENSION: Final = "voxpop_contacts_worker"
_FIELD_LIMIT: Final = 200
_CONSENT_LABELS: Final = {
    "reachable": "Consent given, not opted out (a push reaches them)",
    "given": "Consent given",
    "none": "No consent recorded",
    "declined": "Said no in a survey",
    "opted_in": "Not opted out",
    "opted_out": "Opted out (STOP)",
}
_STATUS_TITLES: Final = {
    "checking": "Checking the file",
    "checked": "Check the file before importing",
    "refused": "The file cannot be imported",
    "importing": "Importing contacts",
    "done": "Contacts imported",
    "failed": "The import stopped",
    "discarded": "Import cancelled",
}


#: The search's filters: kept in the address (nothing personal in them).
_FILTERS: Final = ("channel", "language", "attribute", "tag", "consent")


def _contacts() -> Contacts:
    return console().contacts


def import_worker(app: Flask) -> ImportWorker:
    """The app's import worker (tests join it to wait for an import's thread)."""
    worker = app.extensions.get(WORKER_EXTENSION)
    if worker is None:
        with app.app_context():
            worker = app.extensions.setdefault(WORKER_EXTENSION, ImportWorker(_contacts()))
    assert isinstance(worker, ImportWorker)
    return worker


def _worker() -> ImportWorker:
    return import_worker(current_app._get_current_object())  # type: ignore[attr-defined]


@bp.app_template_global("contact_time")
def contact_time(
    value: datetime | None, contact: ContactView | None = None, date: bool = False
) -> str:
    """A time in the contact's own time zone (else the city's), as every page shows times
    (:mod:`bot.console.times`); a consent date reads as the file wrote it."""
    if value is None:
        return "–"
    return local_time(value, contact.timezone if contact else None, day_only=date)


def _arg(name: str) -> str:
    return clean_text(request.args.get(name, ""), _FIELD_LIMIT).strip()


# --- search -------------------------------------------------------------------------------------


@bp.get("/contacts")
@requires(Role.EDITOR)
def search() -> ResponseReturnValue:
    """Filter contacts: a GET form (bookmarkable, no script), one page at a time. The
    filters hold nothing personal; finding one person by number is :func:`find`'s POST."""
    return _search_page()


@bp.post("/contacts/find")
@requires(Role.EDITOR)
def find() -> ResponseReturnValue:
    """Find one person by phone number, chat id or contact number. A POST: the number must
    never be in an address (the address bar, the history, a proxy's log, a ``next=``)."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    ref = clean_text(request.form.get("q", ""), _FIELD_LIMIT).strip()
    if not ref:
        return _search_page(ref, "Enter a phone number, chat id or contact number.")
    try:
        contact_id = _contacts().find(ref)
    except LookupError as exc:
        return _search_page(ref, _sentence(str(exc.args[0])))
    # The contact's own page, named by its id: nothing personal in the address.
    return redirect(url_for(".contact", contact_id=contact_id), 303)


def _search_page(ref: str = "", not_found: str | None = None) -> ResponseReturnValue:
    """The Contacts page: the find form (``ref`` typed, ``not_found`` why it found nobody)
    and the filters from the query string, with one page of contacts."""
    values = {name: _arg(name) for name in _FILTERS}
    values["q"] = ref
    errors: dict[str, str] = {"q": not_found} if not_found else {}
    channel = values["channel"] or None
    if channel is not None and channel not in CHANNEL_NAMES:
        errors["channel"] = "Choose a channel from the list."
    language = values["language"].lower() or None
    if language is not None and language not in SUPPORTED_LANGUAGES:
        errors["language"] = "Choose a language from the list."
    where: dict[str, str] = {}
    if values["attribute"]:
        try:
            where = parse_where([values["attribute"]])
        except ValueError:
            errors["attribute"] = "Write the attribute as name=value, like district=north."
    consent = values["consent"] or None
    if consent is not None and consent not in CONSENT_FILTERS:
        errors["consent"] = "Choose a consent from the list."
    page_number = request.args.get("page", "1")
    page_index = min(max(whole_number(page_number) or 1, 1), 999_999)
    found = None
    if not errors:
        filters = ContactFilter(
            channel=channel,
            language=language,
            where=where,
            tags=(values["tag"],) if values["tag"] else (),
            consent=consent,
        )
        found = _contacts().search(filters, page=page_index, per_page=PER_PAGE)
    return (
        render_template(
            "console/contacts/search.html",
            values=values,
            errors=errors,
            found=found,
            # No filter set and nobody found: there are no contacts at all yet.
            filtered=any(values[name] for name in _FILTERS),
            channels=[(c, CHANNEL_LABELS.get(c, c)) for c in CHANNEL_NAMES],
            languages=SUPPORTED_LANGUAGES,
            consents=list(_CONSENT_LABELS.items()),
            channel_label=CHANNEL_LABELS,
            page_url=_page_url,
            pagination=_pagination(found.page, found.pages) if found else [],
        ),
        400 if errors else 200,
    )


def _page_url(page: int) -> str:
    args = [(k, v) for k, v in request.args.items() if k in _FILTERS and v]
    return url_for(".search") + "?" + urlencode([*args, ("page", str(page))])


def _pagination(page: int, pages: int) -> list[dict[str, object]]:
    """GOV.UK pagination items: the first, the last, two either side of ``page``, and an
    ellipsis for each gap."""
    items: list[dict[str, object]] = []
    last = 0
    for n in range(1, pages + 1):
        if n in (1, pages) or abs(n - page) <= 2:
            if n - last > 1:
                items.append({"ellipsis": True})
            items.append({"number": n, "href": _page_url(n), "current": n == page})
            last = n
    return items


def _gone(exc: LookupError) -> ResponseReturnValue:
    """No such contact, or erased: a 404 page that says which."""
    return render_template("console/contacts/gone.html", message=_sentence(str(exc.args[0]))), 404


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# --- a contact ----------------------------------------------------------------------------------


@bp.get("/contacts/<int:contact_id>")
@requires(Role.EDITOR)
def contact(contact_id: int) -> ResponseReturnValue:
    """Everything held about one contact, addresses masked."""
    return _contact_page("console/contacts/contact.html", contact_id)


@bp.route("/contacts/<int:contact_id>/erase", methods=["GET", "POST"])
@requires(Role.EDITOR)
def erase(contact_id: int) -> ResponseReturnValue:
    """Ask first; then erase as the contact's own FORGET would."""
    form = ActionForm()
    if form.validate_on_submit():
        try:
            _contacts().erase(contact_id, actor=current_staff().actor)
        except LookupError as exc:  # no such contact, or erased meanwhile (a FORGET, a colleague)
            return _gone(exc)
        flash(f"Contact {contact_id} was erased.", "success")
        return redirect(url_for(".search"), 303)
    return _contact_page("console/contacts/erase.html", contact_id, form=form)


def _contact_page(template: str, contact_id: int, **extra: object) -> ResponseReturnValue:
    """``template`` about one contact (its details, addresses masked), or a 404 that says
    there is no such contact, or that it was erased."""
    try:
        details = _contacts().details(contact_id)
    except LookupError as exc:
        return _gone(exc)
    return render_template(
        template,
        details=details,
        contact=details.contact,
        channel_label=CHANNEL_LABELS,
        **extra,
    )


# --- import -------------------------------------------------------------------------------------


@bp.route("/contacts/import", methods=["GET", "POST"])
@requires(Role.EDITOR)
def upload() -> ResponseReturnValue:
    """Upload a contacts file: it is stored and checked; nothing is imported yet."""
    form = UploadForm()
    error = None
    if form.validate_on_submit():
        data = form.file.data.read() if form.file.data else b""
        if not data:
            error = "Choose a CSV file to upload."
        else:
            job_id = _contacts().stage(data, actor=current_staff().actor)
            _worker().start(job_id)
            return redirect(url_for(".job", job_id=job_id), 303)
    return _upload_page(form, error)


def _upload_page(form: UploadForm, error: str | None) -> ResponseReturnValue:
    return (
        render_template(
            "console/contacts/upload.html",
            form=form,
            error=error,
            jobs=_contacts().jobs(limit=10),
            titles=_STATUS_TITLES,
            max_mb=console().config.contacts.max_upload_mb,
        ),
        400 if error or form.errors else 200,
    )


def raise_upload_limit() -> None:
    """Let the import page take a whole contacts file (``[contacts] max_upload_mb``); every
    other request keeps the app's 1 MB. Runs before CSRF's check, which reads the body."""
    if request.endpoint != "console_contacts.upload":
        return
    # Only for an editor: anyone else's body is not worth reading past the app's 1 MB.
    load_staff()
    staff = g.get("staff")
    if staff is not None and staff.role.allows(Role.EDITOR):
        request.max_content_length = console().config.contacts.max_upload_mb * 1024 * 1024


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> ResponseReturnValue:
    """A file over the size limit: say so on the upload page, with a way around it. (The
    body is refused before any view runs, so the role is checked here too.)"""
    load_staff()  # the body was refused before the sign-in was read
    staff = g.get("staff")
    allowed = staff is not None and staff.role.allows(Role.EDITOR)
    if request.endpoint != "console_contacts.upload" or not allowed:
        return exc
    limit = console().config.contacts.max_upload_mb
    message = (
        f"The file is larger than {limit} MB. Split it into smaller files, or ask whoever runs "
        "Voxpop to import it with: voxpop contacts import FILE.csv"
    )
    return (
        render_template(
            "console/contacts/upload.html",
            form=None,
            error=message,
            jobs=[],
            titles=_STATUS_TITLES,
            max_mb=limit,
        ),
        413,
    )


def _job_or_404(job_id: int) -> ImportJob:
    try:
        return _contacts().job(job_id)
    except LookupError:
        abort(404)


@bp.get("/contacts/import/<int:job_id>")
@requires(Role.EDITOR)
def job(job_id: int) -> ResponseReturnValue:
    """Where an import is: checking, its check (problems by line), importing, its summary."""
    found = _job_or_404(job_id)
    if found.working:
        _worker().resume([job_id])  # its process may have stopped: go on here
    return render_template(
        "console/contacts/job.html",
        job=found,
        form=ActionForm(),
        title=_STATUS_TITLES.get(found.status, "Import"),
    )


@bp.get("/contacts/import/<int:job_id>.json")
@requires(Role.EDITOR, poll=True)
def job_progress(job_id: int) -> ResponseReturnValue:
    """How far an import is, for the progress bar's script."""
    found = _job_or_404(job_id)
    if found.working:
        _worker().resume([job_id])
    return jsonify(
        status=found.status,
        working=found.working,
        percent=found.percent,
        line=found.line,
        lines=found.lines,
        row=found.row,
        rows=found.rows,
    )


@bp.post("/contacts/import/<int:job_id>/confirm")
@requires(Role.EDITOR)
def confirm(job_id: int) -> ResponseReturnValue:
    """Staff saw the check: import the file."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        _contacts().confirm(job_id, actor=current_staff().actor)
    except LookupError:
        abort(404)
    except ValueError as exc:
        flash(_sentence(str(exc)))
        return redirect(url_for(".job", job_id=job_id), 303)
    _worker().start(job_id)
    return redirect(url_for(".job", job_id=job_id), 303)


@bp.post("/contacts/import/<int:job_id>/discard")
@requires(Role.EDITOR)
def discard(job_id: int) -> ResponseReturnValue:
    """Cancel an import that was not confirmed; its file is deleted."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    _job_or_404(job_id)
    _contacts().discard(job_id)
    flash("The import was cancelled and the file deleted. Nothing was imported.", "success")
    return redirect(url_for(".upload"), 303)
