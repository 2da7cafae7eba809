from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from donations.money import CurrencyMismatch, InvalidAmount, Money, exponent

currencies = st.sampled_from(["USD", "EUR", "GBP", "JPY", "KWD", "RUB"])


@given(amount=st.integers(min_value=0, max_value=10**12), currency=currencies)
def test_major_text_round_trips(amount: int, currency: str) -> None:
    money = Money(amount, currency)
    assert Money.from_major(money.major_text(), currency) == money


@given(a=st.integers(-(10**9), 10**9), b=st.integers(-(10**9), 10**9), currency=currencies)
def test_addition_is_exact_integer_arithmetic(a: int, b: int, currency: str) -> None:
    assert (Money(a, currency) + Money(b, currency)).amount == a + b
    assert (Money(a, currency) - Money(b, currency)).amount == a - b


@given(amount=st.integers(0, 10**9), bps=st.integers(0, 10_000))
def test_percent_rounds_half_up_and_stays_in_range(amount: int, bps: int) -> None:
    part = Money(amount, "EUR").percent(bps)
    assert 0 <= part.amount <= amount
    assert abs(part.amount * 10_000 - amount * bps) <= 5_000


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("10", "USD", 1000),
        ("10.5", "usd", 1050),
        ("0.01", "EUR", 1),
        ("1000", "JPY", 1000),
        ("1.234", "KWD", 1234),
    ],
)
def test_parses_major_units(text: str, currency: str, minor: int) -> None:
    assert Money.from_major(text, currency).amount == minor


@pytest.mark.parametrize(
    "text", ["", "abc", "NaN", "inf", "1e9", "-5", "10.005", "1.2.3", " ", "0x10", "١٠"]
)
def test_refuses_what_is_not_an_amount(text: str) -> None:
    with pytest.raises(InvalidAmount):
        Money.from_major(text, "USD")


def test_zero_decimal_currency_refuses_fractions() -> None:
    assert exponent("JPY") == 0
    with pytest.raises(InvalidAmount):
        Money.from_major("10.5", "JPY")


def test_refuses_floats_and_bad_codes() -> None:
    with pytest.raises(TypeError):
        Money(10.5, "USD")
    with pytest.raises(InvalidAmount):
        Money(1, "usd")
    with pytest.raises(InvalidAmount):
        Money.from_major("1", "US")


def test_mixing_currencies_raises() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(1, "USD") + Money(1, "EUR")


def test_display_is_localised() -> None:
    assert Money(1050, "USD").format("en") == "$10.50"
    assert Money(1050, "EUR").format("ru").replace("\xa0", " ") == "10,50 €"
    assert Money(1000, "JPY").format("en") == "¥1,000"
    assert Money(1050, "USD").to_major() == Decimal("10.50")


@pytest.mark.parametrize("text", ["1,000", "10,50", "1.000,50", "1 000", "+10", "-1", "1e3"])
def test_from_major_takes_only_the_machine_form(text: str) -> None:
    """A comma is never a decimal point here: "1,000" was once read as 1.00."""
    with pytest.raises(InvalidAmount):
        Money.from_major(text, "USD")


def test_from_major_reads_the_machine_form_exactly() -> None:
    assert Money.from_major("1000", "USD") == Money(100000, "USD")
    assert Money.from_major("10.5", "EUR") == Money(1050, "EUR")
    assert Money.from_major(" 7 ", "JPY") == Money(7, "JPY")
