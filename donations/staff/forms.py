"""Forms of the back office (all CSRF-protected by Flask-WTF)."""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    HiddenField,
    PasswordField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    AnyOf,
    DataRequired,
    Length,
    Optional,
    Regexp,
    ValidationError,
)

from donations.money import InvalidAmount, Money
from donations.staff.models import Role

ATTEMPT = re.compile(r"^[0-9a-f]{32}$")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):
    code = StringField(
        "Six-digit code from your authenticator app",
        validators=[
            DataRequired(),
            Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message="Enter the 6 digits."),
        ],
    )


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class NoteForm(FlaskForm):
    body = TextAreaField("Note", validators=[DataRequired(), Length(max=5000)])


class CancelPlanForm(FlaskForm):
    reason = StringField("Reason", validators=[Optional(), Length(max=200)])


class RefundForm(FlaskForm):
    """Step one: how much. Step two repeats it with ``attempt`` and ``confirm``."""

    amount = StringField(
        "Amount to refund (leave empty for everything left)",
        validators=[Optional(), Length(max=20)],
    )
    reason = StringField("Reason", validators=[Optional(), Length(max=500)])
    attempt = HiddenField(validators=[Optional(), Regexp(ATTEMPT)])
    confirm = HiddenField()

    money: Money | None = None

    def __init__(self, *args: Any, currency: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency

    def validate_amount(self, field: StringField) -> None:
        text = (field.data or "").strip()
        if not text:
            self.money = None
            return
        try:
            self.money = Money.from_major(text, self.currency)
        except InvalidAmount as exc:
            raise ValidationError(f"Enter an amount in {self.currency}, such as 10.00.") from exc
        if self.money.amount <= 0:
            raise ValidationError("The amount must be more than zero.")


class RoleForm(FlaskForm):
    # A plain field checked against the roles: WTForms is phasing out
    # SelectField's tuple choices, and the template lists the roles itself.
    role = StringField("Role", validators=[DataRequired(), AnyOf([r.value for r in Role])])


class SettingsForm(FlaskForm):
    ask = TextAreaField("Ask settings (JSON)", validators=[DataRequired(), Length(max=50_000)])
