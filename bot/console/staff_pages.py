"""The Staff page (admins): accounts, roles, one-time codes, sessions (docs/console.md).

Every change goes through :class:`~bot.staff.accounts.StaffAccounts` or
:class:`~bot.staff.codes.OneTimeCodes`, as ``voxpop staff`` does, and is audited there.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from bot.console.access import Role, current_staff, requires
from bot.console.context import console
from bot.console.forms import AddStaffForm, RequireCodesForm, RoleForm, show_account_problems
from bot.staff.accounts import StaffError, StaffView, parse_role
from bot.staff.codes import OneTimeCodes

bp = Blueprint("console_staff", __name__)


def _codes() -> OneTimeCodes:
    context = console()
    return OneTimeCodes(context.sessions, context.clock)


def _member(staff_id: int) -> StaffView:
    member = console().staff.get(staff_id)
    if member is None:
        abort(404)
    return member


@bp.get("/staff")
@requires(Role.ADMIN)
def staff_list() -> ResponseReturnValue:
    required = _codes().required()
    form = RequireCodesForm(formdata=None, data={"required": "yes" if required else "no"})
    return render_template(
        "console/staff.html", everyone=console().staff.all(), require_form=form, required=required
    )


@bp.post("/staff/codes-required")
@requires(Role.ADMIN)
def codes_required() -> ResponseReturnValue:
    form = RequireCodesForm()
    if not form.validate_on_submit():
        flash("Choose yes or no.")
        return redirect(url_for("console_staff.staff_list"), 303)
    required = form.required.data == "yes"
    _codes().set_required(required, actor=current_staff().actor)
    flash(
        "Everyone must now sign in with a one-time code. Those without codes set them up "
        "at their next page."
        if required
        else "One-time codes are now up to each person."
    )
    return redirect(url_for("console_staff.staff_list"), 303)


@bp.route("/staff/add", methods=["GET", "POST"])
@requires(Role.ADMIN)
def add() -> ResponseReturnValue:
    form = AddStaffForm()
    if form.validate_on_submit():
        try:
            added = console().staff.add(
                form.email.data or "",
                form.password.data or "",
                parse_role(form.role.data or ""),
                actor=current_staff().actor,
            )
        except StaffError as error:
            show_account_problems(form, error)
        else:
            flash(
                f"Added {added.email} as {added.role.label.lower()}. "
                "Give them their password in person."
            )
            return redirect(url_for("console_staff.staff_list"), 303)
    elif form.is_submitted() and "csrf_token" not in form.errors:
        show_account_problems(form)
    status = 400 if form.errors or form.form_errors else 200
    return render_template("console/staff_add.html", form=form), status


@bp.get("/staff/<int:staff_id>")
@requires(Role.ADMIN)
def member(staff_id: int) -> ResponseReturnValue:
    found = _member(staff_id)
    return render_template(
        "console/staff_member.html",
        member=found,
        role_form=RoleForm(formdata=None, data={"role": found.role.value}),
        sessions=console().staff.sessions_of(found.id),
        me=current_staff(),
    )


def _change(staff_id: int, done: str) -> ResponseReturnValue:
    flash(done)
    return redirect(url_for("console_staff.member", staff_id=staff_id), 303)


def _sessions(count: int) -> str:
    return f"{count} {'session' if count == 1 else 'sessions'}"


def _refused(staff_id: int, error: StaffError) -> ResponseReturnValue:
    flash(str(error))
    return redirect(url_for("console_staff.member", staff_id=staff_id), 303)


@bp.post("/staff/<int:staff_id>/role")
@requires(Role.ADMIN)
def change_role(staff_id: int) -> ResponseReturnValue:
    found = _member(staff_id)
    form = RoleForm()
    if not form.validate_on_submit():
        flash("Choose admin, editor or analyst.")
        return redirect(url_for("console_staff.member", staff_id=staff_id), 303)
    try:
        changed = console().staff.set_role(
            found.email, parse_role(form.role.data or ""), actor=current_staff().actor
        )
    except StaffError as error:
        return _refused(staff_id, error)
    return _change(staff_id, f"{changed.email} is now {changed.role.label.lower()}.")


@bp.post("/staff/<int:staff_id>/disable")
@requires(Role.ADMIN)
def disable(staff_id: int) -> ResponseReturnValue:
    found = _member(staff_id)
    try:
        console().staff.disable(found.email, actor=current_staff().actor)
    except StaffError as error:
        return _refused(staff_id, error)
    return _change(
        staff_id, f"{found.email} is disabled: they cannot sign in, and their sessions have ended."
    )


@bp.post("/staff/<int:staff_id>/enable")
@requires(Role.ADMIN)
def enable(staff_id: int) -> ResponseReturnValue:
    found = _member(staff_id)
    console().staff.enable(found.email, actor=current_staff().actor)
    return _change(staff_id, f"{found.email} can sign in again.")


@bp.post("/staff/<int:staff_id>/reset-codes")
@requires(Role.ADMIN)
def reset_codes(staff_id: int) -> ResponseReturnValue:
    found = _member(staff_id)
    _codes().reset(found.id, actor=current_staff().actor)
    return _change(
        staff_id,
        f"One-time codes of {found.email} are reset: they sign in with their password and "
        "set up codes again.",
    )


@bp.post("/staff/<int:staff_id>/sign-out")
@requires(Role.ADMIN)
def sign_out(staff_id: int) -> ResponseReturnValue:
    found = _member(staff_id)
    ended = console().staff.end_sessions(found.id, actor=current_staff().actor)
    return _change(
        staff_id,
        f"{found.email} is signed out everywhere ({_sessions(ended)}).",
    )
