"""Every member's own account: change the password, set up one-time codes, see and end
their sessions (docs/console.md, "Accounts and roles")."""

from __future__ import annotations

from flask import (
    Blueprint,
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
from bot.console.access import SESSION_KEY, Role, audit, audit_held, current_staff, requires
from bot.console.context import console
from bot.console.forms import ChangePasswordForm, CodeForm, EmptyForm
from bot.staff.accounts import StaffError
from bot.staff.codes import CodesError, OneTimeCodes

bp = Blueprint("console_account", __name__)


def _codes() -> OneTimeCodes:
    context = console()
    return OneTimeCodes(context.sessions, context.clock)


def _page(password_form: ChangePasswordForm, status: int = 200) -> ResponseReturnValue:
    me = current_staff()
    context = console()
    return (
        render_template(
            "console/account.html",
            me=context.staff.get(me.id),
            password_form=password_form,
            sign_out_form=EmptyForm(),
            sessions=context.staff.sessions_of(me.id),
            current_session=g.get("session_id"),
            codes_required=_codes().required(),
            recovery_left=_codes().recovery_codes_left(me.id) if me.totp_enabled else 0,
        ),
        status,
    )


@bp.get("/account")
@requires(Role.ANALYST)
def account() -> ResponseReturnValue:
    return _page(ChangePasswordForm(formdata=None))


@bp.post("/account/password")
@requires(Role.ANALYST)
def change_password() -> ResponseReturnValue:
    me = current_staff()
    context = console()
    form = ChangePasswordForm()
    if form.validate_on_submit():
        # The same limits as signing in: a stolen session must not guess the password here.
        attempt = guard.attempt("password", me.email)
        limits = guard.limits()
        turn = limits.reserve(attempt)
        held = turn.wait
        if held is not None:
            form.current.errors = [guard.wait_message(held)]
            audit_held("password change held", turn)
            return _page(form, 429)
        if context.staff.authenticate(me.email, form.current.data or "") is None:
            form.current.errors = ["Your current password is not right."]
            audit("password change refused")
        else:
            limits.forgive(attempt, turn)
            try:
                context.staff.set_password(me.id, form.new.data or "", actor=me.actor)
            except StaffError as error:
                form.new.errors = [str(error)]
            else:
                # Every session ended, this one too: a fresh one keeps this browser in.
                token = context.staff.start_session(
                    me.id, stage="signed_in", user_agent=_user_agent()
                )
                session.clear()
                session[SESSION_KEY] = token
                session.permanent = True
                flash("Your password has changed. You are signed out everywhere else.")
                return redirect(url_for("console_account.account"), 303)
    return _page(form, 400)


@bp.post("/account/sign-out-everywhere")
@requires(Role.ANALYST)
def sign_out_elsewhere() -> ResponseReturnValue:
    me = current_staff()
    token = session.get(SESSION_KEY)
    ended = console().staff.end_sessions(
        me.id, actor=me.actor, keep=token if isinstance(token, str) else None
    )
    flash(f"Signed out everywhere else ({ended} {'session' if ended == 1 else 'sessions'}).")
    return redirect(url_for("console_account.account"), 303)


@bp.route("/account/codes", methods=["GET", "POST"])
@requires(Role.ANALYST, codes_first=False)
def codes() -> ResponseReturnValue:
    """Set up one-time codes: scan or type the secret, then type a first code."""
    me = current_staff()
    if me.totp_enabled:
        return render_template("console/codes_on.html", left=_codes().recovery_codes_left(me.id))
    form = CodeForm()
    try:
        setup = _codes().setup(me.id)
    except CodesError as error:  # pragma: no cover - codes turned on in another tab
        flash(str(error))
        return redirect(url_for("console_account.account"))
    if form.validate_on_submit():
        try:
            recovery = _codes().confirm(me.id, form.code.data or "", actor=me.actor)
        except CodesError as error:
            form.code.errors = [str(error)]
        else:
            # Shown once, never stored in the clear nor cached.
            response = make_response(render_template("console/recovery.html", codes=recovery))
            response.headers["Cache-Control"] = "no-store"
            return response
    status = 400 if form.errors else 200
    required = _codes().required()
    response = make_response(
        render_template("console/codes_setup.html", form=form, setup=setup, required=required),
        status,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _user_agent() -> str:
    return request.headers.get("User-Agent", "")
