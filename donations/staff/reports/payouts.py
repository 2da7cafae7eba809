"""Payouts reconciliation: what each payout carried and whether it adds up."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from donations.payments.measures import FEE, GROSS
from donations.payments.models import Payout, PayoutStatus, Refund
from donations.staff.reports.exporters import Column, Kind
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.sql import UTC_ZONE, Row, Table, as_text, between, major_units, stream
from donations.supporters.models import Donation

PAYOUT_COLUMNS = (
    Column("stripe_payout_id", Kind.CODE, "Payout"),
    Column("arrival_date", Kind.DATE, "Arrival"),
    Column("status", Kind.CODE, "Status"),
    Column("currency", Kind.CODE, "Currency"),
    Column("amount", Kind.MONEY, "Amount"),
    Column("donations", Kind.INT, "Donations"),
    Column("gross", Kind.MONEY, "Gross"),
    Column("fees", Kind.MONEY, "Fees"),
    Column("refunds", Kind.INT, "Refunds"),
    Column("refunded", Kind.MONEY, "Refunded"),
    Column("expected", Kind.MONEY, "Expected"),
    Column("difference", Kind.MONEY, "Difference"),
    Column("reconciled", Kind.CODE, "Reconciled"),
)
# Stripe lists the transactions of automatic payouts only; a failed or
# canceled payout gave its money back, so no ledger row stays linked to it.
_NOT_RECONCILABLE = frozenset({PayoutStatus.FAILED.value, PayoutStatus.CANCELED.value})


@dataclass(frozen=True)
class PayoutLine:
    stripe_payout_id: str
    arrival: date
    status: str
    currency: str
    amount: int
    donations: int
    gross: int
    fees: int
    refunds: int
    refunded: int
    automatic: bool

    @property
    def expected(self) -> int:
        return self.gross - self.fees - self.refunded

    @property
    def difference(self) -> int:
        return self.amount - self.expected

    @property
    def reconciled(self) -> str:
        if self.status in _NOT_RECONCILABLE or not self.automatic:
            return "n/a"
        return "yes" if self.difference == 0 else "no"


def _payout_lines(filters: ReportFilters) -> Iterator[PayoutLine]:
    # Stripe's arrival_date is a calendar day (given as its midnight UTC), so
    # it is filtered and shown as that day whatever the reporting time zone.
    start, end = filters.bounds(UTC_ZONE)
    gifts = (
        select(
            Donation.payout_id.label("payout_id"),
            func.count().label("n"),
            func.sum(GROSS).label("gross"),
            func.sum(FEE).label("fees"),
        )
        .where(Donation.payout_id.is_not(None))
        .group_by(Donation.payout_id)
        .subquery()
    )
    refunds = (
        select(
            Refund.payout_id.label("payout_id"),
            func.count().label("n"),
            func.sum(Refund.amount).label("amount"),
        )
        .where(Refund.payout_id.is_not(None))
        .group_by(Refund.payout_id)
        .subquery()
    )
    conditions = between(Payout.arrival_date, start, end)
    if filters.status:
        conditions.append(as_text(Payout.status) == filters.status)
    if filters.currency:
        conditions.append(Payout.currency == filters.currency)
    statement = (
        select(
            Payout.stripe_payout_id,
            Payout.arrival_date,
            as_text(Payout.status),
            Payout.currency,
            Payout.amount,
            func.coalesce(gifts.c.n, 0),
            func.coalesce(gifts.c.gross, 0),
            func.coalesce(gifts.c.fees, 0),
            func.coalesce(refunds.c.n, 0),
            func.coalesce(refunds.c.amount, 0),
            Payout.automatic,
        )
        .outerjoin(gifts, gifts.c.payout_id == Payout.id)
        .outerjoin(refunds, refunds.c.payout_id == Payout.id)
        .where(*conditions)
        .order_by(Payout.arrival_date, Payout.id)
    )
    for row in stream(statement):
        yield PayoutLine(
            stripe_payout_id=row[0],
            arrival=row[1].astimezone(UTC).date(),
            status=row[2],
            currency=row[3],
            amount=row[4],
            donations=int(row[5]),
            gross=int(row[6]),
            fees=int(row[7]),
            refunds=int(row[8]),
            refunded=int(row[9]),
            automatic=bool(row[10]),
        )


def payout_rows(filters: ReportFilters, zone: ZoneInfo) -> Iterator[Row]:
    """Payouts: each with the donations, fees and refunds it carried, and whether they add up."""
    for line in _payout_lines(filters):
        currency = line.currency
        yield (
            line.stripe_payout_id,
            line.arrival,
            line.status,
            currency,
            major_units(line.amount, currency),
            line.donations,
            major_units(line.gross, currency),
            major_units(line.fees, currency),
            line.refunds,
            major_units(line.refunded, currency),
            major_units(line.expected, currency),
            major_units(line.difference, currency),
            line.reconciled,
        )


PAYOUT_TOTAL_COLUMNS = (
    Column("currency", Kind.CODE, "Currency"),
    Column("payouts", Kind.INT, "Payouts"),
    Column("amount", Kind.MONEY, "Amount"),
    Column("reconciled", Kind.INT, "Reconciled"),
    Column("not_reconciled", Kind.INT, "Not reconciled"),
)


def payout_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for line in _payout_lines(filters):
        total = sums[line.currency]
        total[0] += 1
        total[1] += line.amount
        total[2] += line.reconciled == "yes"
        total[3] += line.reconciled == "no"
    table = Table(PAYOUT_TOTAL_COLUMNS)
    for currency in sorted(sums):
        count, amount, good, bad = sums[currency]
        table.rows.append((currency, count, major_units(amount, currency), good, bad))
    return table
