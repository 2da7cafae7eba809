"""The ask's placements: gifts, revenue and conversion per article, campaign and variant.

Impressions, continues and reminder clicks come from the embed's anonymous
daily counters (``embed_counts``); gifts from the ledger: succeeded one-off
gifts and each plan's first payment (a renewal is not a new conversion),
revenue net of refunds; reminder sign-ups from their own rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select

from donations.db import db
from donations.embed.models import EmbedCount, EmbedEvent
from donations.payments.measures import LEDGER_DATE
from donations.reminders.models import Reminder
from donations.staff.reports.exporters import Column, Kind
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.sql import Row, Table, as_text, between, major_units, rate_text
from donations.supporters.attribution import first_payments
from donations.supporters.models import Donation, DonationStatus

Placement = tuple[str, str, str]

PLACEMENT_COLUMNS = (
    Column("article", Kind.TEXT, "Article"),
    Column("campaign", Kind.TEXT, "Campaign"),
    Column("variant", Kind.TEXT, "Variant"),
    Column("impressions", Kind.INT, "Shown"),
    Column("continues", Kind.INT, "Continued"),
    Column("reminders", Kind.INT, "Reminder sign-ups"),
    Column("gifts", Kind.INT, "Gifts"),
    Column("conversion_rate", Kind.CODE, "Gifts / shown"),
    Column("currency", Kind.CODE, "Currency"),
    Column("currency_gifts", Kind.INT, "Gifts in currency"),
    Column("revenue", Kind.MONEY, "Revenue (net of refunds)"),
)


def _key(article: str | None, campaign: str | None, variant: str | None) -> Placement:
    return (article or "", campaign or "", variant or "")


def _day_bounds(filters: ReportFilters) -> list[Any]:
    conditions: list[Any] = []
    if filters.start:
        conditions.append(EmbedCount.day >= filters.start)
    if filters.end:
        conditions.append(EmbedCount.day <= filters.end)
    return conditions


class _Line:
    def __init__(self) -> None:
        self.events: dict[str, int] = defaultdict(int)
        self.reminders = 0
        self.money: dict[str, list[int]] = {}  # currency -> [gifts, net minor units]

    @property
    def gifts(self) -> int:
        return sum(g for g, _ in self.money.values())


def _placements(filters: ReportFilters, zone: ZoneInfo) -> dict[Placement, _Line]:
    start, end = filters.bounds(zone)
    lines: dict[Placement, _Line] = defaultdict(_Line)
    campaign = [EmbedCount.campaign == filters.campaign] if filters.campaign else []
    counted = db.session.execute(
        select(
            EmbedCount.article,
            EmbedCount.campaign,
            EmbedCount.variant,
            as_text(EmbedCount.event),
            func.sum(EmbedCount.count),
        )
        .where(*_day_bounds(filters), *campaign)
        .group_by(EmbedCount.article, EmbedCount.campaign, EmbedCount.variant, EmbedCount.event)
    )
    for article, camp, variant, event, total in counted:
        lines[_key(article, camp, variant)].events[event] += int(total)

    attributed = or_(
        Donation.article.is_not(None), Donation.campaign.is_not(None), Donation.variant.is_not(None)
    )
    gifts = db.session.execute(
        select(
            Donation.article,
            Donation.campaign,
            Donation.variant,
            Donation.currency,
            func.count(),
            func.sum(Donation.amount + Donation.fee_cover_amount - Donation.refunded_amount),
        )
        .where(
            as_text(Donation.status) == DonationStatus.SUCCEEDED.value,
            first_payments(),
            attributed,
            *between(LEDGER_DATE, start, end),
            *([Donation.campaign == filters.campaign] if filters.campaign else []),
        )
        .group_by(Donation.article, Donation.campaign, Donation.variant, Donation.currency)
    )
    for gift in gifts:
        lines[_key(*gift[:3])].money[gift[3]] = [int(gift[4]), int(gift[5] or 0)]

    signed_up = db.session.execute(
        select(Reminder.article, Reminder.campaign, Reminder.variant, func.count())
        .where(
            or_(
                Reminder.article.is_not(None),
                Reminder.campaign.is_not(None),
                Reminder.variant.is_not(None),
            ),
            *between(Reminder.created_at, start, end),
            *([Reminder.campaign == filters.campaign] if filters.campaign else []),
        )
        .group_by(Reminder.article, Reminder.campaign, Reminder.variant)
    )
    for signup in signed_up:
        lines[_key(*signup[:3])].reminders += int(signup[3])
    return dict(sorted(lines.items()))


def conversion_rate(gifts: int, impressions: int) -> str:
    return rate_text(gifts, impressions, decimals=2)


def placement_rows(filters: ReportFilters, zone: ZoneInfo) -> Iterator[Row]:
    """Per article, campaign and variant (and currency of its gifts): shown, gifts, revenue."""
    for (article, campaign, variant), line in _placements(filters, zone).items():
        shown = line.events[EmbedEvent.IMPRESSION.value]
        head = (
            article,
            campaign,
            variant,
            shown,
            line.events[EmbedEvent.CONTINUE.value],
            line.reminders,
            line.gifts,
            conversion_rate(line.gifts, shown),
        )
        if not line.money:
            yield (*head, "", 0, None)
        for currency, (count, net) in sorted(line.money.items()):
            yield (*head, currency, count, major_units(net, currency))


PLACEMENT_TOTAL_COLUMNS = (
    Column("impressions", Kind.INT, "Shown"),
    Column("gifts", Kind.INT, "Gifts"),
    Column("conversion_rate", Kind.CODE, "Gifts / shown"),
    Column("currency", Kind.CODE, "Currency"),
    Column("revenue", Kind.MONEY, "Revenue (net of refunds)"),
)


def placement_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    lines = _placements(filters, zone).values()
    if not lines:
        return Table(PLACEMENT_TOTAL_COLUMNS)
    shown = sum(line.events[EmbedEvent.IMPRESSION.value] for line in lines)
    gifts = sum(line.gifts for line in lines)
    revenue: dict[str, int] = defaultdict(int)
    for line in lines:
        for currency, (_, net) in line.money.items():
            revenue[currency] += net
    rate = conversion_rate(gifts, shown)
    rows: list[Row] = [
        (shown, gifts, rate, currency, major_units(net, currency))
        for currency, net in sorted(revenue.items())
    ] or [(shown, gifts, rate, "", None)]
    return Table(PLACEMENT_TOTAL_COLUMNS, rows)
