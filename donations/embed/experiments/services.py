"""A/B tests of the ask: defining, serving, assigning, counting and judging them.

Serving: the running experiment, with every variant, goes into the embed's one
cacheable configuration; the reader's browser picks its variant from a random
id it keeps in localStorage (never a cookie) with :func:`reader_bucket`, which
``static/embed/embed.js`` implements identically. The variant is then part of
the attribution the embed already sends (``variant = "slug:key"``), so
impressions are counted by the embed's anonymous daily counters and
conversions are the ledger's gifts carrying that variant.

Judging: :mod:`donations.embed.experiments.stats` (a fixed-horizon test).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import BigInteger, cast, func, select

from donations.ask.config import AskConfig
from donations.db import db, utcnow
from donations.embed.experiments import stats
from donations.embed.experiments.models import (
    EXPERIMENT_TRANSITIONS,
    Experiment,
    ExperimentStatus,
    ExperimentVariant,
)
from donations.embed.models import EmbedCount, EmbedEvent
from donations.embed.upsell import upsell_config
from donations.money import Money
from donations.process_cache import forget_kept, kept_in_process
from donations.supporters.attribution import first_payments
from donations.supporters.models import Donation, DonationStatus, Frequency

LANGUAGES = ("en", "ru")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,18}$")
MAX_VARIANTS = 5
# What a variant may change in the ask.
VARIANT_KEYS = frozenset(
    {"key", "share", "headline", "appeal", "default_frequency", "upsell", "presets"}
)
TEXT_LIMITS = {"headline": 200, "appeal": 1000}
# The served experiment is read again after this long per web process.
SERVED_TTL_SECONDS = 30.0
SERVED_CACHE = "served_experiment"


class ExperimentError(ValueError):
    """Why an experiment cannot be defined or changed as asked."""


# -- assignment: the same arithmetic as embed.js --------------------------------------------

_MASK = 0xFFFFFFFF


def reader_bucket(seed: str, reader_id: str) -> int:
    """0..99 for this reader in this experiment: FNV-1a over ``seed:reader_id``, then mixed.

    Both strings are ASCII (hex), so JavaScript's ``charCodeAt`` sees the same
    bytes; the finaliser (MurmurHash3's ``fmix32``) spreads FNV's low bits.
    """
    h = 0x811C9DC5
    for byte in f"{seed}:{reader_id}".encode("ascii", "replace"):
        h = ((h ^ byte) * 0x01000193) & _MASK
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h % 100


def assigned_index(seed: str, reader_id: str, shares: Sequence[int]) -> int:
    """Which variant (by position) a reader gets, with ``shares`` in percent adding up to 100."""
    bucket = reader_bucket(seed, reader_id)
    upto = 0
    for index, share in enumerate(shares):
        upto += share
        if bucket < upto:
            return index
    return len(shares) - 1


# -- defining -------------------------------------------------------------------------------


def _bps(value: float, name: str, *, high: int = 10_000) -> int:
    bps = round(value * 10_000)
    if not 0 < bps < high:
        raise ExperimentError(_("%(name)s is out of range", name=name))
    return bps


def _texts(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise ExperimentError(_("%(name)s must be an object of language -> text", name=name))
    texts: dict[str, str] = {}
    for lang, text in value.items():
        if lang not in LANGUAGES or not isinstance(text, str) or not text.strip():
            raise ExperimentError(
                _("%(name)s: one text per language (%(languages)s)", name=name, languages="en, ru")
            )
        if len(text) > TEXT_LIMITS[name] or any(ord(c) < 32 and c not in "\n" for c in text):
            raise ExperimentError(
                _(
                    "%(name)s in %(lang)s is too long or has control characters",
                    name=name,
                    lang=lang,
                )
            )
        texts[lang] = text.strip()
    return texts


def _presets(value: Any, ask: AskConfig) -> dict[str, dict[str, dict[str, Any]]]:
    if not isinstance(value, dict):
        raise ExperimentError(_("presets must be an object: currency -> frequency -> presets"))
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for currency, by_frequency in value.items():
        if currency not in ask.currencies or not isinstance(by_frequency, dict):
            raise ExperimentError(
                _("presets: %(currency)s is not a currency of the ask", currency=repr(currency))
            )
        result[currency] = {}
        for frequency, cell in by_frequency.items():
            try:
                rule = ask.rule(currency, Frequency(frequency))
            except ValueError:
                rule = None
            if rule is None or not isinstance(cell, dict):
                raise ExperimentError(
                    _(
                        "presets: %(currency)s has no %(frequency)s in the ask",
                        currency=currency,
                        frequency=repr(frequency),
                    )
                )
            amounts = cell.get("presets")
            if (
                not isinstance(amounts, list)
                or not 1 <= len(amounts) <= 6
                or not all(type(a) is int and rule.minimum <= a <= rule.maximum for a in amounts)
            ):
                raise ExperimentError(
                    _(
                        "presets %(currency)s %(frequency)s: 1 to 6 amounts in minor units "
                        "between %(minimum)s and %(maximum)s",
                        currency=currency,
                        frequency=frequency,
                        minimum=rule.minimum,
                        maximum=rule.maximum,
                    )
                )
            default = cell.get("default", amounts[0])
            if default not in amounts:
                raise ExperimentError(
                    _(
                        "presets %(currency)s %(frequency)s: the default is not a preset",
                        currency=currency,
                        frequency=frequency,
                    )
                )
            result[currency][frequency] = {"presets": amounts, "default": default}
    return result


def parse_variants(value: Any, ask: AskConfig) -> list[dict[str, Any]]:
    """Validated variants from staff's JSON: the first is control; shares add up to 100."""
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_VARIANTS:
        raise ExperimentError(
            _("between 2 and %(most)s variants, the first being control", most=MAX_VARIANTS)
        )
    variants: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise ExperimentError(_("each variant is an object with a key and a share"))
        unknown = set(item) - VARIANT_KEYS
        if unknown:
            raise ExperimentError(
                _("unknown variant fields: %(fields)s", fields=", ".join(sorted(unknown)))
            )
        key, share = item.get("key"), item.get("share")
        if not isinstance(key, str) or not KEY.match(key):
            raise ExperimentError(_("a variant's key is 1 to 19 of a-z, 0-9 and -"))
        if type(share) is not int or not 1 <= share <= 99:
            raise ExperimentError(_("%(key)s: the share is a whole percent from 1 to 99", key=key))
        changes: dict[str, Any] = {}
        for name in ("headline", "appeal"):
            if name in item:
                changes[name] = _texts(item[name], name)
        if "default_frequency" in item:
            try:
                changes["default_frequency"] = Frequency(item["default_frequency"]).value
            except ValueError:
                raise ExperimentError(
                    _("%(key)s: default_frequency is once, monthly or annual", key=key)
                ) from None
        if "upsell" in item:
            if not isinstance(item["upsell"], bool):
                raise ExperimentError(_("%(key)s: upsell is true or false", key=key))
            changes["upsell"] = item["upsell"]
        if "presets" in item:
            changes["presets"] = _presets(item["presets"], ask)
        variants.append({"key": key, "share": share, "changes": changes})
    keys = [v["key"] for v in variants]
    if len(set(keys)) != len(keys):
        raise ExperimentError(_("variant keys must differ"))
    if sum(v["share"] for v in variants) != 100:
        raise ExperimentError(_("the shares must add up to 100"))
    return variants


def create_experiment(
    *,
    slug: str,
    title: str,
    variants: list[dict[str, Any]],
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    guardrail_margin: float = 0.2,
    guardrail_minimum: int = 1000,
) -> Experiment:
    """A new draft experiment (flushed); ``variants`` as :func:`parse_variants` returns them.

    Rates are fractions: ``baseline=0.02`` is 2 %, ``mde=0.2`` a relative lift of 20 %.
    """
    slug = (slug or "").strip()
    if not SLUG.match(slug):
        raise ExperimentError(_("the name is 1 to 30 of a-z, 0-9 and -"))
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise ExperimentError(_("the title is 1 to 200 characters"))
    if db.session.scalar(select(Experiment.id).where(Experiment.slug == slug)) is not None:
        raise ExperimentError(_("an experiment named %(name)s exists", name=repr(slug)))
    if not 1 <= guardrail_minimum <= 100_000_000:
        raise ExperimentError(_("the guardrail's minimum is a positive number of impressions"))
    try:
        stats.planned_sample_size(baseline, mde, alpha, power)
    except ValueError:
        raise ExperimentError(
            _(
                "no sample size follows from these rates: baseline, alpha and power must be "
                "between 0 and 100 %%, and baseline times (1 + lift) must stay below 100 %%"
            )
        ) from None
    experiment = Experiment(
        slug=slug,
        title=title,
        seed=secrets.token_hex(8),
        baseline_bps=_bps(baseline, _("the baseline rate")),
        mde_bps=_bps(mde, _("the minimum detectable effect"), high=1_000_000),
        alpha_bps=_bps(alpha, _("alpha")),
        power_bps=_bps(power, _("power")),
        guardrail_margin_bps=_bps(guardrail_margin, _("the guardrail's margin")),
        guardrail_minimum=guardrail_minimum,
        variants=[
            ExperimentVariant(
                key=v["key"], position=i, share=v["share"], changes=v.get("changes", {})
            )
            for i, v in enumerate(variants)
        ],
    )
    db.session.add(experiment)
    db.session.flush()
    return experiment


def _move(experiment: Experiment, to: ExperimentStatus) -> None:
    if to not in EXPERIMENT_TRANSITIONS[experiment.status]:
        raise ExperimentError(
            _(
                "a %(status)s experiment cannot become %(to)s",
                status=experiment.status.value,
                to=to.value,
            )
        )
    experiment.status = to


def start_experiment(experiment: Experiment) -> None:
    """Serve it (flushed). One experiment runs at a time: two would test each other."""
    running = running_experiment()
    if running is not None and running.id != experiment.id:
        raise ExperimentError(_("%(name)s is running; end it first", name=repr(running.slug)))
    _move(experiment, ExperimentStatus.RUNNING)
    experiment.started_at = utcnow()
    db.session.flush()
    forget_served_experiment()


def end_experiment(experiment: Experiment) -> None:
    """Stop serving it (flushed); its results stay."""
    _move(experiment, ExperimentStatus.ENDED)
    experiment.ended_at = utcnow()
    db.session.flush()
    forget_served_experiment()


def stop_variant(variant: ExperimentVariant, reason: str) -> None:
    """No longer serve this challenger (flushed); its readers see the ask as it is, unattributed.

    Control cannot be stopped alone: end the experiment instead.
    """
    if variant.position == 0:
        raise ExperimentError(_("control cannot be stopped; end the experiment instead"))
    if variant.stopped_at is not None:
        return
    variant.stopped_at = utcnow()
    variant.stopped_reason = reason[:200]
    db.session.flush()
    forget_served_experiment()


def running_experiment() -> Experiment | None:
    return db.session.scalar(
        select(Experiment).where(Experiment.status == ExperimentStatus.RUNNING).limit(1)
    )


def list_experiments() -> list[Experiment]:
    return list(db.session.scalars(select(Experiment).order_by(Experiment.id.desc())))


# -- serving: the experiment in the embed's configuration ------------------------------------


@dataclass(frozen=True)
class ServedArm:
    value: str  # the attribution value, "slug:key"
    share: int
    stopped: bool
    changes: str  # JSON (hashable, for the configuration's cache key)


@dataclass(frozen=True)
class ServedExperiment:
    slug: str
    seed: str
    arms: tuple[ServedArm, ...]


def served_experiment() -> ServedExperiment | None:
    """The running experiment as the embed needs it, kept per process for a few seconds."""
    return kept_in_process(SERVED_CACHE, SERVED_TTL_SECONDS, _read_served_experiment)


def _read_served_experiment() -> ServedExperiment | None:
    experiment = running_experiment()
    if experiment is None:
        return None
    return ServedExperiment(
        slug=experiment.slug,
        seed=experiment.seed,
        arms=tuple(
            ServedArm(
                value=v.attribution,
                share=v.share,
                stopped=v.stopped_at is not None,
                changes=json.dumps(v.changes, sort_keys=True),
            )
            for v in experiment.variants
        ),
    )


def forget_served_experiment() -> None:
    forget_kept(SERVED_CACHE)
    current_app.extensions.pop("embed_config", None)


def variant_patch(changes: Mapping[str, Any], config: AskConfig, lang: str) -> dict[str, Any]:
    """What a variant changes in the embed's configuration for ``lang`` (merged by embed.js)."""
    patch: dict[str, Any] = {}
    texts = {
        name: config.text(changes[name], lang) for name in ("headline", "appeal") if name in changes
    }
    if texts:
        patch["text"] = texts
    if "default_frequency" in changes:
        patch["default_frequency"] = changes["default_frequency"]
    amounts: dict[str, dict[str, Any]] = {}
    for currency, by_frequency in changes.get("presets", {}).items():
        for frequency, cell in by_frequency.items():
            rule = config.rule(currency, Frequency(frequency))
            if rule is None:
                continue  # the ask no longer has it
            kept = [a for a in cell["presets"] if rule.minimum <= a <= rule.maximum]
            if not kept:
                continue
            default = cell["default"] if cell["default"] in kept else kept[0]
            amounts.setdefault(currency, {})[frequency] = {
                "presets": [
                    [Money(a, currency).major_text(), Money(a, currency).format(lang)] for a in kept
                ],
                "default": Money(default, currency).major_text(),
            }
    if amounts:
        patch["amounts"] = amounts
    if "upsell" in changes:
        patch["upsell"] = upsell_config(config, lang, forced=True) if changes["upsell"] else None
    return patch


def embed_experiment(
    served: ServedExperiment | None, config: AskConfig, lang: str
) -> dict[str, Any] | None:
    """The experiment's part of the embed configuration: every variant, the browser picks."""
    if served is None:
        return None
    return {
        "seed": served.seed,
        "variants": [
            {
                "value": arm.value,
                "share": arm.share,
                **({"stopped": True} if arm.stopped else {}),
                **(
                    {}
                    if arm.stopped
                    else {"patch": variant_patch(json.loads(arm.changes), config, lang)}
                ),
            }
            for arm in served.arms
        ],
    }


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revenue:
    currency: str
    gifts: int
    total: int  # minor units, net of refunds
    per_impression: float  # minor units
    interval: stats.Interval


@dataclass
class ArmResult:
    variant: ExperimentVariant
    impressions: int = 0
    continues: int = 0
    conversions: int = 0
    rate: float | None = None
    interval: stats.Interval | None = None
    revenue: list[Revenue] = field(default_factory=list)
    p_value: float | None = None  # against control
    guardrail_breached: bool = False

    @property
    def is_control(self) -> bool:
        return self.variant.position == 0

    @property
    def served(self) -> bool:
        return self.variant.stopped_at is None


class Verdict:
    NOT_YET = "not_yet"  # the planned sample is not reached: no winner may be named
    WINNER = "winner"  # a challenger converts significantly better than control
    CONTROL = "control"  # every challenger still served converts significantly worse
    NO_DIFFERENCE = "no_difference"


@dataclass
class Results:
    experiment: Experiment
    arms: list[ArmResult]
    planned: int  # impressions per variant
    alpha_each: float
    confidence: float
    reached: bool
    verdict: str
    winner: ArmResult | None = None

    @property
    def progress(self) -> int:
        """Percent of the planned sample shown, for the variant furthest behind."""
        shown = [a.impressions for a in self.arms if a.served]
        return min(100, min(shown) * 100 // self.planned) if shown and self.planned else 0


def planned_for(experiment: Experiment) -> tuple[int, float]:
    """Impressions per variant, and the alpha of each comparison with control."""
    alpha_each = stats.split_alpha(experiment.alpha_bps / 10_000, len(experiment.variants) - 1)
    planned = stats.planned_sample_size(
        experiment.baseline_bps / 10_000,
        experiment.mde_bps / 10_000,
        alpha_each,
        experiment.power_bps / 10_000,
    )
    return planned, alpha_each


def _counts(values: list[str]) -> dict[tuple[str, str], int]:
    rows = db.session.execute(
        select(EmbedCount.variant, EmbedCount.event, func.sum(EmbedCount.count))
        .where(
            EmbedCount.variant.in_(values),
            EmbedCount.event.in_([EmbedEvent.IMPRESSION, EmbedEvent.CONTINUE]),
        )
        .group_by(EmbedCount.variant, EmbedCount.event)
    )
    return {(variant, str(event)): int(total) for variant, event, total in rows}


def _gifts(values: list[str]) -> dict[str, list[tuple[str, int, int, int]]]:
    kept = Donation.amount + Donation.fee_cover_amount - Donation.refunded_amount
    rows = db.session.execute(
        select(
            Donation.variant,
            Donation.currency,
            func.count(),
            func.sum(kept),
            func.sum(cast(kept, BigInteger) * cast(kept, BigInteger)),
        )
        .where(
            Donation.variant.in_(values),
            Donation.status == DonationStatus.SUCCEEDED,
            first_payments(),
        )
        .group_by(Donation.variant, Donation.currency)
    )
    found: dict[str, list[tuple[str, int, int, int]]] = {}
    for variant, currency, count, total, squares in rows:
        found.setdefault(variant or "", []).append(
            (currency, int(count), int(total or 0), int(squares or 0))
        )
    return found


def experiment_results(experiment: Experiment) -> Results:
    """Per variant: shown, gifts, rate and revenue per impression with intervals; a verdict."""
    planned, alpha_each = planned_for(experiment)
    z = stats.z_for(alpha_each)
    values = [v.attribution for v in experiment.variants]
    counts, gifts = _counts(values), _gifts(values)
    arms = [
        _arm(variant, counts, gifts.get(variant.attribution, []), z)
        for variant in experiment.variants
    ]
    _compare_with_control(experiment, arms, z)
    served = [a for a in arms if a.served]
    reached = all(a.impressions >= planned for a in served)
    results = Results(
        experiment=experiment,
        arms=arms,
        planned=planned,
        alpha_each=alpha_each,
        confidence=1 - alpha_each,
        reached=reached,
        verdict=Verdict.NOT_YET,
    )
    if reached:
        _decide(results, served)
    return results


def _arm(
    variant: ExperimentVariant,
    counts: dict[tuple[str, str], int],
    gifts: list[tuple[str, int, int, int]],
    z: float,
) -> ArmResult:
    """One variant's views, gifts, conversion rate and revenue per impression."""
    value = variant.attribution
    arm = ArmResult(
        variant=variant,
        impressions=counts.get((value, EmbedEvent.IMPRESSION.value), 0),
        continues=counts.get((value, EmbedEvent.CONTINUE.value), 0),
    )
    for currency, count, total, squares in sorted(gifts):
        arm.conversions += count
        mean = stats.mean_interval(total, squares, arm.impressions, z)
        if mean is not None:
            arm.revenue.append(Revenue(currency, count, total, mean[0], mean[1]))
    if arm.impressions:
        # More gifts than views can happen (a gift through a reminder, a view not
        # counted): the rate is capped so the interval stays a proportion's.
        shown = max(arm.impressions, arm.conversions)
        arm.rate = arm.conversions / shown
        arm.interval = stats.wilson_interval(arm.conversions, shown, z)
    return arm


def _compare_with_control(experiment: Experiment, arms: list[ArmResult], z: float) -> None:
    """Each challenger's p-value against the control (the first arm) and its guardrail."""
    control = arms[0]
    margin = experiment.guardrail_margin_bps / 10_000
    for arm in arms[1:]:
        if control.impressions and arm.impressions:
            arm.p_value = stats.two_proportion_p_value(
                control.conversions,
                max(control.impressions, control.conversions),
                arm.conversions,
                max(arm.impressions, arm.conversions),
            )
        arm.guardrail_breached = arm.served and stats.guardrail_breached(
            control=(control.conversions, max(control.impressions, control.conversions)),
            challenger=(arm.conversions, max(arm.impressions, arm.conversions)),
            margin=margin,
            minimum=experiment.guardrail_minimum,
            z=z,
        )


def _decide(results: Results, served: list[ArmResult]) -> None:
    """The verdict once every served arm reached its planned sample."""
    control, alpha_each = results.arms[0], results.alpha_each
    challengers = [a for a in served if not a.is_control]
    better = [
        a
        for a in challengers
        if a.p_value is not None and a.p_value < alpha_each and (a.rate or 0) > (control.rate or 0)
    ]
    worse = [
        a
        for a in challengers
        if a.p_value is not None and a.p_value < alpha_each and (a.rate or 0) < (control.rate or 0)
    ]
    if better:
        results.verdict = Verdict.WINNER
        results.winner = max(better, key=lambda a: a.rate or 0)
    elif len(worse) == len(challengers):
        results.verdict = Verdict.CONTROL
        results.winner = control
    else:
        results.verdict = Verdict.NO_DIFFERENCE


def check_guardrails(experiment: Experiment | None = None) -> list[tuple[ExperimentVariant, str]]:
    """Stop every challenger of the running experiment whose guardrail is breached (flushed).

    Returns what was stopped and why; the callers (the periodic task, the CLI,
    the staff screen: :mod:`donations.staff.experiments`) put each in the audit log.
    """
    experiment = experiment or running_experiment()
    if experiment is None or experiment.status is not ExperimentStatus.RUNNING:
        return []
    results = experiment_results(experiment)
    control = results.arms[0]
    stopped: list[tuple[ExperimentVariant, str]] = []
    for arm in results.arms[1:]:
        if not arm.guardrail_breached:
            continue
        reason = (
            f"guardrail: {arm.conversions}/{arm.impressions} against control's "
            f"{control.conversions}/{control.impressions}, margin "
            f"{experiment.guardrail_margin_bps / 100:g}%"
        )
        stop_variant(arm.variant, reason)
        stopped.append((arm.variant, reason))
    return stopped
