"""Forms of the back office (all CSRF-protected by Flask-WTF)."""

from __future__ import annotations

import math
import re
from typing import Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
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

from donations.money import InvalidAmount, Money, amount_example, parse_amount
from donations.staff.models import Role

# The back office speaks English, so staff amounts are read as English writes them.
STAFF_LOCALE = "en"

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
            self.money = parse_amount(text, self.currency, staff_locale())
        except InvalidAmount as exc:
            example = amount_example(self.currency, staff_locale())
            raise ValidationError(
                f"Enter an amount in {self.currency}, such as {example}."
            ) from exc
        if self.money.amount <= 0:
            raise ValidationError("The amount must be more than zero.")


def staff_locale() -> str:
    """The signed-in staff member's language (the back office's locale selector)."""
    return str(get_locale() or STAFF_LOCALE)


# The languages a staff member may choose for the back office, named in their own.
STAFF_LANGUAGES = {"en": "English", "ru": "Русский"}


class AccountForm(FlaskForm):
    locale = StringField("Language", validators=[DataRequired(), AnyOf(list(STAFF_LANGUAGES))])


class RoleForm(FlaskForm):
    # A plain field checked against the roles: WTForms is phasing out
    # SelectField's tuple choices, and the template lists the roles itself.
    role = StringField("Role", validators=[DataRequired(), AnyOf([r.value for r in Role])])


class SettingsForm(FlaskForm):
    ask = TextAreaField("Ask settings (JSON)", validators=[DataRequired(), Length(max=50_000)])


def _percent(text: str | None) -> float | None:
    """A percentage as staff type it ("2", "2.5", "2,5") as a fraction, or None."""
    try:
        number = float((text or "").strip().replace(",", ".").rstrip("%").strip())
    except ValueError:
        return None
    return number / 100 if math.isfinite(number) and 0 < number < 10_000 else None


class PercentField(StringField):
    """A percentage; ``fraction`` holds it divided by 100 once validated."""

    fraction: float | None = None

    def pre_validate(self, form: Any) -> None:
        self.fraction = _percent(self.data)
        if self.fraction is None:
            raise ValidationError(str(_l("Enter a percentage such as 2 or 2.5.")))


EXAMPLE_VARIANTS = """[
  {"key": "control", "share": 50},
  {"key": "urgent", "share": 50,
   "headline": {"en": "We are short this month", "ru": "Нам не хватает в этом месяце"},
   "default_frequency": "once", "upsell": true,
   "presets": {"USD": {"once": {"presets": [1500, 3000, 6000], "default": 3000}}}}
]"""


class ExperimentForm(FlaskForm):
    """An A/B test of the ask (its variants as JSON, like the ask's settings)."""

    slug = StringField(
        _l("Name (goes into the variant's attribution)"),
        validators=[
            DataRequired(),
            Regexp(r"^[a-z0-9][a-z0-9-]{0,29}$", message=_l("Up to 30 of a-z, 0-9 and -.")),
        ],
    )
    title = StringField(_l("What is tested"), validators=[DataRequired(), Length(max=200)])
    baseline = PercentField(_l("Control's expected conversion rate, %"), default="2")
    mde = PercentField(_l("Smallest lift worth detecting (relative), %"), default="20")
    alpha = PercentField(_l("Significance level (alpha), %"), default="5")
    power = PercentField(_l("Power, %"), default="80")
    margin = PercentField(
        _l("Guardrail: stop a variant converting worse than control by, %"), default="20"
    )
    minimum = StringField(
        _l("Guardrail: impressions per variant before it may stop one"),
        default="1000",
        validators=[Regexp(r"^\s*[1-9][0-9]{0,8}\s*$", message=_l("A whole number."))],
    )
    variants = TextAreaField(
        _l("Variants (JSON; the first is control, shares in percent add up to 100)"),
        default=EXAMPLE_VARIANTS,
        validators=[DataRequired(), Length(max=20_000)],
    )
