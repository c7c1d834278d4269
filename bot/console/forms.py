"""The sign-in and account forms (Flask-WTF: every POST carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from bot.staff.passwords import MAX_LENGTH

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
    email = EmailField("Email", validators=_EMAIL)
    role = SelectField(
        "Role",
        choices=[("analyst", "Analyst"), ("editor", "Editor"), ("admin", "Admin")],
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
