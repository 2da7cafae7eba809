"""Trying the ask's settings out before they are saved: every page that shows them, rendered.

Above the ask, the support pages and the embed (it renders all of them), so
it lives with the settings screen; ``save_ask_config`` is given it as its check.
"""

from __future__ import annotations

import logging

from flask import current_app, g

from donations.ask.config import AskConfig, Problem

log = logging.getLogger(__name__)


def dry_render_ask(config: AskConfig) -> list[Problem]:
    """Build the ask's page and the embed's configuration with ``config``, in every
    language, currency and frequency, without saving anything; what failed."""
    from flask_babel import force_locale

    from donations.embed.services import LANGUAGES

    problems: list[Problem] = []
    previous = g.pop("ask_config", None)
    try:
        with current_app.test_request_context("/support"):
            g.ask_config = config
            for lang in LANGUAGES:
                with force_locale(lang):
                    problems += _ask_problems(config, lang)
                    problems += _embed_problems(lang)
    finally:
        g.pop("ask_config", None)
        if previous is not None:
            g.ask_config = previous
    return problems


def _ask_problems(config: AskConfig, lang: str) -> list[Problem]:
    """The ask page in ``lang`` for each currency and frequency it offers: what failed."""
    from flask import render_template

    from donations.money import Money
    from donations.supporters.models import Frequency

    problems = []
    for currency in config.currencies:
        for frequency in Frequency:
            rule = config.rule(currency, frequency)
            if rule is None:
                continue
            try:
                values = {
                    "frequency": frequency.value,
                    "currency": currency,
                    "amount": Money(rule.default, currency).major_text(),
                }
                render_template(
                    "support/ask.html",
                    config=config,
                    values=values,
                    errors=[],
                    frequencies=list(Frequency),
                    locale=lang,
                    attribution={},
                    meter=None,
                    meter_text="",
                )
            except Exception as exc:  # what a reader would have got as a 500
                log.warning("dry render of the ask failed", exc_info=True)
                problems.append(
                    Problem(
                        (lang, currency, frequency.value),
                        f"the ask could not be shown: {type(exc).__name__}: {exc}",
                    )
                )
    return problems


def _embed_problems(lang: str) -> list[Problem]:
    from donations.embed.services import embed_config

    try:
        embed_config(lang)
    except Exception as exc:
        log.warning("dry render of the embed configuration failed", exc_info=True)
        return [
            Problem(
                (lang, "embed"),
                f"the embed could not be configured: {type(exc).__name__}: {exc}",
            )
        ]
    return []
