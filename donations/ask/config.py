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

from donations.money import InvalidAmount, Money, amount_example, parse_amount
from donations.payments.pricing import Price, price_for, pricing_from_data
from donations.supporters.models import Frequency


@dataclass(frozen=True)
class AmountRule:
    presets: tuple[int, ...]
    default: int
    minimum: int
    maximum: int


# View caps, kept in the reader's browser (localStorage on the article's origin):
# the ask shows at most ``views`` times per ``period_days``, not for
# ``dismiss_days`` after the reader closes it, and not for ``supporter_days``
# after they gave (the mark set on the thank-you page).
EMBED_DEFAULTS: dict[str, int] = {
    "views": 3,
    "period_days": 7,
    "dismiss_days": 30,
    "supporter_days": 365,
}


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
    # Whether a reader may choose to cover the processing fee, and the
    # processor's price per method and currency (donations.payments.pricing).
    fee_cover: bool = False
    fees: Mapping[str, Mapping[str, Price]] = field(default_factory=lambda: pricing_from_data(None))
    # Identifies these settings' content (for caches keyed on it).
    fingerprint: str = ""
    # The embed's own settings (view caps; see EMBED_DEFAULTS).
    embed: Mapping[str, Any] = field(default_factory=dict)

    def embed_caps(self) -> dict[str, int]:
        """The embed's view caps: the defaults, with valid overrides from the settings."""
        caps = dict(EMBED_DEFAULTS)
        for key in caps:
            value = self.embed.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000:
                caps[key] = value
        return caps

    def methods_for(self, currency: str, frequency: Frequency) -> list[str]:
        return [
            method
            for method, currencies in self.methods.items()
            if "*" in currencies or currency in currencies
        ]

    def fee_cover_for(self, gift: Money, method: str) -> Money | None:
        """What covering the fee adds to ``gift`` paid by ``method``; None when not offered.

        The gross-up of :meth:`donations.payments.pricing.Price.cover`: with the
        processor's fee taken from the charge, all of ``gift`` reaches the newsroom.
        """
        price = price_for(self.fees, method, gift.currency)
        if not self.fee_cover or price is None:
            return None
        return Money(price.cover(gift.amount), gift.currency)

    def fee_covers(self, gift: Money, frequency: Frequency) -> dict[str, Money]:
        """The cover for each method offered for this gift, in display order."""
        covers = {}
        for method in self.methods_for(gift.currency, frequency):
            cover = self.fee_cover_for(gift, method)
            if cover is not None:
                covers[method] = cover
        return covers

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
            # "fee_cover_bps" was a flat rate; any rate meant the cover was offered.
            fee_cover=bool(data.get("fee_cover", int(data.get("fee_cover_bps", 0)) > 0)),
            fees=pricing_from_data(data.get("fees")),
            embed=dict(data.get("embed", {})),
            fingerprint=hashlib.sha256(
                json.dumps(data, sort_keys=True, default=str).encode()
            ).hexdigest()[:16],
        )


# -- validation -------------------------------------------------------------
#
# Everything an admin saves is checked here before it is stored, so a typo
# cannot take the ask offline: each problem names where it is ("amounts → EUR
# → once → presets[0]") and says what would be accepted.

# Stripe takes at most eight digits of minor units for most currencies.
MAX_AMOUNT = 99_999_999
MAX_PRESETS = 8
MAX_HEADLINE = 300
MAX_APPEAL = 3000
# Methods the checkout offers, and the currencies Stripe takes them in (None: any
# currency of the account). https://docs.stripe.com/payments/payment-methods/payment-method-support
METHOD_CURRENCIES: dict[str, frozenset[str] | None] = {
    "card": None,
    "link": None,
    "sepa_debit": frozenset({"EUR"}),
    "paypal": frozenset(
        {
            "AUD",
            "CAD",
            "CHF",
            "CZK",
            "DKK",
            "EUR",
            "GBP",
            "HKD",
            "NOK",
            "NZD",
            "PLN",
            "SEK",
            "SGD",
            "USD",
        }
    ),
}
ASK_KEYS = frozenset(
    {
        "headline",
        "appeal",
        "default_frequency",
        "default_currency",
        "amounts",
        "methods",
        "fee_cover_bps",
        "fee_cover",
        "fees",
        "embed",
    }
)
RULE_KEYS = ("presets", "default", "minimum", "maximum")
EMBED_KEYS = frozenset({*EMBED_DEFAULTS, "upsell", "upsell_share_bps"})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings: where (a path of keys) and what."""

    path: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{' → '.join(self.path)}: {self.message}" if self.path else self.message


class AskConfigError(ValueError):
    """Settings that cannot be used; ``problems`` lists each one."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@lru_cache(maxsize=1)
def iso_currencies() -> frozenset[str]:
    """ISO 4217 codes of currencies in use today somewhere (CLDR), such as EUR or JPY."""
    codes: set[str] = set()
    for territory in Locale("en").territories:
        codes.update(get_territory_currencies(str(territory)))
    return frozenset(codes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole(value: Any, low: int, high: int) -> str | None:
    """Why ``value`` is not a whole number in [low, high] (None when it is)."""
    if not _is_int(value):
        return f"{_shown(value)} is not a whole number (amounts are in minor units: 2500 for 25.00)"
    if not low <= value <= high:
        return f"{value} is not between {low:,} and {high:,}"
    return None


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _currency_problem(code: Any) -> str | None:
    if not isinstance(code, str) or len(code) != 3 or not code.isascii() or not code.isalpha():
        return f"{_shown(code)} is not a currency code: three capital letters, such as EUR"
    if code != code.upper():
        return f"{_shown(code)} must be written in capitals: {code.upper()}"
    if code not in iso_currencies():
        return f"{code} is not an ISO 4217 currency in use"
    return None


def _texts_problems(name: str, value: Any, limit: int) -> list[Problem]:
    if not isinstance(value, dict) or not value:
        return [Problem((name,), 'give the text per language, such as {"en": "...", "ru": "..."}')]
    problems = []
    for lang, text in value.items():
        try:
            Locale.parse(lang)
        except (UnknownLocaleError, ValueError, TypeError):
            problems.append(Problem((name, str(lang)), f"{_shown(lang)} is not a language code"))
            continue
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem((name, lang), "give some text"))
        elif len(text) > limit:
            problems.append(
                Problem((name, lang), f"at most {limit} characters ({len(text)} given)")
            )
    if "en" not in value:
        problems.append(Problem((name,), 'the English text ("en") is needed: it is the fallback'))
    return problems


def _rule_problems(path: tuple[str, ...], rule: Any) -> list[Problem]:
    if not isinstance(rule, dict):
        return [
            Problem(path, 'give {"presets": [...], "default": ..., "minimum": ..., "maximum": ...}')
        ]
    problems = [Problem((*path, key), "missing") for key in RULE_KEYS if key not in rule]
    problems += [
        Problem((*path, str(key)), f"unknown setting; use {', '.join(RULE_KEYS)}")
        for key in rule
        if key not in RULE_KEYS
    ]
    if problems:
        return problems
    numbers: dict[str, int] = {}
    for key in ("minimum", "default", "maximum"):
        why = _whole(rule[key], 1, MAX_AMOUNT)
        if why:
            problems.append(Problem((*path, key), why))
        else:
            numbers[key] = rule[key]
    presets = rule["presets"]
    if not isinstance(presets, list) or not 1 <= len(presets) <= MAX_PRESETS:
        problems.append(Problem((*path, "presets"), f"give a list of 1 to {MAX_PRESETS} amounts"))
        presets = []
    for i, preset in enumerate(presets):
        why = _whole(preset, 1, MAX_AMOUNT)
        if why:
            problems.append(Problem((*path, f"presets[{i}]"), why))
    if len(numbers) == 3:
        low, default, high = numbers["minimum"], numbers["default"], numbers["maximum"]
        if not low <= default <= high:
            problems.append(
                Problem(path, f"minimum ≤ default ≤ maximum is needed ({low} ≤ {default} ≤ {high})")
            )
        for i, preset in enumerate(presets):
            if _is_int(preset) and not low <= preset <= high:
                problems.append(
                    Problem((*path, f"presets[{i}]"), f"{preset} is outside {low}–{high}")
                )
    if all(_is_int(p) for p in presets) and len(set(presets)) != len(presets):
        problems.append(Problem((*path, "presets"), "each amount once"))
    return problems


def validate_ask_data(data: Any) -> list[Problem]:
    """Every problem with these settings (empty when they can be used)."""
    if not isinstance(data, dict):
        return [Problem((), "the settings must be a JSON object { ... }")]
    problems = [
        Problem((str(key),), f"unknown setting; use {', '.join(sorted(ASK_KEYS))}")
        for key in data
        if key not in ASK_KEYS
    ]
    for key in ("headline", "appeal", "default_currency", "amounts"):
        if key not in data:
            problems.append(Problem((key,), "missing"))
    if "headline" in data:
        problems += _texts_problems("headline", data["headline"], MAX_HEADLINE)
    if "appeal" in data:
        problems += _texts_problems("appeal", data["appeal"], MAX_APPEAL)
    frequencies = [f.value for f in Frequency]
    default_frequency = data.get("default_frequency", "monthly")
    if default_frequency not in frequencies:
        problems.append(
            Problem(
                ("default_frequency",),
                f"{_shown(default_frequency)} is not one of {', '.join(frequencies)}",
            )
        )
    currencies: list[str] = []
    if "amounts" in data:
        problems += _amounts_problems(data["amounts"], default_frequency, currencies)
    if "default_currency" in data:
        problems += _default_currency_problems(data["default_currency"], currencies)
    problems += _methods_problems(data.get("methods", {"card": ["*"]}), currencies)
    if "fee_cover_bps" in data:
        why = _whole(data["fee_cover_bps"], 0, 2000)
        if why:
            problems.append(
                Problem(("fee_cover_bps",), why.split(" (")[0] + " (basis points: 300 is 3%)")
            )
    if "fee_cover" in data and not isinstance(data["fee_cover"], bool):
        problems.append(Problem(("fee_cover",), "true or false"))
    if "fees" in data:
        problems += _fees_problems(data["fees"])
    if "embed" in data:
        problems += _embed_problems(data["embed"])
    return problems


def _amounts_problems(amounts: Any, default_frequency: Any, currencies: list[str]) -> list[Problem]:
    """The rules per currency and frequency; each valid currency code is added to ``currencies``."""
    if not isinstance(amounts, dict) or not amounts:
        return [Problem(("amounts",), 'give the amounts per currency, such as {"EUR": {...}}')]
    frequencies = [f.value for f in Frequency]
    problems = []
    for code, by_frequency in amounts.items():
        why = _currency_problem(code)
        if why:
            problems.append(Problem(("amounts", str(code)), why))
            continue
        currencies.append(code)
        if not isinstance(by_frequency, dict) or not by_frequency:
            problems.append(
                Problem(("amounts", code), 'give a rule per frequency, such as {"once": {...}}')
            )
            continue
        for freq, rule in by_frequency.items():
            if freq not in frequencies:
                problems.append(
                    Problem(("amounts", code, str(freq)), f"not one of {', '.join(frequencies)}")
                )
                continue
            problems += _rule_problems(("amounts", code, freq), rule)
        if default_frequency in frequencies and default_frequency not in by_frequency:
            problems.append(
                Problem(("amounts", code), f"needs the default frequency ({default_frequency})")
            )
    return problems


def _default_currency_problems(default_currency: Any, currencies: list[str]) -> list[Problem]:
    why = _currency_problem(default_currency)
    if why:
        return [Problem(("default_currency",), why)]
    if currencies and default_currency not in currencies:
        return [
            Problem(("default_currency",), f"{default_currency} has no amounts; add it to amounts")
        ]
    return []


PRICE_KEYS = ("rate_bps", "fixed", "cap")


def _fees_problems(fees: Any) -> list[Problem]:
    """Processor prices per method and currency, as donations.payments.pricing reads them."""
    example = '{"card": {"USD": {"rate_bps": 290, "fixed": 30}}}'
    if not isinstance(fees, dict):
        return [Problem(("fees",), f"give the processor's prices, such as {example}")]
    problems = []
    for method, by_currency in fees.items():
        if method not in METHOD_CURRENCIES:
            problems.append(
                Problem(
                    ("fees", str(method)), f"unknown method; use {', '.join(METHOD_CURRENCIES)}"
                )
            )
            continue
        if not isinstance(by_currency, dict):
            problems.append(
                Problem(("fees", method), f"give prices per currency, such as {example}")
            )
            continue
        for code, price in by_currency.items():
            path = ("fees", method, str(code))
            why = _currency_problem(code)
            if why:
                problems.append(Problem(path, why))
                continue
            if not isinstance(price, dict) or "rate_bps" not in price or "fixed" not in price:
                problems.append(Problem(path, 'give {"rate_bps": ..., "fixed": ...}'))
                continue
            for key, value in price.items():
                if key not in PRICE_KEYS:
                    problems.append(
                        Problem((*path, str(key)), f"unknown; use {', '.join(PRICE_KEYS)}")
                    )
                    continue
                if key == "cap" and value is None:
                    continue
                high = 9_999 if key == "rate_bps" else MAX_AMOUNT
                why = _whole(value, 0, high)
                if why:
                    problems.append(Problem((*path, key), why))
    return problems


def _methods_problems(methods: Any, currencies: list[str]) -> list[Problem]:
    if not isinstance(methods, dict) or not methods:
        return [Problem(("methods",), 'give the methods per currency, such as {"card": ["*"]}')]
    problems = []
    offered: set[str] = set()
    for method, codes in methods.items():
        path = ("methods", str(method))
        if method not in METHOD_CURRENCIES:
            problems.append(Problem(path, f"unknown method; use {', '.join(METHOD_CURRENCIES)}"))
            continue
        if not isinstance(codes, list) or not codes:
            problems.append(Problem(path, 'give a list of currencies, or ["*"] for all'))
            continue
        valid = METHOD_CURRENCIES[method]
        for i, code in enumerate(codes):
            if code == "*":
                if valid is not None:
                    problems.append(
                        Problem(
                            (*path, f"[{i}]"), f"{method} is only for {', '.join(sorted(valid))}"
                        )
                    )
                else:
                    offered.update(currencies)
                continue
            why = _currency_problem(code)
            if why:
                problems.append(Problem((*path, f"[{i}]"), why))
            elif valid is not None and code not in valid:
                problems.append(
                    Problem(
                        (*path, f"[{i}]"),
                        f"{method} cannot take {code}; only {', '.join(sorted(valid))}",
                    )
                )
            elif code not in currencies:
                problems.append(Problem((*path, f"[{i}]"), f"{code} has no amounts"))
            else:
                offered.add(code)
    for code in currencies:
        if code not in offered and not problems:
            problems.append(Problem(("methods",), f"no method is offered for {code}"))
    return problems


def _embed_problems(embed: Any) -> list[Problem]:
    if not isinstance(embed, dict):
        return [Problem(("embed",), 'give an object, such as {"views": 3}')]
    problems = []
    for key, value in embed.items():
        path = ("embed", str(key))
        if key not in EMBED_KEYS:
            problems.append(Problem(path, f"unknown setting; use {', '.join(sorted(EMBED_KEYS))}"))
        elif key == "upsell":
            if not isinstance(value, bool):
                problems.append(Problem(path, "true or false"))
        elif key == "upsell_share_bps":
            why = _whole(value, 1, 10_000)
            if why:
                problems.append(Problem(path, why.split(" (")[0] + " (basis points)"))
        else:
            why = _whole(value, 0, 10_000)
            if why:
                problems.append(Problem(path, why.split(" (")[0]))
    return problems


def parse_ask_config(data: Any) -> AskConfig:
    """The configuration these settings describe; AskConfigError lists every problem."""
    problems = validate_ask_data(data)
    if problems:
        raise AskConfigError(problems)
    return AskConfig.from_data(data)


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
    # Readers may cover the processing fee: the gross-up of the processor's
    # price for the method and currency (Stripe's standard pricing unless
    # "fees": {"card": {"USD": {"rate_bps": 290, "fixed": 30}}, ...} says otherwise).
    "fee_cover": True,
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
    """A reader-facing reason why the chosen gift cannot be accepted.

    ``field`` is the choice it concerns (``frequency``, ``currency`` or
    ``amount``), so the page can say it there.
    """

    def __init__(self, message: str, field: str = "amount") -> None:
        super().__init__(message)
        self.field = field


def parse_gift(
    config: AskConfig, frequency: str, currency: str, amount: str, locale: str | None = None
) -> Money:
    """Decide the gift from what the reader sent; raise GiftError with a message.

    With ``locale``, ``amount`` is what the reader typed, read as their locale
    writes numbers (:func:`donations.money.parse_amount`); without, it is a
    plain major-unit value such as ``10`` or ``12.50`` (links, hidden fields).
    """
    try:
        freq = Frequency(frequency)
    except ValueError:
        raise GiftError(_("Choose how often you would like to give."), "frequency") from None
    code = (currency or "").strip().upper()
    rule = config.rule(code, freq)
    if rule is None:
        raise GiftError(_("Choose one of the currencies offered."), "currency")
    if len(amount or "") > 20:
        raise GiftError(_("Enter an amount such as 10 or 12.50."))
    try:
        money = (
            parse_amount(amount or "", code, locale)
            if locale
            else Money.from_major(amount or "", code)
        )
    except InvalidAmount:
        if locale:
            raise GiftError(
                _("Enter an amount such as %(example)s.", example=amount_example(code, locale))
            ) from None
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
