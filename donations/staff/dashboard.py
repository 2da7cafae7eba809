"""The numbers on the back office's dashboard.

Every measure -- gross, fees, refunds, net, MRR, new and lapsed supporters,
the reporting day -- is defined once in :mod:`donations.payments.measures`,
which the reports use too, so the two agree by construction. Here only the
periods: today, this month and the trailing 12 months (this calendar month
and the 11 before it) in the reporting time zone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from donations.db import db
from donations.payments import measures
from donations.payments.measures import COUNTED, GROSS, LEDGER_DATE, MoneyTotals, day_start
from donations.payments.models import refund_state_sql, with_dispute_outcomes
from donations.supporters.models import (
    Donation,
    Frequency,
    PlanStatus,
    RecurringPlan,
    RefundState,
)

# The dashboard's money rows are the measures' (kept under the old name for templates).
MoneyRow = MoneyTotals


@dataclass(frozen=True)
class Period:
    key: str
    label: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive


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
    return day_start(day, zone)


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


def _counted_between(start: datetime, end: datetime) -> list[Any]:
    return [COUNTED, start <= LEDGER_DATE, end > LEDGER_DATE]


def totals(start: datetime, end: datetime) -> list[MoneyTotals]:
    return measures.money_totals(start, end)


def refund_states(start: datetime, end: datetime) -> dict[str, int]:
    """How many of the period's donations are partially refunded, refunded, disputed, lost."""
    state = refund_state_sql()
    rows = db.session.execute(
        with_dispute_outcomes(select(state, func.count()).select_from(Donation))
        .where(*_counted_between(start, end), state.is_not(None))
        .group_by(state)
    ).all()
    counts = {str(s): 0 for s in RefundState}
    counts.update({str(key): int(n) for key, n in rows})
    return counts


def breakdown(start: datetime, end: datetime, by: str) -> list[BreakdownRow]:
    """Count and gross per currency and ``by`` ("frequency" or "method")."""
    column = {"frequency": Donation.frequency, "method": Donation.method}[by]
    rows = db.session.execute(
        select(column, Donation.currency, func.count(), func.sum(GROSS))
        .where(*_counted_between(start, end))
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
    rows = db.session.execute(
        select(
            RecurringPlan.currency,
            RecurringPlan.status,
            RecurringPlan.frequency,
            func.count(),
            func.sum(measures.PLAN_CHARGE),
        )
        .where(RecurringPlan.status.in_([PlanStatus.ACTIVE, PlanStatus.PAST_DUE]))
        .group_by(RecurringPlan.currency, RecurringPlan.status, RecurringPlan.frequency)
    ).all()
    active: dict[str, int] = defaultdict(int)
    past_due: dict[str, int] = defaultdict(int)
    charges: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for currency, status, frequency, n, total in rows:
        if status is PlanStatus.PAST_DUE:
            past_due[currency] += int(n)
        else:
            active[currency] += int(n)
        if status in measures.MRR_STATUSES:
            charges[currency].append((str(frequency), int(total or 0)))
    currencies = sorted(set(active) | set(past_due))
    return [RecurringRow(c, active[c], past_due[c], measures.mrr(charges[c])) for c in currencies]


def new_supporters(start: datetime, end: datetime) -> int:
    return measures.new_supporters(start, end)


def lapsed_supporters(start: datetime, end: datetime) -> int:
    return measures.lapsed_supporters(start, end)


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
    totals: dict[str, list[MoneyTotals]]
    by_frequency: dict[str, list[BreakdownRow]]
    by_method: dict[str, list[BreakdownRow]]
    new_supporters: dict[str, int]
    lapsed_supporters: dict[str, int]
    refund_states: dict[str, dict[str, int]]
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
        refund_states={p.key: refund_states(p.start, p.end) for p in spans},
        recurring=recurring(),
        revenue=monthly_revenue(zone, now),
    )
