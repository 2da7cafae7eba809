"""The portal's forms: every one carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

from flask import request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField

from donations.forms import email_validators

EMAIL_VALIDATORS = email_validators(
    _l("Enter your email address."), too_long=_l("That address is too long.")
)


class SignInForm(FlaskForm):
    email = EmailField(_l("Email"), validators=EMAIL_VALIDATORS)


class ActionForm(FlaskForm):
    """A button that changes something (sign out, continue with a link...): CSRF only."""


class EmailChangeForm(FlaskForm):
    email = EmailField(_l("New email address"), validators=EMAIL_VALIDATORS)


def typed_amount() -> str:
    """The posted form's amount as typed (a plan change parses it against the ask's
    limits), cut to 40 characters: no amount we accept is written longer."""
    return (request.form.get("amount") or "")[:40]
