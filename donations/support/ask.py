"""The ask's configuration: appeal copy, currencies, amounts and limits.

Stored as data (the ``ask`` setting) so an admin can change amounts without
a deploy; amounts are integer minor units throughout.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import get_territory_currencies
from flask_babel import gettext as _

from donations.money import InvalidAmount, Money
from donations.supporters.models import Frequency


@dataclass(frozen=True)
class AmountRule:
    presets: tuple[int, ...]
    default: int
    minimum: int
    maximum: int


@dataclass(frozen=True)
class AskConfig:
    headline: Mapping[str, str]
    appeal: Mapping[str, str]
    default_frequency: Frequency
    default_currency: str
    # currency -> frequency -> rule
    amounts: Mapping[str, Mapping[Frequency, AmountRule]]
    # method -> currencies it is offered in ("*" for all); order is display order
    methods: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"card": ("*",)})
    # Processing fee a reader may choose to cover, in basis points (0 = not offered).
    fee_cover_bps: int = 0
    # Identifies these settings' content (for caches keyed on it).
    fingerprint: str = ""

    def methods_for(self, currency: str, frequency: Frequency) -> list[str]:
        return [
            method
            for method, currencies in self.methods.items()
            if "*" in currencies or currency in currencies
        ]

    @property
    def currencies(self) -> list[str]:
        return list(self.amounts)

    def rule(self, currency: str, frequency: Frequency) -> AmountRule | None:
        return self.amounts.get(currency, {}).get(frequency)

    def text(self, field: Mapping[str, str], locale: str) -> str:
        return field.get(locale) or field.get("en") or next(iter(field.values()), "")

    def currency_for(self, locale_tags: list[str]) -> str:
        """The first configured currency of the reader's preferred regions."""
        for tag in locale_tags[:5]:
            for code in _territory_currencies(tag[:35]):
                if code in self.amounts:
                    return code
        return self.default_currency

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> AskConfig:
        amounts: dict[str, dict[Frequency, AmountRule]] = {}
        for currency, by_frequency in data["amounts"].items():
            amounts[currency] = {
                Frequency(freq): AmountRule(
                    presets=tuple(int(p) for p in rule["presets"]),
                    default=int(rule["default"]),
                    minimum=int(rule["minimum"]),
                    maximum=int(rule["maximum"]),
                )
                for freq, rule in by_frequency.items()
            }
        return cls(
            headline=dict(data["headline"]),
            appeal=dict(data["appeal"]),
            default_frequency=Frequency(data.get("default_frequency", "monthly")),
            default_currency=data["default_currency"],
            amounts=amounts,
            methods={
                str(m): tuple(str(c) for c in cs)
                for m, cs in data.get("methods", {"card": ["*"]}).items()
            },
            fee_cover_bps=int(data.get("fee_cover_bps", 0)),
            fingerprint=hashlib.sha256(
                json.dumps(data, sort_keys=True, default=str).encode()
            ).hexdigest()[:16],
        )


@lru_cache(maxsize=1024)
def _territory_currencies(tag: str) -> tuple[str, ...]:
    """Currencies in use where a language tag such as ``de-AT`` points (none without a region)."""
    try:
        territory = Locale.parse(tag.replace("-", "_")).territory
    except (UnknownLocaleError, ValueError):
        return ()
    return tuple(get_territory_currencies(territory)) if territory else ()


def _rule(presets: list[int], default: int, minimum: int, maximum: int) -> dict[str, Any]:
    return {"presets": presets, "default": default, "minimum": minimum, "maximum": maximum}


# What `make run` seeds, and what a new installation starts from.
DEMO_ASK: dict[str, Any] = {
    "headline": {
        "en": "Independent journalism needs your support",
        "ru": "Независимой журналистике нужна ваша поддержка",
    },
    "appeal": {
        "en": (
            "We answer to our readers, not to owners or advertisers. "
            "If you value what we publish, help us keep it free for everyone."
        ),
        "ru": (
            "Мы отвечаем перед читателями, а не перед владельцами или рекламодателями. "
            "Если вы цените нашу работу, помогите сохранить её бесплатной для всех."
        ),
    },
    "default_frequency": "monthly",
    "default_currency": "USD",
    # Card (with wallets, via the Payment Element) everywhere; SEPA Direct
    # Debit for euros.
    "methods": {"card": ["*"], "sepa_debit": ["EUR"]},
    # 2.9% + a little: what covering the fee adds, shown before paying.
    "fee_cover_bps": 300,
    "amounts": {
        code: {
            "once": _rule([1000, 2500, 5000, 10000], 2500, 100, 1_000_000),
            "monthly": _rule([500, 1000, 2000, 5000], 1000, 200, 100_000),
            "annual": _rule([5000, 10000, 20000, 50000], 10000, 1000, 1_000_000),
        }
        for code in ("USD", "EUR", "GBP")
    },
}


class GiftError(ValueError):
    """A reader-facing reason why the chosen gift cannot be accepted."""


def parse_gift(config: AskConfig, frequency: str, currency: str, amount: str) -> Money:
    """Decide the gift from what the reader sent; raise GiftError with a message."""
    try:
        freq = Frequency(frequency)
    except ValueError:
        raise GiftError(_("Choose how often you would like to give.")) from None
    code = (currency or "").strip().upper()
    rule = config.rule(code, freq)
    if rule is None:
        raise GiftError(_("Choose one of the currencies offered."))
    if len(amount or "") > 20:
        raise GiftError(_("Enter an amount such as 10 or 12.50."))
    try:
        money = Money.from_major(amount or "", code)
    except InvalidAmount:
        raise GiftError(_("Enter an amount such as 10 or 12.50.")) from None
    if money.amount < rule.minimum:
        raise GiftError(
            _("The smallest gift is %(amount)s.", amount=_display(Money(rule.minimum, code)))
        )
    if money.amount > rule.maximum:
        raise GiftError(
            _("The largest gift online is %(amount)s.", amount=_display(Money(rule.maximum, code)))
        )
    return money


def _display(money: Money) -> str:
    from flask_babel import get_locale

    locale = get_locale()
    return money.format(str(locale) if locale else "en")
