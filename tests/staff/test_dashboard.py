"""The dashboard's numbers against hand-computed totals, and its page."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from donations.db import commit, utcnow
from donations.staff import dashboard as dash
from donations.staff.models import Role
from donations.supporters.models import DonationStatus, Frequency, PlanStatus
from tests import factories

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # 08:00 in New York (EDT)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def seed() -> None:
    s1 = factories.supporter("one@example.org")
    s2 = factories.supporter("two@example.org")
    s3 = factories.supporter("three@example.org")
    s4 = factories.supporter("four@example.org")
    # Today in New York (06:00 local).
    factories.donation(
        s1,
        1000,
        fee_cover_amount=50,
        fee=59,
        refunded_amount=200,
        method="card",
        succeeded_at=at(2026, 3, 15, 10),
    )
    # 23:00 on the 14th in New York: this month, not today.
    factories.donation(
        s2,
        2000,
        fee=88,
        method="card",
        frequency=Frequency.MONTHLY,
        succeeded_at=at(2026, 3, 15, 3),
    )
    # 22:00 on 28 February in New York: trailing year only.
    factories.donation(s3, 500, "EUR", fee=20, method="sepa_debit", succeeded_at=at(2026, 3, 1, 3))
    # 23:00 on 31 March 2025 in New York: just before the trailing 12 months.
    factories.donation(s1, 700, succeeded_at=at(2025, 4, 1, 3))
    # 01:00 on 1 April 2025 in New York: the first hour of the trailing 12 months.
    factories.donation(
        s4, 900, method="card", frequency=Frequency.ANNUAL, succeeded_at=at(2025, 4, 1, 5)
    )
    factories.donation(s4, 5000, status=DonationStatus.FAILED)
    factories.plan(s1, 500)
    factories.plan(s1, 1200, fee_cover_amount=100, frequency=Frequency.ANNUAL)
    factories.plan(s3, 300, "EUR", status=PlanStatus.PAST_DUE)
    # Stripe ended s2's plan after failed payments: lapsed (the lifecycle's meaning).
    factories.plan(
        s2,
        2000,
        status=PlanStatus.CANCELED,
        canceled_at=at(2026, 3, 10, 12),
        cancellation_reason="payment_failed",
    )
    # s4 cancelled theirs: cancelled, not lapsed.
    factories.plan(
        s4,
        1000,
        status=PlanStatus.CANCELED,
        canceled_at=at(2026, 3, 12, 12),
        cancellation_reason="cancellation_requested",
    )
    commit()


def rows(result: list[dash.MoneyRow]) -> dict[str, tuple[int, int, int, int, int]]:
    return {r.currency: (r.count, r.gross, r.fees, r.refunds, r.net) for r in result}


def test_totals_per_period_in_the_reporting_time_zone(ctx) -> None:
    seed()
    data = dash.dashboard(NY, NOW)
    assert [p.key for p in data.periods] == ["today", "month", "year"]
    assert data.periods[0].start == at(2026, 3, 15, 4)  # midnight EDT
    assert data.periods[2].start == at(2025, 4, 1, 4)
    assert rows(data.totals["today"]) == {"USD": (1, 1050, 59, 200, 791)}
    assert rows(data.totals["month"]) == {"USD": (2, 3050, 147, 200, 2703)}
    assert rows(data.totals["year"]) == {
        "EUR": (1, 500, 20, 0, 480),
        "USD": (3, 3950, 147, 200, 3603),
    }
    assert data.new_supporters == {"today": 0, "month": 1, "year": 3}
    assert data.lapsed_supporters == {"today": 0, "month": 1, "year": 1}


def test_breakdowns_and_recurring_revenue(ctx) -> None:
    seed()
    data = dash.dashboard(NY, NOW)
    assert {(r.key, r.currency, r.count, r.gross) for r in data.by_frequency["year"]} == {
        ("once", "USD", 1, 1050),
        ("monthly", "USD", 1, 2000),
        ("annual", "USD", 1, 900),
        ("once", "EUR", 1, 500),
    }
    assert {(r.key, r.currency, r.gross) for r in data.by_method["month"]} == {
        ("card", "USD", 3050)
    }
    # 500 monthly + (1,200 + 100 fee cover) / 12 = 108.33 -> 108.
    assert [(r.currency, r.active, r.past_due, r.mrr) for r in data.recurring] == [
        ("EUR", 0, 1, 0),
        ("USD", 2, 0, 608),
    ]


def test_monthly_revenue_for_the_chart(ctx) -> None:
    seed()
    series = dash.monthly_revenue(NY, NOW)
    assert set(series) == {"EUR", "USD"}
    usd = series["USD"]
    assert next(month for month, _, _ in usd) == date(2025, 4, 1)
    assert usd[-1] == (date(2026, 3, 1), 3050, 2703)
    assert usd[0] == (date(2025, 4, 1), 900, 900)
    assert series["EUR"][-2] == (date(2026, 2, 1), 500, 480)
    assert sum(g for _, g, _ in usd) == 3950


def test_dashboard_page_shows_totals_and_a_chart(app, signed_in) -> None:
    with app.app_context():
        owner = factories.supporter()
        factories.donation(owner, 1050, fee=61, succeeded_at=utcnow())
        factories.donation(owner, 2500, "EUR", succeeded_at=utcnow())
        commit()
    client, _ = signed_in(Role.VIEWER)
    page = client.get("/staff/")
    assert page.status_code == 200
    html = page.text
    assert "$10.50" in html
    assert "€25.00" in html
    assert html.count('<svg class="chart"') == 2
    assert 'data-currency="USD"' in html
    assert 'role="img"' in html
    assert "style=" not in html  # the CSP allows no inline styles
    assert "<script" not in html


def test_empty_dashboard(signed_in) -> None:
    client, _ = signed_in(Role.VIEWER)
    page = client.get("/staff/")
    assert page.status_code == 200
    assert "No revenue in the last 12 months." in page.text
