"""Campaigns: a start, an end, a goal, and a meter read from the ledger.

The meter counts what a campaign actually raised: succeeded gifts that name the
campaign, each one-off gift and each plan's *first* payment (a renewal is the
same supporter again), in the goal's currency, net of refunds, dated by when
they succeeded within the campaign's window. A refunded gift stops counting
(and a fully refunded one is no supporter for a supporters goal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from donations.db import db, utcnow
from donations.money import Money, normalise_currency
from donations.process_cache import forget_kept, kept_in_process
from donations.support.models import Campaign, GoalKind
from donations.supporters.attribution import first_payments
from donations.supporters.models import Donation, DonationStatus

# The meter may lag the ledger by this long per web process (it is on the busiest pages).
METER_TTL_SECONDS = 30.0
METER_CACHE = "campaign_meter"


class CampaignError(ValueError):
    """Why a campaign cannot be created as asked."""


@dataclass(frozen=True)
class Meter:
    slug: str
    title: tuple[tuple[str, str], ...]
    goal_kind: GoalKind
    goal: int
    currency: str | None
    raised: int  # minor units, or supporters
    ends_at: datetime

    @property
    def percent(self) -> int:
        return min(100, self.raised * 100 // self.goal) if self.goal else 0

    def caption(self, lang: str) -> str:
        titles = dict(self.title)
        return titles.get(lang) or titles.get("en") or self.slug

    def as_json(self, lang: str) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "title": self.caption(lang),
            "goal_kind": self.goal_kind.value,
            "goal": self.goal,
            "raised": self.raised,
            "percent": self.percent,
            "currency": self.currency,
        }


def create_campaign(
    *,
    slug: str,
    title: dict[str, str],
    starts_at: datetime,
    ends_at: datetime,
    goal: int,
    currency: str | None = None,
) -> Campaign:
    """A new campaign (flushed). A currency makes it an amount goal, else a supporters goal."""
    slug = slug.strip()
    if not slug or len(slug) > 100 or any(ord(c) < 32 for c in slug):
        raise CampaignError("the slug must be 1 to 100 printable characters")
    if ends_at <= starts_at:
        raise CampaignError("the campaign must end after it starts")
    if goal <= 0:
        raise CampaignError("the goal must be positive")
    if db.session.scalar(select(Campaign.id).where(Campaign.slug == slug)) is not None:
        raise CampaignError(f"a campaign named {slug!r} exists")
    campaign = Campaign(
        slug=slug,
        title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        goal=goal,
        goal_kind=GoalKind.AMOUNT if currency else GoalKind.SUPPORTERS,
        goal_currency=normalise_currency(currency) if currency else None,
    )
    db.session.add(campaign)
    db.session.flush()
    return campaign


def meter_for(campaign: Campaign) -> Meter:
    """What the campaign has raised so far, from the ledger (see the module's docstring)."""
    kept = case(
        (Donation.amount > Donation.refunded_amount, Donation.amount - Donation.refunded_amount),
        else_=0,
    )
    counted = [
        Donation.campaign == campaign.slug,
        Donation.status == DonationStatus.SUCCEEDED,
        first_payments(),
        Donation.succeeded_at >= campaign.starts_at,
        Donation.succeeded_at < campaign.ends_at,
    ]
    if campaign.goal_kind is GoalKind.AMOUNT:
        raised = db.session.scalar(
            select(func.coalesce(func.sum(kept), 0)).where(
                *counted, Donation.currency == campaign.goal_currency
            )
        )
    else:
        raised = db.session.scalar(
            select(func.count(func.distinct(Donation.supporter_id))).where(*counted, kept > 0)
        )
    return Meter(
        slug=campaign.slug,
        title=tuple(sorted((str(k), str(v)) for k, v in (campaign.title or {}).items())),
        goal_kind=campaign.goal_kind,
        goal=campaign.goal,
        currency=campaign.goal_currency,
        raised=int(raised or 0),
        ends_at=campaign.ends_at,
    )


def running_campaign(now: datetime | None = None) -> Campaign | None:
    """The campaign running now (the one that started last, if several overlap)."""
    now = now or utcnow()
    return db.session.scalar(
        select(Campaign)
        .where(Campaign.starts_at <= now, Campaign.ends_at > now)
        .order_by(Campaign.starts_at.desc(), Campaign.id.desc())
        .limit(1)
    )


def running_meter() -> Meter | None:
    """The running campaign's meter, kept per process for a few seconds."""
    return kept_in_process(METER_CACHE, METER_TTL_SECONDS, _read_running_meter)


def _read_running_meter() -> Meter | None:
    campaign = running_campaign()
    return meter_for(campaign) if campaign else None


def forget_meter() -> None:
    forget_kept(METER_CACHE)


def meter_text(meter: Meter, locale: str) -> str:
    """ "$1,250.00 of $5,000.00" or "42 of 100 supporters", in the reader's language."""
    from flask_babel import force_locale
    from flask_babel import gettext as _

    with force_locale(locale):
        if meter.goal_kind is GoalKind.AMOUNT and meter.currency:
            return _(
                "%(raised)s raised of %(goal)s",
                raised=Money(meter.raised, meter.currency).format(locale),
                goal=Money(meter.goal, meter.currency).format(locale),
            )
        return _("%(raised)d of %(goal)d supporters", raised=meter.raised, goal=meter.goal)
