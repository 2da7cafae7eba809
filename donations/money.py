"""Money as integer minor units plus an ISO 4217 currency.

Amounts are converted only at the edges: parsing what a reader typed,
talking to Stripe (which also counts in minor units), exports and display.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency

# Currencies Stripe treats as having no minor unit (the amount is in whole
# units): https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
# Three-decimal currencies: https://docs.stripe.com/currencies#three-decimal
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])


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
        """Parse a major-unit amount such as ``"10"`` or ``"10.50"`` exactly.

        More decimals than the currency has, NaN, infinities and exponents
        are refused rather than rounded: the reader must see what they pay.
        """
        code = normalise_currency(currency)
        if isinstance(value, str):
            text = value.strip().replace(",", ".")
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
