"""One set of measures: every dashboard figure equals the matching report total.

Both read donations.payments.measures; this holds them together on a ledger
with refunds (partial and full), disputes (open and lost), renewals, plans
active, past due, lapsed and cancelled, and five currencies, for each of the
dashboard's periods in the reporting time zone.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from donations.db import commit
from donations.payments.models import DisputeStatus
from donations.staff import dashboard as dash
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.ledger import LEDGER_COLUMNS, ledger_rows, ledger_totals
from donations.staff.reports.monthly import monthly_rows, monthly_totals
from donations.staff.reports.plans import plan_totals
from donations.staff.reports.sql import major_units
from donations.staff.reports.supporters import supporter_totals
from donations.supporters.models import DonationStatus, Frequency, PlanStatus
from tests import factories
from tests.staff.reports.seed import seed

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)  # 11:00 on 31 March in New York


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def more() -> None:
    """Disputes, renewals, a full refund, lapsed and cancelled plans, pounds."""
    a = factories.supporter("renewing@example.org")
    plan = factories.plan(a, 1500, "GBP", started_at=at(2025, 12, 2, 12), method="card")
    for month in (12, 1, 2, 3):
        factories.donation(
            a,
            1500,
            "GBP",
            fee=43,
            method="card",
            frequency=Frequency.MONTHLY,
            recurring_plan_id=plan.id,
            succeeded_at=at(2025 if month == 12 else 2026, month, 2, 12),
        )
    b = factories.supporter("disputed@example.org")
    lost = factories.donation(b, 4000, "EUR", fee=85, method="card", succeeded_at=at(2026, 3, 5))
    open_ = factories.donation(
        b, 2500, "EUR", fee=63, method="card", succeeded_at=at(2026, 3, 31, 13)
    )
    for donation, status in ((lost, DisputeStatus.LOST), (open_, DisputeStatus.NEEDS_RESPONSE)):
        factories.dispute(
            donation,
            status,
            fee=1500,
            net=-donation.amount - 1500,
            stripe_created_at=donation.succeeded_at + timedelta(days=1),
            closed_at=at(2026, 3, 20) if status is DisputeStatus.LOST else None,
        )
    factories.donation(
        b, 900, "EUR", fee=39, refunded_amount=900, method="card", succeeded_at=at(2026, 3, 31, 14)
    )
    c = factories.supporter("lapsed@example.org")
    factories.donation(c, 800, frequency=Frequency.MONTHLY, fee=53, succeeded_at=at(2026, 1, 3))
    factories.plan(
        c,
        800,
        status=PlanStatus.CANCELED,
        started_at=at(2026, 1, 3),
        canceled_at=at(2026, 3, 31, 12),
        cancellation_reason="payment_failed",
    )
    d = factories.supporter("annual@example.org")
    factories.plan(d, 6000, "GBP", frequency=Frequency.ANNUAL, fee_cover_amount=205)
    factories.donation(d, 1200, method=None, fee=None, succeeded_at=at(2026, 3, 31, 14, 30))
    factories.donation(d, 1200, status=DonationStatus.FAILED, created_at=at(2026, 3, 31, 14))


@pytest.fixture
def board(ctx):
    seed()
    more()
    commit()
    return dash.dashboard(NY, NOW)


def filters_of(period: dash.Period, **narrow: object) -> ReportFilters:
    """The report filters for the same days as the dashboard's period (inclusive dates)."""
    first = period.start.astimezone(NY).date()
    last = (period.end.astimezone(NY) - timedelta(days=1)).date()
    return ReportFilters(start=first, end=last, **narrow)


def major(row: dash.MoneyRow) -> tuple[object, ...]:
    c = row.currency
    return (
        c,
        row.count,
        major_units(row.gross, c),
        major_units(row.fees, c),
        major_units(row.refunds, c),
        major_units(row.net, c),
    )


PERIODS = ("today", "month", "year")


@pytest.mark.parametrize("key", PERIODS)
def test_money_totals_agree(board, key: str) -> None:
    period = next(p for p in board.periods if p.key == key)
    on_board = [major(r) for r in board.totals[key]]
    assert on_board  # every period has money in it
    assert on_board == ledger_totals(filters_of(period), NY).rows
    assert on_board == [r[:6] for r in monthly_totals(filters_of(period), NY).rows if r[1]]


@pytest.mark.parametrize("key", PERIODS)
def test_breakdowns_agree(board, key: str) -> None:
    period = next(p for p in board.periods if p.key == key)
    for by, rows in (("frequency", board.by_frequency[key]), ("method", board.by_method[key])):
        for row in rows:
            if row.key == "unknown":
                continue  # no method recorded: no filter picks those out
            narrow = Frequency(row.key) if by == "frequency" else row.key
            report = ledger_totals(filters_of(period, currency=row.currency, **{by: narrow}), NY)
            assert [r[:3] for r in report.rows] == [
                (row.currency, row.count, major_units(row.gross, row.currency))
            ], (by, row)


@pytest.mark.parametrize("key", PERIODS)
def test_supporter_counts_agree(board, key: str) -> None:
    period = next(p for p in board.periods if p.key == key)
    (report,) = supporter_totals(filters_of(period), NY).rows
    assert (report[3], report[4]) == (board.new_supporters[key], board.lapsed_supporters[key])
    # And the lapsed count means what the README says: lapsed@ only (four@ cancelled).
    assert board.lapsed_supporters[key] == 1


@pytest.mark.parametrize("key", PERIODS)
def test_refund_states_agree(board, key: str) -> None:
    period = next(p for p in board.periods if p.key == key)
    names = [c.key for c in LEDGER_COLUMNS]
    counted: dict[str, int] = defaultdict(int)
    for line in ledger_rows(filters_of(period, status="succeeded"), NY):
        state = dict(zip(names, line, strict=True))["refund_state"]
        if state:
            counted[state] += 1
    assert {k: v for k, v in board.refund_states[key].items() if v} == dict(counted)
    if key != "today":
        assert set(counted) >= {"partially_refunded", "refunded", "dispute_lost", "disputed"}


def test_recurring_revenue_agrees(board) -> None:
    plans = {row[0]: row for row in plan_totals(ReportFilters(), NY).rows}
    assert board.recurring
    for row in board.recurring:
        report = plans[row.currency]
        assert (report[2], report[3], report[5]) == (
            row.active,
            row.past_due,
            major_units(row.mrr, row.currency),
        )
    # GBP: a 15.00 monthly plan and a (60.00 + 2.05) annual one: 15.00 + 5.17.
    assert next(r.mrr for r in board.recurring if r.currency == "GBP") == 1500 + 517


def test_the_chart_agrees_with_the_monthly_summary(board) -> None:
    year = next(p for p in board.periods if p.key == "year")
    summed: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for month, currency, _, _, gross, _, _, net, _, _ in monthly_rows(filters_of(year), NY):
        summed[(month, currency)][0] += gross
        summed[(month, currency)][1] += net
    for currency, points in board.revenue.items():
        for month, gross, net in points:
            want = summed.get((month.strftime("%Y-%m"), currency), [Decimal(0), Decimal(0)])
            assert [major_units(gross, currency), major_units(net, currency)] == want
