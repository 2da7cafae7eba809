"""One query per report, taking the filters the screen and the download share.

Definitions follow the dashboard's (see :mod:`donations.staff.dashboard`):

* A donation is dated by when it **succeeded** (when it has not, by when it
  was created), in the reporting time zone; money totals count succeeded
  donations only.
* amount = gift + fee cover (what Stripe charged); fee = Stripe's fee, empty
  until known and counted as 0 in totals; refunded = returned so far;
  net = amount - fee - refunded.
* Money is written in major units with the currency in its own column.

Each ``*_rows`` function yields tuples in the order of its ``*_COLUMNS``,
with values of the column's :class:`~donations.reports.exporters.Kind`.
Large results are read a batch at a time (``yield_per``: a server-side
cursor on PostgreSQL), so a report of any size uses the same memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Numeric,
    String,
    Text,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    or_,
    select,
    type_coerce,
    values,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from donations.db import db
from donations.mail.models import Suppression, SuppressionReason
from donations.money import THREE_DECIMAL, ZERO_DECIMAL, exponent
from donations.payments.models import Payout, PayoutStatus, Refund
from donations.reminders.models import Reminder, ReminderStatus, SkipReason
from donations.reports.exporters import FORMULA_TRIGGERS, Column, Kind
from donations.reports.filters import Consent, ReportFilters
from donations.supporters.models import (
    Donation,
    DonationStatus,
    Frequency,
    PlanStatus,
    RecurringPlan,
    Supporter,
)

# Rows fetched from the database at a time.
BATCH = 2000
_UTC = ZoneInfo("UTC")

Row = tuple[Any, ...]
AnySelect = Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class Table:
    """A small table for the screen: the totals of a report."""

    columns: tuple[Column, ...]
    rows: list[Row] = field(default_factory=list)


# -- cells ---------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _places(currency: str) -> int:
    return exponent(currency)


def major_units(amount: int, currency: str) -> Decimal:
    """``Money(amount, currency).to_major()`` without building a Money per cell.

    ``Decimal(minor).scaleb(-places)`` already carries exactly ``places``
    decimals, so ``str()`` of it is ``Money.major_text()`` (a test holds the
    two together); this runs once per money cell of a million-row export.
    """
    return Decimal(amount).scaleb(-_places(currency))


def local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A stored UTC time as a naive wall-clock time in ``zone`` (for the files)."""
    return moment.astimezone(zone).replace(tzinfo=None) if moment is not None else None


def _text(column: Any) -> ColumnElement[str]:
    """A status or other enum column read back as its stored text (no enum lookup)."""
    return type_coerce(column, String)


# -- the local month, in SQL ----------------------------------------------------------


class local_month(FunctionElement[str]):
    """``'YYYY-MM'`` of a UTC timestamp in a time zone, grouped on in SQL.

    PostgreSQL knows time zones; SQLite does not, so there it is a small
    Python function registered on the connection (see :func:`_prepare`).
    """

    type = String()
    name = "local_month"
    inherit_cache = True


_SQLITE_LOCAL_MONTH = "reports_local_month"


@compiles(local_month, "postgresql")
def _local_month_postgresql(element: local_month, compiler: SQLCompiler, **kw: Any) -> str:
    moment, zone = list(element.clauses)
    return (
        f"to_char(timezone({compiler.process(zone, **kw)}, "
        f"{compiler.process(moment, **kw)}), 'YYYY-MM')"
    )


@compiles(local_month, "sqlite")
def _local_month_sqlite(element: local_month, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{_SQLITE_LOCAL_MONTH}({compiler.process(element.clauses, **kw)})"


def _sqlite_local_month(value: str | None, zone: str) -> str | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m")


def _prepare(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        raw = connection.connection.driver_connection
        raw.create_function(  # type: ignore[union-attr]
            _SQLITE_LOCAL_MONTH, 2, _sqlite_local_month, deterministic=True
        )


def _stream(statement: AnySelect) -> Iterator[Any]:
    """The statement's rows, a batch at a time; the cursor closes when the caller stops."""
    result = db.session.execute(statement.execution_options(yield_per=BATCH))
    try:
        yield from result
    finally:
        result.close()


def _between(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions


# -- the SQL side of the ledger's COPY: the same cells, written by PostgreSQL ----------


# Code points of the formula characters: ascii() of a text is its first
# character's, which is cheaper in PostgreSQL than cutting the text.
_TRIGGER_CODES = sorted(ord(c) for c in FORMULA_TRIGGERS)


def _sql_text(value: Any) -> ColumnElement[str]:
    """Text neutralised as :func:`exporters.neutralise` does; empty as NULL.

    COPY writes an empty string as ``""`` (to tell it from NULL) where the
    csv module writes nothing, so both become NULL here.
    """
    value = type_coerce(value, String)
    neutralised = case((func.ascii(value).in_(_TRIGGER_CODES), literal("'") + value), else_=value)
    return func.nullif(neutralised, "")


def _sql_code(value: Any) -> ColumnElement[str]:
    """A CODE column as it is: NULL or a non-empty value, written alike by both paths."""
    return type_coerce(value, String)


# The currencies whose minor unit is not a hundredth, with what turns minor
# units into major ones; the rest multiply by 0.01. A product with a numeric
# factor keeps the factor's decimals: 1050 * 0.01 is 10.50, 1500 * 0.001 is
# 1.500, 3000 * 1 is 3000 -- exactly ``str(major_units())``.
CURRENCY_FACTORS = values(
    column("code", String), column("factor", Numeric), name="currency_factors", literal_binds=True
).data(
    [(code, Decimal(1)) for code in sorted(ZERO_DECIMAL)]
    + [(code, Decimal("0.001")) for code in sorted(THREE_DECIMAL)]
)


def _sql_money(minor: Any) -> ColumnElement[str]:
    """Minor units as major-unit text; the query joins CURRENCY_FACTORS on its currency."""
    factor = func.coalesce(CURRENCY_FACTORS.c.factor, Decimal("0.01"))
    return cast(minor * factor, Text)


def _sql_datetime(moment: Any, zone: ZoneInfo) -> ColumnElement[Any]:
    """The wall-clock time in ``zone``, whole seconds: ``2026-03-01 09:05:07``.

    A ``timestamp`` is written by COPY in the session's DateStyle, which
    :func:`exporters.copy_csv_chunks` sets to ISO; cheaper than to_char().
    """
    return func.date_trunc("second", func.timezone(zone.key, moment))


# -- donations ledger ---------------------------------------------------------------

LEDGER_COLUMNS = (
    Column("donation_id", Kind.INT, "#"),
    Column("date_time", Kind.DATETIME, "Date and time"),
    Column("supporter_email", Kind.TEXT, "Email"),
    Column("supporter_name", Kind.TEXT, "Name"),
    Column("amount", Kind.MONEY, "Amount"),
    Column("fee_cover", Kind.MONEY, "Fee cover"),
    Column("fee", Kind.MONEY, "Fee"),
    Column("refunded", Kind.MONEY, "Refunded"),
    Column("net", Kind.MONEY, "Net"),
    Column("currency", Kind.CODE, "Currency"),
    Column("method", Kind.CODE, "Method"),
    Column("frequency", Kind.CODE, "Frequency"),
    Column("status", Kind.CODE, "Status"),
    Column("campaign", Kind.TEXT, "Campaign"),
    Column("stripe_payment_intent_id", Kind.CODE, "Payment intent"),
    Column("stripe_charge_id", Kind.CODE, "Charge"),
    Column("stripe_invoice_id", Kind.CODE, "Invoice"),
    Column("stripe_payout_id", Kind.CODE, "Payout"),
)

LEDGER_DATE = func.coalesce(Donation.succeeded_at, Donation.created_at)
GROSS = Donation.amount + Donation.fee_cover_amount
FEE = func.coalesce(Donation.fee, 0)


def _ledger_select(*columns: Any, filters: ReportFilters, zone: ZoneInfo) -> AnySelect:
    start, end = filters.bounds(zone)
    conditions = _between(LEDGER_DATE, start, end)
    if filters.status:
        conditions.append(_text(Donation.status) == filters.status)
    if filters.currency:
        conditions.append(Donation.currency == filters.currency)
    if filters.frequency:
        conditions.append(_text(Donation.frequency) == filters.frequency.value)
    if filters.method:
        conditions.append(Donation.method == filters.method)
    if filters.campaign:
        conditions.append(Donation.campaign == filters.campaign)
    if filters.payout:
        conditions.append(Payout.stripe_payout_id == filters.payout)
    return (
        select(*columns)
        .select_from(Donation)
        .join(Supporter, Supporter.id == Donation.supporter_id)
        .outerjoin(Payout, Payout.id == Donation.payout_id)
        .where(*conditions)
    )


def ledger_statement(filters: ReportFilters, zone: ZoneInfo) -> AnySelect:
    """The ledger's rows with the values as stored (minor units, UTC)."""
    return _ledger_select(
        Donation.id,
        LEDGER_DATE,
        Supporter.email,
        Supporter.name,
        Donation.amount,
        Donation.fee_cover_amount,
        Donation.fee,
        Donation.refunded_amount,
        Donation.currency,
        Donation.method,
        _text(Donation.frequency),
        _text(Donation.status),
        Donation.campaign,
        Donation.stripe_payment_intent_id,
        Donation.stripe_charge_id,
        Donation.stripe_invoice_id,
        Payout.stripe_payout_id,
        filters=filters,
        zone=zone,
    ).order_by(LEDGER_DATE, Donation.id)


def ledger_rows(filters: ReportFilters, zone: ZoneInfo) -> Iterator[Row]:
    """Donations ledger: one row per donation."""
    for (
        donation_id,
        moment,
        email,
        name,
        amount,
        cover,
        fee,
        refunded,
        currency,
        method,
        frequency,
        status,
        campaign,
        payment_intent,
        charge,
        invoice,
        payout,
    ) in _stream(ledger_statement(filters, zone)):
        places = -_places(currency)
        gross = amount + cover
        yield (
            donation_id,
            moment.astimezone(zone).replace(tzinfo=None),
            email,
            name,
            Decimal(gross).scaleb(places),
            Decimal(cover).scaleb(places),
            Decimal(fee).scaleb(places) if fee is not None else None,
            Decimal(refunded).scaleb(places),
            Decimal(gross - (fee or 0) - refunded).scaleb(places),
            currency,
            method,
            frequency,
            status,
            campaign,
            payment_intent,
            charge,
            invoice,
            payout,
        )


def ledger_copy_statement(filters: ReportFilters, zone: ZoneInfo) -> AnySelect:
    """The ledger as CSV-ready text cells, for PostgreSQL's COPY (same rows, same order)."""
    return (
        _ledger_select(
            Donation.id,
            _sql_datetime(LEDGER_DATE, zone),
            _sql_text(Supporter.email),
            _sql_text(Supporter.name),
            _sql_money(GROSS),
            _sql_money(Donation.fee_cover_amount),
            _sql_money(Donation.fee),
            _sql_money(Donation.refunded_amount),
            _sql_money(GROSS - FEE - Donation.refunded_amount),
            _sql_code(Donation.currency),
            _sql_code(Donation.method),
            _sql_code(Donation.frequency),
            _sql_code(Donation.status),
            _sql_text(Donation.campaign),
            _sql_code(Donation.stripe_payment_intent_id),
            _sql_code(Donation.stripe_charge_id),
            _sql_code(Donation.stripe_invoice_id),
            _sql_code(Payout.stripe_payout_id),
            filters=filters,
            zone=zone,
        )
        .outerjoin(CURRENCY_FACTORS, CURRENCY_FACTORS.c.code == Donation.currency)
        .order_by(LEDGER_DATE, Donation.id)
    )


MONEY_TOTAL_COLUMNS = (
    Column("currency", Kind.CODE, "Currency"),
    Column("donations", Kind.INT, "Donations"),
    Column("gross", Kind.MONEY, "Gross"),
    Column("fees", Kind.MONEY, "Fees"),
    Column("refunds", Kind.MONEY, "Refunds"),
    Column("net", Kind.MONEY, "Net"),
)


def ledger_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    """Succeeded donations in the selection, per currency (the dashboard's totals)."""
    rows = db.session.execute(
        _ledger_select(
            Donation.currency,
            func.count(),
            func.sum(GROSS),
            func.sum(FEE),
            func.sum(Donation.refunded_amount),
            filters=filters,
            zone=zone,
        )
        .where(_text(Donation.status) == DonationStatus.SUCCEEDED.value)
        .group_by(Donation.currency)
        .order_by(Donation.currency)
    ).all()
    table = Table(MONEY_TOTAL_COLUMNS)
    for currency, count, gross, fees, refunds in rows:
        gross, fees, refunds = int(gross or 0), int(fees or 0), int(refunds or 0)
        table.rows.append(
            (
                currency,
                int(count),
                major_units(gross, currency),
                major_units(fees, currency),
                major_units(refunds, currency),
                major_units(gross - fees - refunds, currency),
            )
        )
    return table


# -- monthly summary -----------------------------------------------------------------

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
    _prepare(db.session.connection())
    start, end = filters.bounds(zone)
    cells: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0] * 6)

    def narrowed(currency: Any, frequency: Any) -> list[Any]:
        conditions = []
        if filters.currency:
            conditions.append(currency == filters.currency)
        if filters.frequency:
            conditions.append(_text(frequency) == filters.frequency.value)
        return conditions

    month = local_month(Donation.succeeded_at, zone.key).label("month")
    for key, currency, frequency, count, gross, fees, refunds in db.session.execute(
        select(
            month,
            Donation.currency,
            _text(Donation.frequency),
            func.count(),
            func.sum(GROSS),
            func.sum(FEE),
            func.sum(Donation.refunded_amount),
        )
        .where(
            _text(Donation.status) == DonationStatus.SUCCEEDED.value,
            *_between(Donation.succeeded_at, start, end),
            *narrowed(Donation.currency, Donation.frequency),
        )
        .group_by("month", Donation.currency, _text(Donation.frequency))
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
                _text(RecurringPlan.status) == PlanStatus.CANCELED.value,
                RecurringPlan.started_at.is_not(None),
            ),
        ),
    ):
        month = local_month(moment, zone.key).label("month")
        for key, currency, frequency, count in db.session.execute(
            select(month, RecurringPlan.currency, _text(RecurringPlan.frequency), func.count())
            .where(
                moment.is_not(None),
                extra,
                *_between(moment, start, end),
                *narrowed(RecurringPlan.currency, RecurringPlan.frequency),
            )
            .group_by("month", RecurringPlan.currency, _text(RecurringPlan.frequency))
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
        yield (
            month,
            currency,
            frequency,
            count,
            major_units(gross, currency),
            major_units(fees, currency),
            major_units(refunds, currency),
            major_units(gross - fees - refunds, currency),
            new,
            cancelled,
        )


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
        table.rows.append(
            (
                currency,
                count,
                major_units(gross, currency),
                major_units(fees, currency),
                major_units(refunds, currency),
                major_units(gross - fees - refunds, currency),
                new,
                cancelled,
            )
        )
    return table


# -- recurring plans -----------------------------------------------------------------

PLAN_COLUMNS = (
    Column("plan_id", Kind.INT, "#"),
    Column("started", Kind.DATETIME, "Started"),
    Column("supporter_email", Kind.TEXT, "Email"),
    Column("supporter_name", Kind.TEXT, "Name"),
    Column("amount", Kind.MONEY, "Amount"),
    Column("fee_cover", Kind.MONEY, "Fee cover"),
    Column("currency", Kind.CODE, "Currency"),
    Column("frequency", Kind.CODE, "Frequency"),
    Column("status", Kind.CODE, "Status"),
    Column("method", Kind.CODE, "Method"),
    Column("campaign", Kind.TEXT, "Campaign"),
    Column("next_renewal", Kind.DATETIME, "Next renewal"),
    Column("cancelled", Kind.DATETIME, "Cancelled"),
    Column("cancellation_reason", Kind.TEXT, "Reason"),
    Column("payments", Kind.INT, "Payments"),
    Column("paid", Kind.MONEY, "Paid"),
    Column("stripe_subscription_id", Kind.CODE, "Subscription"),
    Column("stripe_customer_id", Kind.CODE, "Customer"),
)

# A plan is dated by its first payment; one that never started, by its creation.
PLAN_DATE = func.coalesce(RecurringPlan.started_at, RecurringPlan.created_at)


def _plan_conditions(filters: ReportFilters, zone: ZoneInfo) -> list[Any]:
    start, end = filters.bounds(zone)
    conditions = _between(PLAN_DATE, start, end)
    if filters.status:
        conditions.append(_text(RecurringPlan.status) == filters.status)
    if filters.currency:
        conditions.append(RecurringPlan.currency == filters.currency)
    if filters.frequency:
        conditions.append(_text(RecurringPlan.frequency) == filters.frequency.value)
    return conditions


def plan_rows(filters: ReportFilters, zone: ZoneInfo) -> Iterator[Row]:
    """Recurring plans: one row per plan, with what it has paid so far."""
    paid = (
        select(
            Donation.recurring_plan_id.label("plan_id"),
            func.count().label("payments"),
            func.sum(GROSS).label("paid"),
        )
        .where(
            _text(Donation.status) == DonationStatus.SUCCEEDED.value,
            Donation.recurring_plan_id.is_not(None),
        )
        .group_by(Donation.recurring_plan_id)
        .subquery()
    )
    statement = (
        select(
            RecurringPlan.id,
            PLAN_DATE,
            Supporter.email,
            Supporter.name,
            RecurringPlan.amount,
            RecurringPlan.fee_cover_amount,
            RecurringPlan.currency,
            _text(RecurringPlan.frequency),
            _text(RecurringPlan.status),
            RecurringPlan.method,
            RecurringPlan.campaign,
            RecurringPlan.next_renewal_at,
            RecurringPlan.canceled_at,
            RecurringPlan.cancellation_reason,
            func.coalesce(paid.c.payments, 0),
            func.coalesce(paid.c.paid, 0),
            RecurringPlan.stripe_subscription_id,
            Supporter.stripe_customer_id,
        )
        .join(Supporter, Supporter.id == RecurringPlan.supporter_id)
        .outerjoin(paid, paid.c.plan_id == RecurringPlan.id)
        .where(*_plan_conditions(filters, zone))
        .order_by(PLAN_DATE, RecurringPlan.id)
    )
    for row in _stream(statement):
        currency = row[6]
        yield (
            row[0],
            local(row[1], zone),
            row[2],
            row[3],
            major_units(row[4], currency),
            major_units(row[5], currency),
            currency,
            row[7],
            row[8],
            row[9],
            row[10],
            local(row[11], zone),
            local(row[12], zone),
            row[13],
            int(row[14]),
            major_units(int(row[15]), currency),
            row[16],
            row[17],
        )


PLAN_TOTAL_COLUMNS = (
    Column("currency", Kind.CODE, "Currency"),
    Column("plans", Kind.INT, "Plans"),
    Column("active", Kind.INT, "Active"),
    Column("past_due", Kind.INT, "Past due"),
    Column("cancelled", Kind.INT, "Cancelled"),
    Column("mrr", Kind.MONEY, "Monthly recurring revenue"),
)


def plan_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    """Plans per currency and status; MRR as on the dashboard (active plans only)."""
    charge = RecurringPlan.amount + RecurringPlan.fee_cover_amount
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    monthly: dict[str, int] = defaultdict(int)
    annual: dict[str, int] = defaultdict(int)
    for currency, status, frequency, count, total in db.session.execute(
        select(
            RecurringPlan.currency,
            _text(RecurringPlan.status),
            _text(RecurringPlan.frequency),
            func.count(),
            func.sum(charge),
        )
        .where(*_plan_conditions(filters, zone))
        .group_by(
            RecurringPlan.currency,
            _text(RecurringPlan.status),
            _text(RecurringPlan.frequency),
        )
    ):
        counts[currency][status] += int(count)
        counts[currency]["all"] += int(count)
        if status == PlanStatus.ACTIVE.value:
            target = annual if frequency == Frequency.ANNUAL.value else monthly
            target[currency] += int(total or 0)
    table = Table(PLAN_TOTAL_COLUMNS)
    for currency in sorted(counts):
        by_status = counts[currency]
        table.rows.append(
            (
                currency,
                by_status["all"],
                by_status[PlanStatus.ACTIVE.value],
                by_status[PlanStatus.PAST_DUE.value],
                by_status[PlanStatus.CANCELED.value],
                major_units(monthly[currency] + (annual[currency] + 6) // 12, currency),
            )
        )
    return table


# -- payouts reconciliation ----------------------------------------------------------

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
    start, end = filters.bounds(_UTC)
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
    conditions = _between(Payout.arrival_date, start, end)
    if filters.status:
        conditions.append(_text(Payout.status) == filters.status)
    if filters.currency:
        conditions.append(Payout.currency == filters.currency)
    statement = (
        select(
            Payout.stripe_payout_id,
            Payout.arrival_date,
            _text(Payout.status),
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
    for row in _stream(statement):
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


# -- reminders funnel ----------------------------------------------------------------

FUNNEL_COLUMNS = (
    Column("month", Kind.CODE, "Signed up in"),
    Column("signed_up", Kind.INT, "Signed up"),
    Column("sent", Kind.INT, "Sent"),
    Column("converted", Kind.INT, "Converted"),
    Column("unsubscribed", Kind.INT, "Unsubscribed"),
)


def _funnel(filters: ReportFilters, zone: ZoneInfo) -> list[tuple[str, int, int, int, int]]:
    _prepare(db.session.connection())
    start, end = filters.bounds(zone)
    # Converted: a gift that succeeded, or a plan that started, through its link.
    converted = or_(
        Reminder.id.in_(
            select(Donation.reminder_id).where(
                _text(Donation.status) == DonationStatus.SUCCEEDED.value,
                Donation.reminder_id.is_not(None),
            )
        ),
        Reminder.id.in_(
            select(RecurringPlan.reminder_id).where(
                RecurringPlan.started_at.is_not(None), RecurringPlan.reminder_id.is_not(None)
            )
        ),
    )
    # Unsubscribed: withdrawn by the reader's unsubscribe, or the address is
    # on the suppression list as unsubscribed (e.g. from the reminder's link).
    unsubscribed = or_(
        _text(Reminder.skip_reason) == SkipReason.UNSUBSCRIBED.value,
        Reminder.address_hash.in_(
            select(Suppression.address_hash).where(
                _text(Suppression.reason) == SuppressionReason.UNSUBSCRIBED.value
            )
        ),
    )

    def counted(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    month = local_month(Reminder.created_at, zone.key).label("month")
    rows = db.session.execute(
        select(
            month,
            func.count(),
            counted(_text(Reminder.status) == ReminderStatus.SENT.value),
            counted(converted),
            counted(unsubscribed),
        )
        .where(*_between(Reminder.created_at, start, end))
        .group_by("month")
        .order_by("month")
    ).all()
    return [(m, int(a), int(b or 0), int(c or 0), int(d or 0)) for m, a, b, c, d in rows]


def funnel_rows(filters: ReportFilters, zone: ZoneInfo) -> Iterator[Row]:
    """Reminders funnel: per month of sign-up, how many were sent, converted, unsubscribed."""
    yield from _funnel(filters, zone)


FUNNEL_TOTAL_COLUMNS = (
    *FUNNEL_COLUMNS[1:],
    Column("sent_rate", Kind.CODE, "Sent / signed up"),
    Column("conversion_rate", Kind.CODE, "Converted / sent"),
)


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else ""


def funnel_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    months = _funnel(filters, zone)
    if not months:
        return Table(FUNNEL_TOTAL_COLUMNS)
    signed = sum(row[1] for row in months)
    sent = sum(row[2] for row in months)
    converted = sum(row[3] for row in months)
    unsubscribed = sum(row[4] for row in months)
    return Table(
        FUNNEL_TOTAL_COLUMNS,
        [(signed, sent, converted, unsubscribed, _rate(sent, signed), _rate(converted, sent))],
    )


# -- supporters ----------------------------------------------------------------------

SUPPORTER_COLUMNS = (
    Column("supporter_id", Kind.INT, "#"),
    Column("email", Kind.TEXT, "Email"),
    Column("name", Kind.TEXT, "Name"),
    Column("country", Kind.TEXT, "Country"),
    Column("locale", Kind.CODE, "Language"),
    Column("newsletter_opt_in", Kind.CODE, "Newsletter"),
    Column("created", Kind.DATETIME, "Since"),
    Column("donations", Kind.INT, "Donations"),
    Column("first_donation", Kind.DATETIME, "First donation"),
    Column("last_donation", Kind.DATETIME, "Last donation"),
    Column("active_plans", Kind.INT, "Active plans"),
    Column("stripe_customer_id", Kind.CODE, "Customer"),
)


def _supporter_conditions(filters: ReportFilters, zone: ZoneInfo) -> list[Any]:
    start, end = filters.bounds(zone)
    # Erased people stay in the ledger without their details: not a contact list entry.
    conditions = [Supporter.erased_at.is_(None), *_between(Supporter.created_at, start, end)]
    if filters.consent is Consent.YES:
        conditions.append(Supporter.newsletter_opt_in.is_(True))
    elif filters.consent is Consent.NO:
        conditions.append(Supporter.newsletter_opt_in.is_(False))
    return conditions


def supporter_rows(filters: ReportFilters, zone: ZoneInfo) -> Iterator[Row]:
    """Supporters with their newsletter consent, gifts and active plans."""
    gifts = (
        select(
            Donation.supporter_id.label("supporter_id"),
            func.count().label("n"),
            func.min(Donation.succeeded_at).label("first"),
            func.max(Donation.succeeded_at).label("last"),
        )
        .where(_text(Donation.status) == DonationStatus.SUCCEEDED.value)
        .group_by(Donation.supporter_id)
        .subquery()
    )
    plans = (
        select(RecurringPlan.supporter_id.label("supporter_id"), func.count().label("n"))
        .where(_text(RecurringPlan.status) == PlanStatus.ACTIVE.value)
        .group_by(RecurringPlan.supporter_id)
        .subquery()
    )
    statement = (
        select(
            Supporter.id,
            Supporter.email,
            Supporter.name,
            Supporter.country,
            Supporter.locale,
            Supporter.newsletter_opt_in,
            Supporter.created_at,
            func.coalesce(gifts.c.n, 0),
            gifts.c.first,
            gifts.c.last,
            func.coalesce(plans.c.n, 0),
            Supporter.stripe_customer_id,
        )
        .outerjoin(gifts, gifts.c.supporter_id == Supporter.id)
        .outerjoin(plans, plans.c.supporter_id == Supporter.id)
        .where(*_supporter_conditions(filters, zone))
        .order_by(Supporter.created_at, Supporter.id)
    )
    for row in _stream(statement):
        yield (
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            "yes" if row[5] else "no",
            local(row[6], zone),
            int(row[7]),
            local(row[8], zone),
            local(row[9], zone),
            int(row[10]),
            row[11],
        )


SUPPORTER_TOTAL_COLUMNS = (
    Column("supporters", Kind.INT, "Supporters"),
    Column("opted_in", Kind.INT, "Newsletter: yes"),
    Column("opted_out", Kind.INT, "Newsletter: no"),
)


def supporter_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    yes = func.sum(case((Supporter.newsletter_opt_in.is_(True), 1), else_=0))
    count, opted_in = db.session.execute(
        select(func.count(), yes).where(*_supporter_conditions(filters, zone))
    ).one()
    if not count:
        return Table(SUPPORTER_TOTAL_COLUMNS)
    return Table(
        SUPPORTER_TOTAL_COLUMNS, [(int(count), int(opted_in or 0), int(count) - int(opted_in or 0))]
    )


# -- the catalogue -------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    name: str  # in the URL: /staff/reports/<name>.csv
    title: str
    summary: str  # one sentence on the index and the screen
    columns: tuple[Column, ...]
    rows: Callable[[ReportFilters, ZoneInfo], Iterator[Row]]
    totals: Callable[[ReportFilters, ZoneInfo], Table]
    filters: tuple[str, ...] = ("from", "to")
    statuses: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # The same CSV cells as text, for PostgreSQL's COPY (the fast path).
    copy_statement: Callable[[ReportFilters, ZoneInfo], AnySelect] | None = None


def _values(enum: Any) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


REPORTS: dict[str, Report] = {
    report.name: report
    for report in (
        Report(
            "ledger",
            "Donations ledger",
            "One row per donation, with its fees, refunds, Stripe ids and payout.",
            LEDGER_COLUMNS,
            ledger_rows,
            ledger_totals,
            filters=(
                "from",
                "to",
                "status",
                "currency",
                "frequency",
                "method",
                "campaign",
                "payout",
            ),
            statuses=_values(DonationStatus),
            notes=(
                "A donation is dated by when it succeeded (or, if it has not, "
                "when it was created). Totals count succeeded donations only.",
                "amount = gift + fee cover (what Stripe charged); "
                "net = amount - fee - refunded. An empty fee is not known yet.",
            ),
            copy_statement=ledger_copy_statement,
        ),
        Report(
            "monthly",
            "Monthly summary",
            "Per month, currency and frequency: donations, gross, fees, refunds, "
            "net, new and cancelled plans.",
            MONTHLY_COLUMNS,
            monthly_rows,
            monthly_totals,
            filters=("from", "to", "currency", "frequency"),
            notes=(
                "Donations count in the month they succeeded; plans in the month "
                "of their first payment (new) or of their cancellation.",
            ),
        ),
        Report(
            "plans",
            "Recurring plans",
            "One row per monthly or annual plan, with what it has paid so far.",
            PLAN_COLUMNS,
            plan_rows,
            plan_totals,
            filters=("from", "to", "status", "currency", "frequency"),
            statuses=_values(PlanStatus),
            notes=(
                "Plans are dated by their first payment (or creation, if none yet). "
                "MRR counts active plans: monthly amounts plus a twelfth of annual ones.",
            ),
        ),
        Report(
            "payouts",
            "Payouts reconciliation",
            "Each payout with the donations, fees and refunds it carried, and whether "
            "they add up to the amount paid out.",
            PAYOUT_COLUMNS,
            payout_rows,
            payout_totals,
            filters=("from", "to", "status", "currency"),
            statuses=_values(PayoutStatus),
            notes=(
                "Payouts are dated by Stripe's arrival date, a calendar day.",
                "expected = gross - fees - refunded; difference = amount - expected. "
                "Dispute movements and Stripe adjustments are not ledger rows, so a "
                "payout that carried them shows a difference. Manual, failed and "
                "cancelled payouts have no transactions to check (n/a).",
            ),
        ),
        Report(
            "reminders",
            "Reminders funnel",
            "Remind-me-later sign-ups per month: sent, converted, unsubscribed.",
            FUNNEL_COLUMNS,
            funnel_rows,
            funnel_totals,
            notes=(
                "Converted: a gift succeeded or a plan started through the reminder's "
                "link. Clicks on the link are not recorded yet.",
            ),
        ),
        Report(
            "supporters",
            "Supporters",
            "Supporters with their newsletter consent, gifts and active plans.",
            SUPPORTER_COLUMNS,
            supporter_rows,
            supporter_totals,
            filters=("from", "to", "consent"),
            notes=(
                "Dated by when the supporter was first recorded. Erased supporters are left out.",
            ),
        ),
    )
}
