"""Annual giving statements: a supporter's settled gifts of one fiscal year, net of refunds.

The totals are the ledger's own measures (:mod:`donations.payments.measures`:
counted donations, gross, refunds, and ``given`` = gross - refunds) over the
fiscal year's reporting days, narrowed to the supporter, so a statement agrees
with the ledger report for the same person and days. One template
(``manage/_statement.html``) states them in the email and in the PDF, which
WeasyPrint prints as it prints receipts (:mod:`donations.manage.receipts`).

Sending is a job over every supporter with gifts in the year: each statement
is an ``annual_statements`` row written in the transaction that queues its
email, so the job sends each supporter's statement once, and a job stopped
half-way (or run again) carries on with those who have none yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import exists, select

from donations.db import db, insert_ignoring_conflicts, utcnow
from donations.manage.models import AnnualStatement
from donations.manage.receipts import PDF_FONTS, no_fetching
from donations.payments import measures
from donations.payments.measures import (
    COUNTED,
    LEDGER_DATE,
    MoneyTotals,
    between,
    fiscal_year_bounds,
    fiscal_year_of,
    money_totals,
)
from donations.supporters.models import Donation, Supporter
from donations.supporters.services import email_supporter

STATEMENT_EMAIL = "statement"
BATCH = 100


@dataclass(frozen=True)
class Statement:
    """What a statement states: the year, its days, the totals per currency, the gifts."""

    supporter: Supporter
    year: int
    first_day: date
    last_day: date
    totals: list[MoneyTotals]
    gifts: list[Donation]
    # False while the fiscal year is still running (a statement "to date").
    complete: bool


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["SETTINGS"].reporting_time_zone)


def _start() -> tuple[int, int]:
    start: tuple[int, int] = current_app.config["SETTINGS"].fiscal_year_start_day
    return start


def fiscal_year_days(year: int) -> tuple[date, date]:
    """The first and last reporting day of fiscal ``year`` (FISCAL_YEAR_START)."""
    return measures.fiscal_year_days(year, _start())


def current_fiscal_year(now: datetime | None = None) -> int:
    return fiscal_year_of(now or utcnow(), _start(), _zone())


def year_ended(year: int, now: datetime | None = None) -> bool:
    """Fiscal ``year`` is over: its last reporting day has passed."""
    return fiscal_year_bounds(year, _start(), _zone())[1] <= (now or utcnow())


def statement_years(supporter: Supporter) -> list[int]:
    """The fiscal years in which the supporter has counted gifts, newest first."""
    dates = db.session.scalars(
        select(LEDGER_DATE).where(COUNTED, Donation.supporter_id == supporter.id)
    )
    start, zone = _start(), _zone()
    return sorted({fiscal_year_of(moment, start, zone) for moment in dates}, reverse=True)


def statement(supporter: Supporter, year: int, now: datetime | None = None) -> Statement | None:
    """The supporter's statement for fiscal ``year``; None when no gift of theirs counts in it."""
    start, end = fiscal_year_bounds(year, _start(), _zone())
    totals = money_totals(start, end, Donation.supporter_id == supporter.id)
    if not totals:
        return None
    gifts = list(
        db.session.scalars(
            select(Donation)
            .where(COUNTED, Donation.supporter_id == supporter.id)
            .where(*between(LEDGER_DATE, start, end))
            .order_by(LEDGER_DATE, Donation.id)
        )
    )
    first_day, last_day = fiscal_year_days(year)
    return Statement(
        supporter=supporter,
        year=year,
        first_day=first_day,
        last_day=last_day,
        totals=totals,
        gifts=gifts,
        complete=year_ended(year, now),
    )


def _newsroom_context() -> dict[str, Any]:
    settings = current_app.config["SETTINGS"]
    return {
        "newsroom_name": settings.newsroom.name,
        "newsroom_address": settings.newsroom.address,
        "tax_text": settings.statement_tax_text,
    }


def _totals_context(totals: list[MoneyTotals]) -> list[dict[str, Any]]:
    return [
        {
            "currency": t.currency,
            "count": t.count,
            "gross": t.gross,
            "refunds": t.refunds,
            "given": t.given,
        }
        for t in totals
    ]


def statement_context(found: Statement) -> dict[str, Any]:
    """What the statement template needs, as the email's stored context holds it too."""
    return {
        "year": found.year,
        "first_day": found.first_day.isoformat(),
        "last_day": found.last_day.isoformat(),
        "complete": found.complete,
        "totals": _totals_context(found.totals),
        "donor_name": found.supporter.name,
        **_newsroom_context(),
    }


def statement_pdf(found: Statement, locale: str) -> bytes:
    """The statement as a PDF, in ``locale``: the email's statement and every gift counted."""
    import weasyprint  # heavy: only when a PDF is asked for

    with force_locale(locale):
        html = render_template(
            "manage/statement_pdf.html",
            fonts=PDF_FONTS,
            locale=locale,
            gifts=found.gifts,
            **statement_context(found),
        )
    pdf: bytes = weasyprint.HTML(string=html, url_fetcher=no_fetching).write_pdf()
    return pdf


def statement_filename(found: Statement) -> str:
    return f"statement-{found.year}.pdf"


# -- the send job ----------------------------------------------------------------------


def supporters_due(year: int, after_id: int = 0, limit: int = BATCH) -> list[Supporter]:
    """Supporters (not erased) with counted gifts in fiscal ``year`` and no statement yet."""
    start, end = fiscal_year_bounds(year, _start(), _zone())
    gave = exists().where(
        Donation.supporter_id == Supporter.id, COUNTED, *between(LEDGER_DATE, start, end)
    )
    sent = exists().where(
        AnnualStatement.supporter_id == Supporter.id, AnnualStatement.fiscal_year == year
    )
    return list(
        db.session.scalars(
            select(Supporter)
            .where(Supporter.id > after_id, Supporter.erased_at.is_(None), gave, ~sent)
            .order_by(Supporter.id)
            .limit(limit)
        )
    )


def send_statement(supporter: Supporter, year: int) -> bool:
    """Queue the supporter's statement email for ``year``, unless it was; True when queued now.

    The ``annual_statements`` row is claimed first (INSERT … ON CONFLICT DO
    NOTHING), so of two jobs at once only one queues the email; the outbox's
    key would refuse a second one anyway. The caller commits.
    """
    found = statement(supporter, year)
    if found is None:
        return False
    claimed = db.session.execute(
        insert_ignoring_conflicts(
            AnnualStatement,
            {"supporter_id": supporter.id, "fiscal_year": year, "queued_at": utcnow()},
            [AnnualStatement.supporter_id, AnnualStatement.fiscal_year],
        ).returning(AnnualStatement.id)
    ).scalar()
    if claimed is None:
        return False
    message = email_supporter(
        supporter,
        STATEMENT_EMAIL,
        dedupe_key=f"{STATEMENT_EMAIL}:supporter:{supporter.id}:{year}",
        locale=supporter.locale,
        context=statement_context(found),
    )
    row = db.session.get(AnnualStatement, claimed)
    if row is not None and message is not None:
        row.email_message_id = message.id
    db.session.flush()
    return message is not None


def send_statement_batch(year: int, after_id: int = 0) -> tuple[int, int | None]:
    """One batch of the job: statements queued, and the last supporter id seen (None: done)."""
    batch = supporters_due(year, after_id)
    if not batch:
        return 0, None
    queued = sum(send_statement(supporter, year) for supporter in batch)
    return queued, batch[-1].id
