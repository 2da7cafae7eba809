"""Forms of the ask and the checkout."""

from __future__ import annotations

import re
from typing import Any

from babel import Locale
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from donations.ask.config import AskConfig, GiftError, parse_gift
from donations.forms import email_validators
from donations.money import Money

_ATTEMPT = re.compile(r"^[0-9a-f]{32}$")


class GiftMixin:
    """The gift as hidden or visible fields, decided by :func:`parse_gift`."""

    frequency = HiddenField()
    currency = HiddenField()
    amount = HiddenField()

    gift: Money | None = None

    def validate_gift(self, config: AskConfig, locale: str | None = None) -> bool:
        try:
            self.gift = parse_gift(
                config,
                self.frequency.data or "",
                self.currency.data or "",
                self.amount.data or "",
                locale,
            )
        except GiftError as exc:
            field = getattr(self, exc.field)
            field.errors = [*field.errors, str(exc)]
            return False
        return True

    def gift_errors(self) -> dict[str, list[str]]:
        """The reasons the gift was refused, by the choice each concerns."""
        fields = {"frequency": self.frequency, "currency": self.currency, "amount": self.amount}
        return {
            name: [str(e) for e in field.errors] for name, field in fields.items() if field.errors
        }


class ChooseGiftForm(GiftMixin, FlaskForm):
    """Step one, submitted by GET: it only chooses, it creates nothing.

    CSRF is off for this form alone because a GET must not change state and
    this one does not; the POST that creates a payment is protected.
    """

    class Meta:
        csrf = False

    def validate_with(self, config: AskConfig, locale: str | None = None) -> bool:
        """``locale``: the amount is one the reader typed, read in their locale."""
        return self.validate() & self.validate_gift(config, locale)


def _countries() -> list[tuple[str, str]]:
    locale = get_locale() or Locale("en")
    names: dict[str, str] = {str(k): str(v) for k, v in locale.territories.items()}
    codes = sorted(
        (
            c
            for c in names
            if len(c) == 2 and c.isalpha() and c not in {"ZZ", "EU", "UN", "EZ", "QO"}
        ),
        key=lambda c: names[c],
    )
    return [("", "—")] + [(code, names[code]) for code in codes]


class DetailsForm(GiftMixin, FlaskForm):
    attempt = HiddenField(validators=[DataRequired()])
    # The signed reminder link the reader came through, if any (checked on use).
    reminder = HiddenField(validators=[Optional(), Length(max=300)])
    # Where the reader was asked (donations.supporters.attribution); cleaned on use.
    article = HiddenField()
    campaign = HiddenField()
    variant = HiddenField()
    source = HiddenField()
    upsell = HiddenField()
    email = EmailField(
        _l("Email"),
        validators=email_validators(_l("Enter your email address so we can send your receipt.")),
    )
    name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    country = SelectField(_l("Country"), validators=[Optional()], validate_choice=True)
    newsletter = BooleanField(_l("Send me the newsletter"), default=False)
    cover_fee = BooleanField(default=False)
    # The method the reader will pay by, when covering the fee and several are offered.
    cover_method = StringField(validators=[Optional(), Length(max=30)])
    # A honeypot: hidden from people (CSS and aria-hidden), filled in by bots.
    website = StringField(validators=[Optional(), Length(max=200)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.country.choices = _countries()

    def validate_attempt(self, field: HiddenField) -> None:
        if not _ATTEMPT.match(field.data or ""):
            from wtforms import ValidationError

            raise ValidationError(_l("This form has expired. Please start again."))

    def validate_with(self, config: AskConfig, locale: str | None = None) -> bool:
        """``locale``: the amount is one the reader typed, read in their locale."""
        return self.validate() & self.validate_gift(config, locale)
