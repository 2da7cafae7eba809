"""The donations ledger: one row per donation, with its fees, refunds, Stripe ids and payout."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from donations.db import db
from donations.payments.measures import (
    COUNTED,
    FEE,
    FEE_SHORTFALL,
    GROSS,
    LEDGER_DATE,
    MoneyTotals,
    money_sums,
    money_totals_of,
)
from donations.payments.models import Payout, refund_state_sql, with_dispute_outcomes
from donations.staff.reports.exporters import Column, Kind
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.sql import (
    CURRENCY_FACTORS,
    AnySelect,
    Row,
    Table,
    as_text,
    between,
    copy_cell,
    decimal_places,
    major_units,
    stream,
    xlsx_row,
)
from donations.supporters.models import Donation, Supporter

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
    # A covered fee that Stripe charged more for (an international card): what
    # the newsroom got less than the gift. Empty without a cover.
    Column("fee_shortfall", Kind.MONEY, "Fee cover shortfall"),
    Column("currency", Kind.CODE, "Currency"),
    Column("method", Kind.CODE, "Method"),
    Column("frequency", Kind.CODE, "Frequency"),
    Column("status", Kind.CODE, "Status"),
    Column("campaign", Kind.TEXT, "Campaign"),
    Column("stripe_payment_intent_id", Kind.CODE, "Payment intent"),
    Column("stripe_charge_id", Kind.CODE, "Charge"),
    Column("stripe_invoice_id", Kind.CODE, "Invoice"),
    Column("stripe_payout_id", Kind.CODE, "Payout"),
    # Partially refunded, refunded, disputed, dispute lost -- or empty.
    Column("refund_state", Kind.CODE, "Refund state"),
)


def _ledger_select(*columns: Any, filters: ReportFilters, zone: ZoneInfo) -> AnySelect:
    start, end = filters.bounds(zone)
    conditions = between(LEDGER_DATE, start, end)
    if filters.status:
        conditions.append(as_text(Donation.status) == filters.status)
    if filters.currency:
        conditions.append(Donation.currency == filters.currency)
    if filters.frequency:
        conditions.append(as_text(Donation.frequency) == filters.frequency.value)
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


def _stored_cells() -> tuple[Any, ...]:
    """The ledger's cells from the currency on, which every form of it writes as stored."""
    return (
        Donation.currency,
        Donation.method,
        as_text(Donation.frequency),
        as_text(Donation.status),
        Donation.campaign,
        Donation.stripe_payment_intent_id,
        Donation.stripe_charge_id,
        Donation.stripe_invoice_id,
        Payout.stripe_payout_id,
        refund_state_sql(),
    )


def ledger_statement(filters: ReportFilters, zone: ZoneInfo) -> AnySelect:
    """The ledger's rows with the values as stored (minor units, UTC)."""
    statement = _ledger_select(
        Donation.id,
        LEDGER_DATE,
        Supporter.email,
        Supporter.name,
        Donation.amount,
        Donation.fee_cover_amount,
        Donation.fee,
        Donation.refunded_amount,
        FEE_SHORTFALL,
        *_stored_cells(),
        filters=filters,
        zone=zone,
    )
    return with_dispute_outcomes(statement).order_by(LEDGER_DATE, Donation.id)


def ledger_rows(filters: ReportFilters, zone: ZoneInfo) -> Iterator[Row]:
    """Donations ledger: one row per donation."""
    for row in stream(ledger_statement(filters, zone)):
        # The cells before _stored_cells are converted; those, from the currency on, go as read.
        donation_id, moment, email, name, amount, cover, fee, refunded, shortfall, *stored = row
        places = -decimal_places(stored[0])  # stored[0] is the currency
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
            Decimal(shortfall).scaleb(places) if shortfall is not None else None,
            *stored,
        )


def _ledger_cells() -> tuple[Any, ...]:
    """The ledger's cells in SQL, as stored (minor units, UTC), in LEDGER_COLUMNS order."""
    return (
        Donation.id,
        LEDGER_DATE,
        Supporter.email,
        Supporter.name,
        GROSS,
        Donation.fee_cover_amount,
        Donation.fee,
        Donation.refunded_amount,
        GROSS - FEE - Donation.refunded_amount,
        FEE_SHORTFALL,
        *_stored_cells(),
    )


def _formatted(cells: Sequence[Any], filters: ReportFilters, zone: ZoneInfo) -> AnySelect:
    """The ledger selecting ``cells`` (made of _ledger_cells), with the currency factors joined."""
    statement = _ledger_select(*cells, filters=filters, zone=zone)
    return (
        with_dispute_outcomes(statement)
        .outerjoin(CURRENCY_FACTORS, CURRENCY_FACTORS.c.code == Donation.currency)
        .order_by(LEDGER_DATE, Donation.id)
    )


def ledger_copy_statement(filters: ReportFilters, zone: ZoneInfo) -> AnySelect:
    """The ledger as CSV-ready text cells, for PostgreSQL's COPY (same rows, same order)."""
    cells = [
        copy_cell(column.kind, cell, zone)
        for column, cell in zip(LEDGER_COLUMNS, _ledger_cells(), strict=True)
    ]
    return _formatted(cells, filters, zone)


def ledger_xlsx_statement(filters: ReportFilters, zone: ZoneInfo) -> AnySelect:
    """The ledger as worksheet rows (SpreadsheetML), one per donation, after the header row."""
    return _formatted([xlsx_row(LEDGER_COLUMNS, _ledger_cells(), zone)], filters, zone)


MONEY_TOTAL_COLUMNS = (
    Column("currency", Kind.CODE, "Currency"),
    Column("donations", Kind.INT, "Donations"),
    Column("gross", Kind.MONEY, "Gross"),
    Column("fees", Kind.MONEY, "Fees"),
    Column("refunds", Kind.MONEY, "Refunds"),
    Column("net", Kind.MONEY, "Net"),
)


def money_total_cells(total: MoneyTotals) -> Row:
    """MONEY_TOTAL_COLUMNS' cells after the currency: the count, then the sums in major units."""
    currency = total.currency
    return (
        total.count,
        major_units(total.gross, currency),
        major_units(total.fees, currency),
        major_units(total.refunds, currency),
        major_units(total.net, currency),
    )


def ledger_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    """Counted donations in the selection, per currency: the dashboard's measures."""
    rows = db.session.execute(
        _ledger_select(Donation.currency, *money_sums(), filters=filters, zone=zone)
        .where(COUNTED)
        .group_by(Donation.currency)
        .order_by(Donation.currency)
    ).all()
    table = Table(MONEY_TOTAL_COLUMNS)
    for total in money_totals_of(rows):
        table.rows.append((total.currency, *money_total_cells(total)))
    return table
