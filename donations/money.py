"""Money as integer minor units plus an ISO 4217 currency.

Amounts are converted only at the edges: parsing what a reader typed,
talking to Stripe (which also counts in minor units), exports and display.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import (
    NumberFormatError,
    format_compact_currency,
    format_currency,
    format_decimal,
    get_decimal_symbol,
    get_group_symbol,
    parse_decimal,
)

# Currencies Stripe treats as having no minor unit (the amount is in whole
# units): https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
# Three-decimal currencies: https://docs.stripe.com/currencies#three-decimal
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
# Digits before the decimal point in the largest amount we parse (far above any gift,
# far below Decimal's 28-digit default precision).
MAX_MAJOR_DIGITS = 15


class InvalidAmount(ValueError):
    """The text is not an amount of money in this currency."""


class CurrencyMismatch(ValueError):
    """Two amounts of different currencies were combined."""


def exponent(currency: str) -> int:
    """Number of minor-unit digits Stripe uses for ``currency``."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def normalise_currency(code: str) -> str:
    code = code.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise InvalidAmount(f"{code!r} is not an ISO 4217 currency code")
    return code


# Spaces people type where a locale groups digits with a no-break space.
_SPACES = (" ", "\u00a0", "\u202f", "\u2009")


def amount_example(currency: str, locale: str) -> str:
    """An amount as ``locale`` writes it (``1,234.50``, ``1 234,50``), for messages."""
    places = exponent(normalise_currency(currency))
    example = Decimal("1234.5").quantize(Decimal(1).scaleb(-places)) if places else Decimal(1234)
    return format_decimal(
        example, format="#,##0" + ("." + "0" * places if places else ""), locale=locale
    )


def parse_amount(text: str, currency: str, locale: str) -> Money:
    """An amount as a person typed it, read in their ``locale`` (Babel, strict).

    ``1,000`` is a thousand in English, ``1 000,50`` and ``1000,5`` are read
    in Russian, ``1.000,50`` in German. Anything ambiguous or malformed for
    the locale (``5,5`` in English) is refused, never guessed; so are signs,
    exponents and more decimals than the currency has.
    """
    code = normalise_currency(currency)
    raw = text.strip()
    if not raw or len(raw) > 30:
        raise InvalidAmount(f"{text!r} is not an amount")
    decimal_symbol = get_decimal_symbol(locale)
    group_symbol = get_group_symbol(locale)
    if group_symbol in _SPACES:
        for space in _SPACES:
            raw = raw.replace(space, group_symbol)
    allowed = set("0123456789.,") | {decimal_symbol, group_symbol}
    if any(c not in allowed for c in raw):
        raise InvalidAmount(f"{text!r} is not an amount")
    try:
        number = parse_decimal(raw, locale=locale, strict=True)
    except NumberFormatError as exc:
        raise InvalidAmount(f"{text!r} is not an amount") from exc
    return Money.from_major(number, code)


@dataclass(frozen=True, slots=True, order=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount) is not int:
            raise TypeError("Money.amount must be an int of minor units")
        if self.currency != normalise_currency(self.currency):
            raise InvalidAmount(f"{self.currency!r} is not an upper-case ISO 4217 code")

    @classmethod
    def from_major(cls, value: str | int | Decimal, currency: str) -> Money:
        """Parse a major-unit amount in its machine form, ``"10"`` or ``"10.50"``, exactly.

        For values we wrote ourselves (form fields, links, exports): a comma is
        refused, never read as a decimal point, since ``1,000`` is a thousand
        to an English reader. What a person typed goes through
        :func:`parse_amount`, in their locale. More decimals than the currency
        has, NaN, infinities and exponents are refused rather than rounded:
        the reader must see what they pay.
        """
        code = normalise_currency(currency)
        if isinstance(value, str):
            text = value.strip()
            if not text or any(c not in "0123456789." for c in text) or text.count(".") > 1:
                raise InvalidAmount(f"{value!r} is not an amount")
            try:
                number = Decimal(text)
            except InvalidOperation as exc:
                raise InvalidAmount(f"{value!r} is not an amount") from exc
        else:
            number = Decimal(value)
        if not number.is_finite():
            raise InvalidAmount(f"{value!r} is not an amount")
        places = exponent(code)
        if number.adjusted() > MAX_MAJOR_DIGITS:
            # More digits than any gift and than Decimal's default precision:
            # scaleb() would round, then fail.
            raise InvalidAmount("the amount is too large")
        minor = number.scaleb(places)
        if minor != minor.to_integral_value():
            raise InvalidAmount(f"{value!r} has more than {places} decimals")
        return cls(int(minor), code)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, normalise_currency(currency))

    def to_major(self) -> Decimal:
        places = exponent(self.currency)
        return Decimal(self.amount).scaleb(-places).quantize(Decimal(1).scaleb(-places))

    def major_text(self) -> str:
        """Plain major units, e.g. ``"10.50"``: for exports and form values."""
        return str(self.to_major())

    def format(self, locale: str = "en") -> str:
        """Localised display, e.g. ``$10.50`` or ``10,50 €`` (CLDR digits)."""
        return format_currency(self.to_major(), self.currency, locale=locale)

    def format_compact(self, locale: str = "en") -> str:
        """Short display for chart axes, e.g. ``$2.5M`` or ``2,5 млн €``."""
        return format_compact_currency(
            self.to_major(), self.currency, locale=locale, fraction_digits=1
        )

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def percent(self, basis_points: int) -> Money:
        """This amount times ``basis_points``/10,000, rounded half up."""
        value = (Decimal(self.amount) * basis_points / 10_000).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
        return Money(int(value), self.currency)

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency}")
