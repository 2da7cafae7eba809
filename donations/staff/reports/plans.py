"""Recurring plans, with what each has paid so far."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from donations.db import db
from donations.payments import measures
from donations.payments.measures import GROSS
from donations.staff.reports.exporters import Column, Kind
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.sql import Row, Table, as_text, between, local, major_units, stream
from donations.supporters.models import (
    Donation,
    DonationStatus,
    PlanStatus,
    RecurringPlan,
    Supporter,
)

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
    conditions = between(PLAN_DATE, start, end)
    if filters.status:
        conditions.append(as_text(RecurringPlan.status) == filters.status)
    if filters.currency:
        conditions.append(RecurringPlan.currency == filters.currency)
    if filters.frequency:
        conditions.append(as_text(RecurringPlan.frequency) == filters.frequency.value)
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
            as_text(Donation.status) == DonationStatus.SUCCEEDED.value,
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
            as_text(RecurringPlan.frequency),
            as_text(RecurringPlan.status),
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
    for row in stream(statement):
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
    """Plans per currency and status; MRR as on the dashboard (measures.mrr)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    charges: dict[str, list[tuple[str, int]]] = defaultdict(list)
    counted = {status.value for status in measures.MRR_STATUSES}
    for currency, status, frequency, count, total in db.session.execute(
        select(
            RecurringPlan.currency,
            as_text(RecurringPlan.status),
            as_text(RecurringPlan.frequency),
            func.count(),
            func.sum(measures.PLAN_CHARGE),
        )
        .where(*_plan_conditions(filters, zone))
        .group_by(
            RecurringPlan.currency,
            as_text(RecurringPlan.status),
            as_text(RecurringPlan.frequency),
        )
    ):
        counts[currency][status] += int(count)
        counts[currency]["all"] += int(count)
        if status in counted:
            charges[currency].append((frequency, int(total or 0)))
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
                major_units(measures.mrr(charges[currency]), currency),
            )
        )
    return table
