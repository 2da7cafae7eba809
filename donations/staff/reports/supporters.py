"""Supporters with their newsletter consent, gifts and active plans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from donations.db import db
from donations.payments import measures
from donations.staff.reports.exporters import Column, Kind
from donations.staff.reports.filters import Consent, ReportFilters
from donations.staff.reports.sql import Row, Table, as_text, between, count_where, local, stream
from donations.supporters.models import (
    Donation,
    DonationStatus,
    PlanStatus,
    RecurringPlan,
    Supporter,
)

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
    conditions = [Supporter.erased_at.is_(None), *between(Supporter.created_at, start, end)]
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
        .where(as_text(Donation.status) == DonationStatus.SUCCEEDED.value)
        .group_by(Donation.supporter_id)
        .subquery()
    )
    plans = (
        select(RecurringPlan.supporter_id.label("supporter_id"), func.count().label("n"))
        .where(as_text(RecurringPlan.status) == PlanStatus.ACTIVE.value)
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
    for row in stream(statement):
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
    # In the period (measures): first counted gift in it; lapsed in it.
    Column("new_supporters", Kind.INT, "New supporters"),
    Column("lapsed_supporters", Kind.INT, "Lapsed supporters"),
)


def supporter_totals(filters: ReportFilters, zone: ZoneInfo) -> Table:
    yes = count_where(Supporter.newsletter_opt_in.is_(True))
    count, opted_in = db.session.execute(
        select(func.count(), yes).where(*_supporter_conditions(filters, zone))
    ).one()
    start, end = filters.bounds(zone)
    new, lapsed = measures.new_supporters(start, end), measures.lapsed_supporters(start, end)
    if not count and not new and not lapsed:
        return Table(SUPPORTER_TOTAL_COLUMNS)
    count, opted_in = int(count), int(opted_in or 0)
    return Table(SUPPORTER_TOTAL_COLUMNS, [(count, opted_in, count - opted_in, new, lapsed)])
