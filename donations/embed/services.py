"""The embed's configuration: the ask's copy, amounts and methods for one language.

The same for every reader of a language (nothing about the reader goes in), so
a CDN can keep it: see :mod:`donations.cacheable`.
"""

from __future__ import annotations

import json
from datetime import date
from functools import lru_cache
from typing import Any

from babel.numbers import get_territory_currencies
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from donations.ask.config import AskConfig
from donations.ask.services import load_ask_config
from donations.cacheable import etag_for
from donations.db import db, upsert, utcnow
from donations.embed.experiments.services import (
    ServedExperiment,
    embed_experiment,
    served_experiment,
)
from donations.embed.models import EmbedCount, EmbedEvent
from donations.embed.upsell import UPSELL_SHARE_BPS, upsell_amount, upsell_config
from donations.money import Money
from donations.reminders.services import external_url
from donations.support.campaigns import Meter, meter_text, running_meter
from donations.supporters.attribution import Attribution
from donations.supporters.models import Frequency

LANGUAGES = ("en", "ru")
__all__ = ["UPSELL_SHARE_BPS", "upsell_amount", "upsell_config"]


def embed_language(wanted: str | None) -> str:
    """One of the languages we have, from a tag such as ``ru-RU`` (English otherwise)."""
    code = (wanted or "")[:35].split("-")[0].split("_")[0].lower()
    return code if code in LANGUAGES else "en"


def method_labels() -> dict[str, str]:
    return {
        "card": _("Card"),
        "sepa_debit": _("SEPA Direct Debit"),
        "link": "Link",
        "paypal": "PayPal",
    }


def _texts(config: AskConfig, lang: str) -> dict[str, str]:
    return {
        "headline": config.text(config.headline, lang),
        "appeal": config.text(config.appeal, lang),
        "how_often": _("How often?"),
        "once": _("Once"),
        "monthly": _("Monthly"),
        "annual": _("Annual"),
        "amount": _("Amount"),
        "other_amount": _("Other amount"),
        "currency": _("Currency"),
        "continue": _("Continue"),
        "not_ready": _("Not ready to support today?"),
        "remind": _("Remind me later"),
        "close": _("Close"),
        "methods": _("Ways to pay"),
    }


@lru_cache(maxsize=64)
def _regions_for(currencies: tuple[str, ...]) -> dict[str, str]:
    """Region code -> the configured currency used there (for the reader's browser region)."""
    from babel import Locale

    regions: dict[str, str] = {}
    for code_ in Locale("en").territories:
        region = str(code_)
        if len(region) != 2 or not region.isalpha():
            continue
        for code in get_territory_currencies(region):
            if code in currencies:
                regions[region] = code
                break
    return regions


def _amounts(config: AskConfig, lang: str) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for currency in config.currencies:
        by_frequency: dict[str, Any] = {}
        for frequency in Frequency:
            rule = config.rule(currency, frequency)
            if rule is None:
                continue
            by_frequency[frequency.value] = {
                # [value the checkout takes (major units), label in the reader's language]
                "presets": [
                    [Money(p, currency).major_text(), Money(p, currency).format(lang)]
                    for p in rule.presets
                ],
                "default": Money(rule.default, currency).major_text(),
            }
        result[currency] = by_frequency
    return result


def embed_config(
    lang: str, meter: Meter | None = None, experiment: ServedExperiment | None = None
) -> dict[str, Any]:
    """Everything the embed shows, in ``lang``; absolute URLs on BASE_URL (not the Host header)."""
    config = load_ask_config()
    with force_locale(lang):
        labels = method_labels()
        return {
            "lang": lang,
            "text": _texts(config, lang),
            "default_frequency": config.default_frequency.value,
            "default_currency": config.default_currency,
            "currency_by_region": _regions_for(tuple(config.currencies)),
            "amounts": _amounts(config, lang),
            "methods": [
                {"id": m, "label": labels.get(m, m), "currencies": list(cs)}
                for m, cs in config.methods.items()
            ],
            "caps": config.embed_caps(),
            "upsell": upsell_config(config, lang),
            "experiment": embed_experiment(experiment, config, lang),
            "campaign": (
                {**meter.as_json(lang), "text": meter_text(meter, lang)} if meter else None
            ),
            "urls": {
                "checkout": external_url("support.details"),
                "remind": external_url("reminders.signup"),
                "events": external_url("embed.events"),
            },
        }


def embed_config_body(lang: str) -> tuple[bytes, str]:
    """The configuration's bytes and ETag (kept per process until the settings or meter change)."""
    config = load_ask_config()
    meter = running_meter()
    experiment = served_experiment()
    key = (config.fingerprint, lang, meter, experiment)
    cache: dict[tuple[Any, ...], tuple[bytes, str]] = current_app.extensions.setdefault(
        "embed_config", {}
    )
    found = cache.get(key)
    if found is None:
        body = json.dumps(
            embed_config(lang, meter, experiment), ensure_ascii=False, separators=(",", ":")
        ).encode()
        found = (body, etag_for(body))
        if len(cache) > 64:
            cache.clear()
        cache[key] = found
    return found


def count_event(event: EmbedEvent, attribution: Attribution, day: date | None = None) -> None:
    """Add one to the day's counter for this event and placement (an upsert, no read)."""
    values = {
        "day": day or utcnow().date(),
        "event": event.value,
        "article": attribution.article or "",
        "campaign": attribution.campaign or "",
        "variant": attribution.variant or "",
    }
    db.session.execute(
        upsert(
            EmbedCount,
            {"count": 1, **values},
            ["day", "event", "article", "campaign", "variant"],
            {"count": EmbedCount.count + 1},
        )
    )
