"""The monthly summary: per month, currency and frequency."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select

from donations.db import db
from donations.payments.measures import COUNTED, LEDGER_DATE, MoneyTotals, money_sums
from donations.staff.reports.exporters import Column, Kind
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.ledger import MONEY_TOTAL_COLUMNS, money_total_cells
from donations.staff.reports.sql import (
    Row,
    Table,
    as_text,
    between,
    local_month,
    prepare_connection,
)
from donations.supporters.models import (
    Donation,
    Frequency,
    PlanStatus,
    RecurringPlan,
)

MONTHLY_COLUMNS = (
    Column("month", Kind.CODE, "Month"),
    Column("currency", Kind.CODE, "Currency"),
    Column("frequency", Kind.CODE, "Frequency"),
    Column("donations", Kind.INT, "Donations"),
    Column("gross", Kind.MONEY, "Gross"),
    Column("fees", Kind.MONEY, "Fees"),
    Column("refunds", Kind.MONEY, "Refunds"),
    Column("net", Kind.MONEY, "Net"),
    Column("new_plans", Kind.INT, "New plans"),
    Column("cancelled_plans", Kind.INT, "Cancelled plans"),
)
_FREQUENCY_ORDER = {f.value: i for i, f in enumerate(Frequency)}


def _monthly(filters: ReportFilters, zone: ZoneInfo) -> dict[tuple[str, str, str], list[int]]:
    """(month, currency, frequency) -> [count, gross, fees, refunds, new plans, cancelled]."""
    prepare_connection(db.session.connection())
    start, end = filters.bounds(zone)
    cells: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0] * 6)

    def narrowed(currency: Any, frequency: Any) -> list[Any]:
        conditions = []
        if filters.currency:
            conditions.append(currency == filters.currency)
        if filters.frequency:
            conditions.append(as_text(frequency) == filters.frequency.value)
        return conditions

    month = local_month(LEDGER_DATE, zone.key).label("month")
    for key, currency, frequency, count, gross, fees, refunds in db.session.execute(
        select(
            month,
            Donation.currency,
            as_text(Donation.frequency),
            *money_sums(),
        )
        .where(
            COUNTED,
            *between(LEDGER_DATE, start, end),
            *narrowed(Donation.currency, Donation.frequency),
        )
        .group_by("month", Donation.currency, as_text(Donation.frequency))
    ):
        cells[(key, currency, frequency)][:4] = [
            int(count),
            int(gross or 0),
            int(fees or 0),
            int(refunds or 0),
        ]

    for index, moment, extra in (
        (4, RecurringPlan.started_at, RecurringPlan.started_at.is_not(None)),
        (
            5,
            RecurringPlan.canceled_at,
            and_(
                as_text(RecurringPlan.status) == PlanStatus.CANCELED.value,
                RecurringPlan.started_at.is_not(None),
            ),
        ),
    ):
        month = local_month(moment, zone.key).label("month")
        for key, currency, frequency, count in db.session.execute(
            select(month, RecurringPlan.currency, as_text(RecurringPlan.frequency), func.count())
            .where(
                moment.is_not(None),
                extra,
                *between(moment, start, end),
                *narrowed(RecurringPlan.currency, RecurringPlan.frequency),
            )
            .group_by("month", RecurringPlan.currency, as_text(RecurringPlan.frequency))
        ):
            cells[(key, currency, frequency)][index] = int(count)
    return cells


def monthly_rows(filters: ReportFilters, zone: ZoneInfo) -> Iterator[Row]:
    """Monthly summary: month x currency x frequency."""
    cells = _monthly(filters, zone)
    for month, currency, frequency in sorted(
        cells, key=lambda k: (k[0], k[1], _FREQUENCY_ORDER.get(k[2], 9))
    ):
        count, gross, fees, refunds, new, cancelled = cells[(month, currency, frequency)]
        money = MoneyTotals(currency, count, gross, fees, refunds)
        yield (month, currency, frequency, *money_total_cells(money), new, cancelled)


MONTHLY_TOTAL_COLUMNS = (
    *MONEY_TOTAL_COLUMNS,
    Column("new_plans", Kind.INT, "New plans"),
    Column("cancelled_plans", Kind.INT, "Cancelled plans"),
)


def monthly_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    sums: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    for (_, currency, _), counts in _monthly(filters, zone).items():
        sums[currency] = [a + b for a, b in zip(sums[currency], counts, strict=True)]
    table = Table(MONTHLY_TOTAL_COLUMNS)
    for currency in sorted(sums):
        count, gross, fees, refunds, new, cancelled = sums[currency]
        money = MoneyTotals(currency, count, gross, fees, refunds)
        table.rows.append((currency, *money_total_cells(money), new, cancelled))
    return table
