"""Retention: cancellations in /manage by reason, and the offers that saved plans, per month."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from donations.db import db
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
from donations.supporters.retention import AttemptStatus, CancellationAttempt

RETENTION_COLUMNS = (
    Column("month", Kind.CODE, "Month"),
    Column("reason", Kind.TEXT, "Reason"),
    Column("attempts", Kind.INT, "Cancellations started"),
    Column("cancelled", Kind.INT, "Cancelled"),
    Column("cancelled_with_reminder", Kind.INT, "Of which a reminder instead"),
    Column("saved", Kind.INT, "Saved"),
    Column("saved_by_pause", Kind.INT, "Saved by a pause"),
    Column("saved_by_lower_amount", Kind.INT, "Saved by a lower amount"),
    Column("saved_by_annual", Kind.INT, "Saved by switching to annual"),
    Column("undecided", Kind.INT, "Left undecided"),
)


def _retention(filters: ReportFilters, zone: ZoneInfo) -> list[tuple[Any, ...]]:
    prepare_connection(db.session.connection())
    start, end = filters.bounds(zone)
    status = as_text(CancellationAttempt.status)

    month = local_month(CancellationAttempt.created_at, zone.key).label("month")
    rows = db.session.execute(
        select(
            month,
            CancellationAttempt.reason,
            func.count(),
            count_where(status == AttemptStatus.CANCELLED.value),
            count_where(
                (status == AttemptStatus.CANCELLED.value)
                & (CancellationAttempt.offer_taken == "reminder")
            ),
            count_where(status == AttemptStatus.SAVED.value),
            *(
                count_where(
                    (status == AttemptStatus.SAVED.value) & (CancellationAttempt.offer_taken == o)
                )
                for o in ("pause", "lower_amount", "annual")
            ),
            count_where(status == AttemptStatus.OFFERED.value),
        )
        .where(*between(CancellationAttempt.created_at, start, end))
        .group_by("month", CancellationAttempt.reason)
        .order_by("month", CancellationAttempt.reason)
    ).all()
    return [(m, r, *(int(n or 0) for n in counts)) for m, r, *counts in rows]


def retention_rows(filters: ReportFilters, zone: ZoneInfo) -> Iterator[Row]:
    """Per month and reason: cancellations started, cancelled, saved (by which offer)."""
    yield from _retention(filters, zone)


RETENTION_TOTAL_COLUMNS = (
    *RETENTION_COLUMNS[2:],
    Column("save_rate", Kind.CODE, "Saved / decided"),
)


def retention_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    rows = _retention(filters, zone)
    if not rows:
        return Table(RETENTION_TOTAL_COLUMNS)
    sums = [sum(row[i] for row in rows) for i in range(2, len(RETENTION_COLUMNS))]
    cancelled, saved = sums[1], sums[3]
    decided = cancelled + saved
    return Table(RETENTION_TOTAL_COLUMNS, [(*sums, rate_text(saved, decided))])
