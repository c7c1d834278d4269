"""The sign-in and account forms (Flask-WTF: every POST carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import EmailField, PasswordField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from bot.staff.accounts import StaffError, account_problems
from bot.staff.passwords import MAX_LENGTH

# A dict (value: label): WTForms 3.3 deprecates lists of tuples.
ROLE_CHOICES = {"analyst": "Analyst", "editor": "Editor", "admin": "Admin"}
_EMAIL = [DataRequired("Enter your email address."), Length(max=254)]


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=_EMAIL)
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password."), Length(max=MAX_LENGTH)]
    )


class FirstAdminForm(FlaskForm):
    email = EmailField("Email", validators=_EMAIL)
    password = PasswordField(
        "Password",
        description="At least 12 characters. A few unrelated words make a strong password.",
        validators=[DataRequired("Choose a password."), Length(max=MAX_LENGTH)],
    )


class AddStaffForm(FlaskForm):
    # Someone else's account: "your email address" would be wrong here.
    email = EmailField(
        "Email", validators=[DataRequired("Enter their email address."), Length(max=254)]
    )
    role = SelectField(
        "Role",
        choices=ROLE_CHOICES,
        validators=[DataRequired("Choose a role.")],
    )
    password = PasswordField(
        "Password",
        description="At least 12 characters. Give it to them in person; they can change it.",
        validators=[DataRequired("Choose a password."), Length(max=MAX_LENGTH)],
    )


class CodeForm(FlaskForm):
    code = StringField(
        "Code",
        validators=[DataRequired("Enter the code."), Length(max=64)],
    )


class EmptyForm(FlaskForm):
    """A form with nothing but its CSRF token: a button that changes something."""


class ChangePasswordForm(FlaskForm):
    current = PasswordField(
        "Current password",
        validators=[DataRequired("Enter your current password."), Length(max=MAX_LENGTH)],
    )
    new = PasswordField(
        "New password",
        description="At least 12 characters. A few unrelated words make a strong password.",
        validators=[DataRequired("Choose a new password."), Length(max=MAX_LENGTH)],
    )


class RoleForm(FlaskForm):
    role = SelectField(
        "Role",
        choices=ROLE_CHOICES,
        validators=[DataRequired("Choose a role.")],
    )


class RequireCodesForm(FlaskForm):
    required = RadioField(
        "Must everyone use one-time codes?",
        choices={
            "yes": "Yes, everyone signs in with a one-time code",
            "no": "No, it is up to each person",
        },
        validators=[DataRequired("Choose yes or no.")],
    )


class UploadForm(FlaskForm):
    """A contacts file to check and import (docs/console.md, "Contacts")."""

    file = FileField("Contacts file (CSV)")


def show_account_problems(
    form: FirstAdminForm | AddStaffForm, error: StaffError | None = None
) -> None:
    """Every problem of a new account's form at once, each by its field: the service's
    (``error``), or, when the form's own checks failed first, the account rules' for the
    fields those checks passed (a bad email and a short password both show)."""
    if error is None:
        problems = account_problems(form.email.data or "", form.password.data or "")
    else:
        problems = error.problems
        if not problems:
            form.form_errors.append(str(error))
    for name, message in problems.items():
        field = getattr(form, name, None)
        if field is not None and (error is not None or not field.errors):
            field.errors = [message]
