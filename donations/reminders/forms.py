"""The "Remind me later" form and the unsubscribe confirmation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, RadioField
from wtforms.validators import DataRequired

from donations.ask.config import AskConfig, GiftError, parse_gift
from donations.forms import email_validators
from donations.reminders.services import DEFAULT_MONTHS, REMINDER_MONTHS, Prefill, due_dates
from donations.supporters.models import Frequency


def months_label(months: int) -> str:
    if months == 1:
        return str(_l("In a month"))
    return ngettext("In %(num)d month", "In %(num)d months", months)


class ReminderForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=email_validators(_l("Enter your email address so we can remind you.")),
    )
    months = RadioField(
        _l("When should we remind you?"),
        default=str(DEFAULT_MONTHS),
        validators=[DataRequired(_l("Choose when we should remind you."))],
    )
    # What the reader was looking at on the ask; each part is kept if valid.
    frequency = HiddenField()
    currency = HiddenField()
    amount = HiddenField()
    source = HiddenField()
    article = HiddenField()
    campaign = HiddenField()
    variant = HiddenField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.due = due_dates()
        self.months.choices = [(str(m), months_label(m)) for m in REMINDER_MONTHS]

    def prefill(self, config: AskConfig) -> Prefill:
        """The gift the reader was looking at, as far as it is valid (never an error)."""
        frequency = self.frequency.data if self.frequency.data in set(Frequency) else None
        currency = (self.currency.data or "").strip().upper()
        if currency not in config.currencies:
            return Prefill(frequency=Frequency(frequency) if frequency else None)
        amount: int | None = None
        if frequency and self.amount.data:
            try:
                amount = parse_gift(config, frequency, currency, self.amount.data[:20]).amount
            except GiftError:
                amount = None
        return Prefill(
            frequency=Frequency(frequency) if frequency else None,
            currency=currency,
            amount=amount,
        )

    def source_url(self) -> str | None:
        """The page the reader came from, when it is a plausible http(s) URL."""
        source = (self.source.data or "").strip()
        if not source or len(source) > 500:
            return None
        try:
            scheme = urlsplit(source).scheme
        except ValueError:  # "http://[" and the like: not a URL
            return None
        if scheme not in ("http", "https"):
            return None
        return source


class UnsubscribeForm(FlaskForm):
    """The confirmation button on the page an unsubscribe link opens (CSRF-protected)."""
