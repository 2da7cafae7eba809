"""Amounts read as people type them, in their locale (Babel, strict)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_decimal
from hypothesis import given, settings
from hypothesis import strategies as st

from donations.money import InvalidAmount, Money, amount_example, exponent, parse_amount

LOCALES = ["en", "ru", "de", "en_GB", "fr", "de_CH"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "KWD"]


@pytest.mark.parametrize(
    ("text", "locale", "minor"),
    [
        ("1,000", "en", 100000),
        ("1,000.50", "en", 100050),
        ("1 000,50", "ru", 100050),
        ("1\u00a0000,50", "ru", 100050),
        ("1000,5", "ru", 100050),
        ("1.000,50", "de", 100050),
        ("12", "de", 1200),
    ],
)
def test_amounts_as_people_write_them(text: str, locale: str, minor: int) -> None:
    assert parse_amount(text, "EUR", locale) == Money(minor, "EUR")


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("5,5", "en"),
        ("1,00,0", "en"),
        ("-5", "en"),
        ("1e9", "en"),
        ("NaN", "en"),
        ("10.005", "en"),
        ("", "ru"),
        ("1.0.0", "de"),
        ("１０", "en"),
    ],
)
def test_ambiguous_or_malformed_amounts_are_refused(text: str, locale: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(text, "EUR", locale)


def test_examples_are_written_in_the_locale() -> None:
    assert amount_example("EUR", "en") == "1,234.50"
    assert amount_example("EUR", "de") == "1.234,50"
    assert amount_example("EUR", "ru").replace("\u00a0", " ") == "1 234,50"
    assert amount_example("JPY", "en") == "1,234"


# No deadline: the first call for a locale loads its CLDR data (hundreds of ms on CI).
@settings(deadline=None)
@given(
    minor=st.integers(min_value=0, max_value=10**12),
    locale=st.sampled_from(LOCALES),
    currency=st.sampled_from(CURRENCIES),
    grouped=st.booleans(),
)
def test_format_then_parse_gives_the_same_minor_units(
    minor: int, locale: str, currency: str, grouped: bool
) -> None:
    money = Money(minor, currency)
    places = exponent(currency)
    pattern = ("#,##0" if grouped else "0") + ("." + "0" * places if places else "")
    text = format_decimal(money.to_major(), format=pattern, locale=locale)
    assert parse_amount(text, currency, locale) == money


# No deadline: the first call for a locale loads its CLDR data (hundreds of ms on CI).
@settings(deadline=None)
@given(
    major=st.integers(min_value=1000, max_value=10**9),
    locale=st.sampled_from(LOCALES),
)
def test_grouping_never_changes_the_magnitude(major: int, locale: str) -> None:
    grouped = format_decimal(Decimal(major), format="#,##0", locale=locale)
    plain = format_decimal(Decimal(major), format="0", locale=locale)
    assert parse_amount(grouped, "USD", locale) == parse_amount(plain, "USD", locale)
    assert parse_amount(grouped, "USD", locale).amount == major * 100
