"""The numbers on the back office's dashboard.

Definitions (the reports use the same ones):

* A donation counts in a period when it **succeeded** in it, by
  ``succeeded_at`` in the reporting time zone.
* gross = gift + fee cover (what Stripe charged); fees = Stripe's fee
  (0 until known); refunds = what was refunded of those donations;
  net = gross - fees - refunds. All integer minor units, per currency.
* Trailing 12 months = this calendar month and the 11 before it.
* MRR = monthly plans + annual plans / 12 (rounded half up), active plans only.
* New supporters: their first successful donation fell in the period.
  Lapsed: a plan of theirs ended (cancelled or expired) in the period and
  they have no active or past-due plan left.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.sql import ColumnElement

from donations.db import db
from donations.supporters.models import (
    Donation,
    DonationStatus,
    Frequency,
    PlanStatus,
    RecurringPlan,
)

GROSS = Donation.amount + Donation.fee_cover_amount
FEE = func.coalesce(Donation.fee, 0)


@dataclass(frozen=True)
class Period:
    key: str
    label: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive


@dataclass(frozen=True)
class MoneyRow:
    currency: str
    count: int
    gross: int
    fees: int
    refunds: int

    @property
    def net(self) -> int:
        return self.gross - self.fees - self.refunds


@dataclass(frozen=True)
class BreakdownRow:
    key: str
    currency: str
    count: int
    gross: int


@dataclass(frozen=True)
class RecurringRow:
    currency: str
    active: int
    past_due: int
    mrr: int


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(ZoneInfo("UTC"))


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def periods(zone: ZoneInfo, now: datetime) -> list[Period]:
    """Today, this month and the trailing 12 months in ``zone``, as UTC bounds."""
    today = now.astimezone(zone).date()
    month = today.replace(day=1)
    next_month = _add_months(month, 1)
    return [
        Period(
            "today", "Today", _midnight(today, zone), _midnight(today + timedelta(days=1), zone)
        ),
        Period("month", "This month", _midnight(month, zone), _midnight(next_month, zone)),
        Period(
            "year",
            "Trailing 12 months",
            _midnight(_add_months(month, -11), zone),
            _midnight(next_month, zone),
        ),
    ]


def _succeeded_between(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(
        Donation.status == DonationStatus.SUCCEEDED,
        Donation.succeeded_at >= start,
        Donation.succeeded_at < end,
    )


def totals(start: datetime, end: datetime) -> list[MoneyRow]:
    rows = db.session.execute(
        select(
            Donation.currency,
            func.count(),
            func.sum(GROSS),
            func.sum(FEE),
            func.sum(Donation.refunded_amount),
        )
        .where(_succeeded_between(start, end))
        .group_by(Donation.currency)
        .order_by(Donation.currency)
    ).all()
    return [MoneyRow(c, int(n), int(g or 0), int(f or 0), int(r or 0)) for c, n, g, f, r in rows]


def breakdown(start: datetime, end: datetime, by: str) -> list[BreakdownRow]:
    """Count and gross per currency and ``by`` ("frequency" or "method")."""
    column = {"frequency": Donation.frequency, "method": Donation.method}[by]
    rows = db.session.execute(
        select(column, Donation.currency, func.count(), func.sum(GROSS))
        .where(_succeeded_between(start, end))
        .group_by(column, Donation.currency)
        .order_by(Donation.currency, column)
    ).all()
    return [
        BreakdownRow(
            str(key.value if isinstance(key, Frequency) else key or "unknown"),
            currency,
            int(n),
            int(g or 0),
        )
        for key, currency, n, g in rows
    ]


def recurring() -> list[RecurringRow]:
    """Active and past-due plans and monthly recurring revenue, per currency."""
    charge = RecurringPlan.amount + RecurringPlan.fee_cover_amount
    rows = db.session.execute(
        select(
            RecurringPlan.currency,
            RecurringPlan.status,
            RecurringPlan.frequency,
            func.count(),
            func.sum(charge),
        )
        .where(RecurringPlan.status.in_([PlanStatus.ACTIVE, PlanStatus.PAST_DUE]))
        .group_by(RecurringPlan.currency, RecurringPlan.status, RecurringPlan.frequency)
    ).all()
    active: dict[str, int] = defaultdict(int)
    past_due: dict[str, int] = defaultdict(int)
    monthly: dict[str, int] = defaultdict(int)
    annual: dict[str, int] = defaultdict(int)
    for currency, status, frequency, n, total in rows:
        if status is PlanStatus.PAST_DUE:
            past_due[currency] += int(n)
            continue
        active[currency] += int(n)
        if frequency is Frequency.ANNUAL:
            annual[currency] += int(total or 0)
        else:
            monthly[currency] += int(total or 0)
    currencies = sorted(set(active) | set(past_due))
    return [
        RecurringRow(c, active[c], past_due[c], monthly[c] + (annual[c] + 6) // 12)
        for c in currencies
    ]


def new_supporters(start: datetime, end: datetime) -> int:
    first = (
        select(Donation.supporter_id)
        .where(Donation.status == DonationStatus.SUCCEEDED)
        .group_by(Donation.supporter_id)
        .having(func.min(Donation.succeeded_at) >= start, func.min(Donation.succeeded_at) < end)
        .subquery()
    )
    return int(db.session.scalar(select(func.count()).select_from(first)) or 0)


def lapsed_supporters(start: datetime, end: datetime) -> int:
    still_active = select(RecurringPlan.supporter_id).where(
        RecurringPlan.status.in_([PlanStatus.ACTIVE, PlanStatus.PAST_DUE])
    )
    return int(
        db.session.scalar(
            select(func.count(func.distinct(RecurringPlan.supporter_id))).where(
                RecurringPlan.status.in_([PlanStatus.CANCELED, PlanStatus.INCOMPLETE_EXPIRED]),
                RecurringPlan.canceled_at >= start,
                RecurringPlan.canceled_at < end,
                RecurringPlan.supporter_id.not_in(still_active),
            )
        )
        or 0
    )


def monthly_revenue(
    zone: ZoneInfo, now: datetime, months: int = 12
) -> dict[str, list[tuple[date, int, int]]]:
    """Per currency, for each of the last ``months`` calendar months: (month, gross, net)."""
    this_month = now.astimezone(zone).date().replace(day=1)
    starts = [_add_months(this_month, offset) for offset in range(-(months - 1), 1)]
    series: dict[str, list[tuple[date, int, int]]] = {}
    for index, month in enumerate(starts):
        for row in totals(_midnight(month, zone), _midnight(_add_months(month, 1), zone)):
            points = series.setdefault(row.currency, [(m, 0, 0) for m in starts])
            points[index] = (month, row.gross, row.net)
    return dict(sorted(series.items()))


@dataclass(frozen=True)
class Dashboard:
    periods: list[Period]
    totals: dict[str, list[MoneyRow]]
    by_frequency: dict[str, list[BreakdownRow]]
    by_method: dict[str, list[BreakdownRow]]
    new_supporters: dict[str, int]
    lapsed_supporters: dict[str, int]
    recurring: list[RecurringRow]
    revenue: dict[str, list[tuple[date, int, int]]]


def dashboard(zone: ZoneInfo, now: datetime) -> Dashboard:
    spans = periods(zone, now)
    return Dashboard(
        periods=spans,
        totals={p.key: totals(p.start, p.end) for p in spans},
        by_frequency={p.key: breakdown(p.start, p.end, "frequency") for p in spans},
        by_method={p.key: breakdown(p.start, p.end, "method") for p in spans},
        new_supporters={p.key: new_supporters(p.start, p.end) for p in spans},
        lapsed_supporters={p.key: lapsed_supporters(p.start, p.end) for p in spans},
        recurring=recurring(),
        revenue=monthly_revenue(zone, now),
    )
