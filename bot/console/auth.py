"""Signing in and out, and the one-time setup link that creates the first admin."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from bot.console.access import SESSION_KEY, audit, safe_next
from bot.console.context import console
from bot.console.forms import EmptyForm, FirstAdminForm, SignInForm
from bot.staff.accounts import StaffError

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
    if form.validate_on_submit():
        email = form.email.data or ""
        staff = context.staff.authenticate(email, form.password.data or "")
        if staff is None:
            # The email only when it names an account: anything may be typed there.
            known = context.staff.by_email(email)
            audit("sign-in failed", email=known.email if known else "(no such account)")
            form.form_errors.append("Enter a correct email and password.")
        else:
            stage = "password" if staff.totp_enabled else "signed_in"
            _begin(staff.id, stage=stage)
            if stage == "signed_in":
                context.staff.mark_signed_in(staff.id)
            g.staff = staff
            audit("signed in" if stage == "signed_in" else "password accepted")
            target = safe_next(request.args.get("next")) or url_for("console_home.home")
            if stage == "password":
                return redirect(url_for("console_auth.code", next=target), 303)
            return redirect(target, 303)
    status = 400 if form.errors or form.form_errors else 200
    # Where the simulator needs no sign-in (a server that is not public), say where it is.
    server = context.config.server
    simulator_open = server.simulator_enabled and not server.public_url
    page = render_template(
        "console/login.html", form=form, no_accounts=no_accounts, simulator_open=simulator_open
    )
    return page, status


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
    # The one-time code step; built with the codes themselves (bot.console.codes).
    return redirect(url_for("console_auth.login"))


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
            target = getattr(form, error.field or "", None)
            if target is not None:
                target.errors = [str(error)]
            else:
                form.form_errors.append(str(error))
        else:
            _begin(staff.id, stage="signed_in")
            context.staff.mark_signed_in(staff.id)
            flash(f"Welcome. Your admin account {staff.email} is ready.")
            return redirect(url_for("console_home.home"), 303)
    status = 400 if form.errors or form.form_errors else 200
    return render_template("console/setup.html", form=form), status
