"""Signing in and out, and the one-time setup link that creates the first admin."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from bot.console import guard
from bot.console.access import SESSION_KEY, audit, audit_held, safe_next
from bot.console.context import console
from bot.console.forms import (
    CodeForm,
    EmptyForm,
    FirstAdminForm,
    SignInForm,
    show_account_problems,
)
from bot.staff.accounts import StaffError, normalise_email
from bot.staff.codes import OneTimeCodes

bp = Blueprint("console_auth", __name__)


def _begin(staff_id: int, *, stage: str) -> None:
    """A fresh session (a new id at every sign-in, nothing kept from before)."""
    session.clear()
    token = console().staff.start_session(
        staff_id, stage=stage, user_agent=request.headers.get("User-Agent", "")
    )
    session[SESSION_KEY] = token
    session.permanent = True


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = SignInForm()
    context = console()
    no_accounts = context.staff.count() == 0
    held = None
    if form.validate_on_submit():
        email = normalise_email(form.email.data or "")
        attempt = guard.attempt("password", email)
        limits = guard.limits()
        turn = limits.reserve(attempt)
        held = turn.wait
        if held is not None:
            # Not even checked: a right guess during the wait would tell the guesser.
            audit_held("sign-in held", turn, email=_known_email(email))
            form.form_errors.append(guard.wait_message(held))
        else:
            staff = context.staff.authenticate(email, form.password.data or "")
            if staff is None:
                audit("sign-in failed", email=_known_email(email))
                form.form_errors.append("Enter a correct email and password.")
            else:
                limits.forgive(attempt, turn)
                stage = "password" if staff.totp_enabled else "signed_in"
                _begin(staff.id, stage=stage)
                g.staff = staff
                target = safe_next(request.args.get("next")) or url_for("console_home.home")
                if stage == "password":
                    audit("password accepted")
                    return redirect(url_for("console_auth.code", next=target), 303)
                context.staff.mark_signed_in(staff.id)
                audit("signed in")
                response = redirect(target, 303)
                guard.remember_device(response, staff.email)
                return response
    status = 429 if held else 400 if form.errors or form.form_errors else 200
    # Where the simulator needs no sign-in (a server that is not public), say where it is.
    server = context.config.server
    simulator_open = server.simulator_enabled and not server.public_url
    page = make_response(
        render_template(
            "console/login.html", form=form, no_accounts=no_accounts, simulator_open=simulator_open
        ),
        status,
    )
    if held:
        page.headers["Retry-After"] = guard.retry_after(held)
    return page


def _known_email(email: str) -> str:
    # The email only when it names an account: anything may be typed there.
    known = console().staff.by_email(email)
    return known.email if known else "(no such account)"


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    token = session.get(SESSION_KEY)
    if isinstance(token, str):
        console().staff.end_session(token)
        audit("signed out")
    session.clear()
    flash("You have signed out.")
    return redirect(url_for("console_auth.login"), 303)


@bp.route("/login/code", methods=["GET", "POST"])
def code() -> ResponseReturnValue:
    """The second step: a code from the app, or a recovery code."""
    pending = g.get("pending_staff")
    if pending is None:
        return redirect(url_for("console_auth.login"))
    context = console()
    form = CodeForm()
    held = None
    if form.validate_on_submit():
        attempt = guard.attempt("code", pending.email)
        limits = guard.limits()
        turn = limits.reserve(attempt)
        held = turn.wait
        if held is not None:
            audit_held("one-time code held", turn)
            form.code.errors = [guard.wait_message(held)]
        else:
            used = OneTimeCodes(context.sessions, context.clock).check(
                pending.id, form.code.data or ""
            )
            if used is None:
                audit("one-time code wrong")
                form.code.errors = [
                    "That code is not right, or has been used. Type the 6 digits the app "
                    "shows now, or one of your recovery codes."
                ]
            else:
                limits.forgive(attempt, turn)
                token = session.get(SESSION_KEY)
                try:
                    new = context.staff.complete_session(str(token))
                except StaffError:
                    session.clear()
                    flash("This sign-in has ended: sign in again.")
                    return redirect(url_for("console_auth.login"), 303)
                session.clear()
                session[SESSION_KEY] = new
                session.permanent = True
                g.staff, g.pending_staff = pending, None
                audit("signed in", method=used)
                if used == "recovery code":
                    left = OneTimeCodes(context.sessions, context.clock).recovery_codes_left(
                        pending.id
                    )
                    flash(
                        f"You signed in with a recovery code. You have {left} left: "
                        "ask an admin to reset your codes if you lost your phone."
                    )
                target = safe_next(request.args.get("next")) or url_for("console_home.home")
                response = redirect(target, 303)
                guard.remember_device(response, pending.email)
                return response
    status = 429 if held else 400 if form.errors else 200
    page = make_response(render_template("console/code.html", form=form), status)
    if held:
        page.headers["Retry-After"] = guard.retry_after(held)
    return page


@bp.route("/setup/<token>", methods=["GET", "POST"])
def setup(token: str) -> ResponseReturnValue:
    context = console()
    if not context.staff.setup_token_valid(token):
        return render_template("console/setup_used.html"), 404
    form = FirstAdminForm()
    if form.validate_on_submit():
        try:
            staff = context.staff.create_first_admin(
                token, form.email.data or "", form.password.data or ""
            )
        except StaffError as error:
            show_account_problems(form, error)
        else:
            _begin(staff.id, stage="signed_in")
            context.staff.mark_signed_in(staff.id)
            flash(f"Welcome. Your admin account {staff.email} is ready.")
            return redirect(url_for("console_home.home"), 303)
    elif form.is_submitted() and "csrf_token" not in form.errors:
        show_account_problems(form)
    status = 400 if form.errors or form.form_errors else 200
    return render_template("console/setup.html", form=form), status
