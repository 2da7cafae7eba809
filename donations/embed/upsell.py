"""Upsell from once to monthly: the offer the embed makes after Once, when switched on."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

from donations.ask.config import AskConfig
from donations.money import Money
from donations.supporters.models import Frequency

# Upsell from once to monthly: off unless the ask setting's "embed" object says
# {"upsell": true}; the monthly amount proposed is the one-off amount times
# upsell_share_bps / 10000 (a third by default), rounded to the nearest monthly preset.
UPSELL_SHARE_BPS = 3333


def upsell_amount(once: int, monthly_presets: tuple[int, ...], share_bps: int) -> int | None:
    """The monthly preset nearest to ``share_bps`` of a one-off amount (ties go lower)."""
    if not monthly_presets:
        return None
    wanted = once * share_bps // 10_000
    return min(monthly_presets, key=lambda p: (abs(p - wanted), p))


def upsell_config(config: AskConfig, lang: str, *, forced: bool = False) -> dict[str, Any] | None:
    """The upsell's offers and copy, when on in the settings (or ``forced`` by a variant)."""
    if not forced and config.embed.get("upsell") is not True:
        return None
    share = config.embed.get("upsell_share_bps", UPSELL_SHARE_BPS)
    if not isinstance(share, int) or isinstance(share, bool) or not 1 <= share <= 10_000:
        share = UPSELL_SHARE_BPS
    offers: dict[str, dict[str, list[str]]] = {}
    for currency in config.currencies:
        once, monthly = (
            config.rule(currency, Frequency.ONCE),
            config.rule(currency, Frequency.MONTHLY),
        )
        if once is None or monthly is None:
            continue
        offers[currency] = {}
        for preset in once.presets:
            amount = upsell_amount(preset, monthly.presets, share)
            if amount is not None:
                money = Money(amount, currency)
                offers[currency][Money(preset, currency).major_text()] = [
                    money.major_text(),
                    money.format(lang),
                ]
    return {
        "offers": offers,
        "text": {
            "question": _("Would you give monthly instead?"),
            "accept": _("Yes, %(amount)s a month"),
            "decline": _("No, give once"),
        },
    }
