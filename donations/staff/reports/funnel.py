"""The reminders funnel: remind-me-later sign-ups per month, sent, converted, unsubscribed."""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select

from donations.db import db
from donations.mail.models import Suppression, SuppressionReason
from donations.reminders.models import Reminder, ReminderStatus, SkipReason
from donations.staff.reports.exporters import Column, Kind
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.sql import (
    Row,
    Table,
    as_text,
    between,
    count_where,
    local_month,
    prepare_connection,
    rate_text,
)
from donations.supporters.models import Donation, DonationStatus, RecurringPlan

FUNNEL_COLUMNS = (
    Column("month", Kind.CODE, "Signed up in"),
    Column("signed_up", Kind.INT, "Signed up"),
    Column("sent", Kind.INT, "Sent"),
    Column("converted", Kind.INT, "Converted"),
    Column("unsubscribed", Kind.INT, "Unsubscribed"),
)


def _funnel(filters: ReportFilters, zone: ZoneInfo) -> list[tuple[str, int, int, int, int]]:
    prepare_connection(db.session.connection())
    start, end = filters.bounds(zone)
    # Converted: a gift that succeeded, or a plan that started, through its link.
    converted = or_(
        Reminder.id.in_(
            select(Donation.reminder_id).where(
                as_text(Donation.status) == DonationStatus.SUCCEEDED.value,
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
        as_text(Reminder.skip_reason) == SkipReason.UNSUBSCRIBED.value,
        Reminder.address_hash.in_(
            select(Suppression.address_hash).where(
                as_text(Suppression.reason) == SuppressionReason.UNSUBSCRIBED.value
            )
        ),
    )

    month = local_month(Reminder.created_at, zone.key).label("month")
    rows = db.session.execute(
        select(
            month,
            func.count(),
            count_where(as_text(Reminder.status) == ReminderStatus.SENT.value),
            count_where(converted),
            count_where(unsubscribed),
        )
        .where(*between(Reminder.created_at, start, end))
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


def funnel_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    months = _funnel(filters, zone)
    if not months:
        return Table(FUNNEL_TOTAL_COLUMNS)
    signed = sum(row[1] for row in months)
    sent = sum(row[2] for row in months)
    converted = sum(row[3] for row in months)
    unsubscribed = sum(row[4] for row in months)
    rates = (rate_text(sent, signed), rate_text(converted, sent))
    return Table(FUNNEL_TOTAL_COLUMNS, [(signed, sent, converted, unsubscribed, *rates)])
