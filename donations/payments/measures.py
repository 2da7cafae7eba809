"""The ledger's measures, defined once: the dashboard and every report use these.

* **Reporting day**: a day runs from local midnight to the next in
  ``REPORTING_TIME_ZONE`` (:func:`day_start`); a period of days ``from``..``to``
  is inclusive of both (:func:`period_bounds`), as UTC ``[start, end)``.
* A donation **counts** when it succeeded, dated by when it succeeded (by
  when it was created, for the rare row without that time): :data:`COUNTED`,
  :data:`LEDGER_DATE`.
* **gross** = gift + fee cover: what Stripe charged.
* **fees** = Stripe's processing fee on the charge (from its balance
  transaction; 0 until known).
* **refunds** = what was refunded of those donations so far.
* **net** = gross - fees - refunds.
* **given** = gross - refunds: what a supporter gave and was not returned
  (their annual statement counts this; Stripe's fee is the newsroom's cost).
* A **fiscal year** (``FISCAL_YEAR_START``, MM-DD) is named by the calendar
  year it starts in and runs, in reporting days, to the day before the next
  start (:func:`fiscal_year_bounds`, :func:`fiscal_year_of`).
* **fee shortfall** = where the reader covered the fee, how much more the fee
  was than the cover (an international or premium card): what the newsroom
  got less than the gift. Empty without a cover or before the fee is known.
* **MRR** = what active plans charge a month: monthly plans plus annual
  plans / 12 (the sum, rounded half up), per currency (:func:`mrr`).
* **New supporters** of a period: people whose first counted donation falls in it.
* **Lapsed supporters** of a period: people whose status is *lapsed*
  (:class:`donations.payments.lifecycle.SupporterStatus`: their recurring
  support ended because payments failed -- a plan left unpaid, or cancelled by
  Stripe for failed payments or a dispute -- and no plan of theirs is active or
  past due) and whose last plan ended in the period.

All money is integer minor units, per currency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, null, select
from sqlalchemy.sql import ColumnElement

from donations.db import db
from donations.payments.lifecycle import SupporterStatus, supporter_status
from donations.supporters.models import (
    Donation,
    DonationStatus,
    Frequency,
    PlanStatus,
    RecurringPlan,
    Supporter,
)

# -- the reporting day ---------------------------------------------------------------


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` begins in ``zone`` (the reporting-day boundary)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def period_bounds(
    first: date | None, last: date | None, zone: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    """Days ``first``..``last`` (inclusive; None is open) as UTC ``[start, end)``."""
    return (
        day_start(first, zone) if first else None,
        day_start(last + timedelta(days=1), zone) if last else None,
    )


def between(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    """``start <= column < end``, either side open when None."""
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions


def fiscal_year_days(year: int, start: tuple[int, int]) -> tuple[date, date]:
    """The first and last day of fiscal ``year``, which starts on ``start`` (month, day)."""
    first = date(year, *start)
    return first, date(year + 1, *start) - timedelta(days=1)


def fiscal_year_bounds(
    year: int, start: tuple[int, int], zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """Fiscal ``year`` as UTC ``[start, end)``: its reporting days, first to last."""
    first, last = fiscal_year_days(year, start)
    return day_start(first, zone), day_start(last + timedelta(days=1), zone)


def fiscal_year_of(moment: datetime, start: tuple[int, int], zone: ZoneInfo) -> int:
    """The fiscal year whose reporting days include ``moment``."""
    local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone).date()
    return local.year if (local.month, local.day) >= start else local.year - 1


# -- money ---------------------------------------------------------------------------------

COUNTED: ColumnElement[bool] = Donation.status == DonationStatus.SUCCEEDED
LEDGER_DATE = func.coalesce(Donation.succeeded_at, Donation.created_at)
GROSS = Donation.amount + Donation.fee_cover_amount
FEE = func.coalesce(Donation.fee, 0)
REFUNDS = Donation.refunded_amount
FEE_SHORTFALL: ColumnElement[int | None] = case(
    (
        and_(Donation.fee_cover_amount > 0, Donation.fee > Donation.fee_cover_amount),
        Donation.fee - Donation.fee_cover_amount,
    ),
    (and_(Donation.fee_cover_amount > 0, Donation.fee.is_not(None)), 0),
    else_=null(),
)


def fee_shortfall(donation: Donation) -> int | None:
    """:data:`FEE_SHORTFALL` of one donation."""
    if not donation.fee_cover_amount or donation.fee is None:
        return None
    return max(donation.fee - donation.fee_cover_amount, 0)


@dataclass(frozen=True)
class MoneyTotals:
    """One currency's counted donations: how many, gross, fees, refunds and net."""

    currency: str
    count: int
    gross: int
    fees: int
    refunds: int

    @property
    def net(self) -> int:
        return self.gross - self.fees - self.refunds

    @property
    def given(self) -> int:
        """What the supporters gave and kept giving: gross less what was refunded."""
        return self.gross - self.refunds


def money_sums() -> tuple[Any, ...]:
    """The aggregates of :class:`MoneyTotals` after its currency: count, gross, fees, refunds."""
    return (func.count(), func.sum(GROSS), func.sum(FEE), func.sum(REFUNDS))


def money_totals_of(rows: Iterable[Any]) -> list[MoneyTotals]:
    """:class:`MoneyTotals` from ``(currency, count, gross, fees, refunds)`` rows."""
    return [
        MoneyTotals(str(c), int(n), int(g or 0), int(f or 0), int(r or 0)) for c, n, g, f, r in rows
    ]


def money_totals(
    start: datetime | None, end: datetime | None, *conditions: Any
) -> list[MoneyTotals]:
    """Counted donations dated in ``[start, end)``, per currency (further ``conditions`` narrow)."""
    rows = db.session.execute(
        select(Donation.currency, *money_sums())
        .where(COUNTED, *between(LEDGER_DATE, start, end), *conditions)
        .group_by(Donation.currency)
        .order_by(Donation.currency)
    ).all()
    return money_totals_of(rows)


# -- recurring revenue ------------------------------------------------------------------------

PLAN_CHARGE = RecurringPlan.amount + RecurringPlan.fee_cover_amount
# Plans whose charge counts in MRR.
MRR_STATUSES = (PlanStatus.ACTIVE,)


def mrr(charges: Iterable[tuple[str, int]]) -> int:
    """MRR from ``(frequency, summed charge)`` pairs of active plans in one currency."""
    monthly = annual = 0
    for frequency, total in charges:
        if str(frequency) == Frequency.ANNUAL.value:
            annual += int(total or 0)
        else:
            monthly += int(total or 0)
    return monthly + (annual + 6) // 12


# -- supporters ---------------------------------------------------------------------------------


def new_supporters(start: datetime | None, end: datetime | None) -> int:
    """People whose first counted donation is dated in ``[start, end)``."""
    firsts = (
        select(Donation.supporter_id)
        .where(COUNTED)
        .group_by(Donation.supporter_id)
        .having(*between(func.min(LEDGER_DATE), start, end))
        .subquery()
    )
    return int(db.session.scalar(select(func.count()).select_from(firsts)) or 0)


PLAN_ENDED_AT = func.coalesce(RecurringPlan.canceled_at, RecurringPlan.updated_at)
_ENDED = (PlanStatus.CANCELED, PlanStatus.UNPAID, PlanStatus.INCOMPLETE_EXPIRED)


def lapsed_supporters(start: datetime | None, end: datetime | None) -> int:
    """People who are lapsed (the lifecycle's status) and whose last plan ended in the period."""
    live = select(RecurringPlan.supporter_id).where(
        RecurringPlan.status.in_([PlanStatus.ACTIVE, PlanStatus.PAST_DUE])
    )
    last_end = (
        select(RecurringPlan.supporter_id, func.max(PLAN_ENDED_AT).label("ended"))
        .where(RecurringPlan.status.in_(_ENDED), RecurringPlan.supporter_id.not_in(live))
        .group_by(RecurringPlan.supporter_id)
        .subquery()
    )
    candidates = db.session.scalars(
        select(Supporter)
        .join(last_end, last_end.c.supporter_id == Supporter.id)
        .where(*between(last_end.c.ended, start, end))
    ).all()
    return sum(1 for s in candidates if supporter_status(s) is SupporterStatus.LAPSED)
