"""Every report against totals worked out by hand on the seeded ledger (New York time)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from donations.db import commit
from donations.staff import dashboard as dash
from donations.staff.reports.catalogue import REPORTS
from donations.staff.reports.filters import Consent, ReportFilters
from tests.staff.reports.seed import PAYLOADS, seed

NY = ZoneInfo("America/New_York")
MARCH = ReportFilters(start=date(2026, 3, 1), end=date(2026, 3, 31))
Q1 = ReportFilters(start=date(2026, 1, 1), end=date(2026, 3, 31))
D = Decimal


ANY = ReportFilters()


def rows(name: str, filters: ReportFilters = ANY) -> list[tuple]:
    return list(REPORTS[name].rows(filters, NY))


def totals(name: str, filters: ReportFilters = ANY) -> list[tuple]:
    return REPORTS[name].totals(filters, NY).rows


@pytest.fixture
def ledger(ctx):
    seeded = seed()
    commit()
    return seeded.ids


def test_ledger_rows_in_march(ledger) -> None:
    got = rows("ledger", MARCH)
    assert [r[0] for r in got] == [ledger[k] for k in ("d5", "d2", "d1", "d7", "d4", "d6")]
    by_id = {r[0]: r for r in got}
    d1 = by_id[ledger["d1"]]
    assert d1[1].isoformat(" ") == "2026-03-15 06:00:00"
    assert d1[2:4] == ("one@example.org", "Zoë O'Brien, Jr.")
    assert d1[4:9] == (D("10.50"), D("0.50"), D("0.59"), D("2.00"), D("7.91"))
    assert d1[9] == D("0.09")  # the fee cover fell short of Stripe's fee by 0.09
    assert d1[10:] == (
        "USD", "card", "once", "succeeded", "spring", "pi_1", "ch_1", None, "po_1",
        "partially_refunded",
    )  # fmt: skip
    d2 = by_id[ledger["d2"]]
    assert d2[1].isoformat(" ") == "2026-03-14 23:00:00"  # EDT, the evening before in UTC terms
    assert (d2[12], d2[17]) == ("monthly", "in_2")
    d4 = by_id[ledger["d4"]]
    assert (d4[4], d4[6], d4[8], d4[10]) == (D("3000"), D("100"), D("2900"), "JPY")
    d6 = by_id[ledger["d6"]]
    assert d6[1].isoformat(" ") == "2026-03-31 23:30:00"
    assert (d6[6], d6[8]) == (None, D("7.00"))  # fee not known yet: empty, counted as 0
    d7 = by_id[ledger["d7"]]
    assert (d7[4], d7[6], d7[8]) == (D("1.500"), D("0.045"), D("1.455"))
    d5 = by_id[ledger["d5"]]
    assert (d5[1].isoformat(" "), d5[13]) == ("2026-03-10 08:00:00", "failed")


def test_ledger_totals_match_the_dashboard(ledger) -> None:
    assert totals("ledger", MARCH) == [
        ("JPY", 1, D("3000"), D("100"), D("0"), D("2900")),
        ("KWD", 1, D("1.500"), D("0.045"), D("0.000"), D("1.455")),
        ("USD", 3, D("37.50"), D("1.47"), D("2.00"), D("34.03")),
    ]
    start, end = MARCH.bounds(NY)
    assert start is not None
    assert end is not None
    board = {
        r.currency: (r.count, r.gross, r.fees, r.refunds, r.net) for r in dash.totals(start, end)
    }
    assert board["USD"] == (3, 3750, 147, 200, 3403)
    assert board["JPY"] == (1, 3000, 100, 0, 2900)


def test_ledger_filters(ledger) -> None:
    def ids(**narrow: object) -> list[int]:
        filters = ReportFilters(start=date(2026, 3, 1), end=date(2026, 3, 31), **narrow)
        return [r[0] for r in rows("ledger", filters)]

    assert ids(status="failed") == [ledger["d5"]]
    assert ids(currency="JPY") == [ledger["d4"]]
    assert ids(frequency=dash.Frequency.MONTHLY) == [ledger["d2"]]
    assert ids(campaign="spring") == [ledger["d1"]]
    assert ids(payout="po_1") == [ledger["d2"], ledger["d1"]]
    assert ids(method="sepa_debit") == []
    # One day, inclusive, in New York: 31 March runs to 04:00 UTC on 1 April.
    one_day = ReportFilters(start=date(2026, 3, 31), end=date(2026, 3, 31))
    assert [r[0] for r in rows("ledger", one_day)] == [ledger["d4"], ledger["d6"]]
    everything = [r[0] for r in rows("ledger")]
    assert len(everything) == 8


def test_monthly_summary(ledger) -> None:
    assert rows("monthly", Q1) == [
        ("2026-01", "EUR", "monthly", 0, D("0.00"), D("0.00"), D("0.00"), D("0.00"), 1, 0),
        ("2026-01", "USD", "monthly", 0, D("0.00"), D("0.00"), D("0.00"), D("0.00"), 1, 0),
        ("2026-02", "EUR", "once", 1, D("5.00"), D("0.20"), D("0.00"), D("4.80"), 0, 0),
        ("2026-02", "USD", "annual", 0, D("0.00"), D("0.00"), D("0.00"), D("0.00"), 1, 0),
        ("2026-03", "JPY", "once", 1, D("3000"), D("100"), D("0"), D("2900"), 0, 0),
        ("2026-03", "KWD", "once", 1, D("1.500"), D("0.045"), D("0.000"), D("1.455"), 0, 0),
        ("2026-03", "USD", "once", 2, D("17.50"), D("0.59"), D("2.00"), D("14.91"), 0, 0),
        ("2026-03", "USD", "monthly", 1, D("20.00"), D("0.88"), D("0.00"), D("19.12"), 1, 1),
    ]
    assert totals("monthly", Q1)[-1] == (
        "USD",
        3,
        D("37.50"),
        D("1.47"),
        D("2.00"),
        D("34.03"),
        3,
        1,
    )
    # The March rows add up to the March ledger's totals.
    march = totals("monthly", MARCH)
    assert [r[:6] for r in march if r[1]] == totals("ledger", MARCH)
    assert rows("monthly", ReportFilters(currency="EUR", frequency=dash.Frequency.ONCE)) == [
        ("2026-02", "EUR", "once", 1, D("5.00"), D("0.20"), D("0.00"), D("4.80"), 0, 0),
    ]


def test_recurring_plans(ledger) -> None:
    got = rows("plans")
    assert [r[0] for r in got] == [ledger[k] for k in ("p4", "p3", "p2", "p1", "p5")]
    p1 = got[3]
    assert p1[1].isoformat(" ") == "2026-03-14 23:00:00"
    assert p1[4:9] == (D("20.00"), D("0.00"), "USD", "monthly", "active")
    assert (p1[14], p1[15], p1[16]) == (1, D("20.00"), "sub_1")
    p4 = got[0]
    assert p4[12].isoformat(" ") == "2026-03-10 08:00:00"
    assert p4[13] == "=cmd|' /C calc'!A0"
    assert totals("plans") == [
        ("EUR", 1, 0, 1, 0, D("0.00")),
        ("USD", 4, 2, 0, 1, D("21.08")),  # 20.00 + (12.00 + 1.00) / 12
    ]
    active = ReportFilters(status="active")
    assert [r[0] for r in rows("plans", active)] == [ledger["p2"], ledger["p1"]]


def test_payouts_reconciliation(ledger) -> None:
    assert rows("payouts") == [
        ("po_1", date(2026, 3, 20), "paid", "USD", D("27.03"), 2, D("30.50"), D("1.47"),
         1, D("2.00"), D("27.03"), D("0.00"), "yes"),
        ("po_3", date(2026, 3, 25), "failed", "USD", D("9.00"), 0, D("0.00"), D("0.00"),
         0, D("0.00"), D("0.00"), D("9.00"), "n/a"),
        ("po_2", date(2026, 4, 3), "in_transit", "USD", D("50.00"), 1, D("7.00"), D("0.00"),
         0, D("0.00"), D("7.00"), D("43.00"), "no"),
    ]  # fmt: skip
    assert totals("payouts") == [("USD", 3, D("86.03"), 1, 1)]
    assert [r[0] for r in rows("payouts", MARCH)] == ["po_1", "po_3"]
    assert [r[0] for r in rows("payouts", ReportFilters(status="in_transit"))] == ["po_2"]


def test_reminders_funnel(ledger) -> None:
    assert rows("reminders") == [("2026-02", 1, 1, 1, 0), ("2026-03", 4, 2, 1, 2)]
    assert totals("reminders") == [(5, 3, 2, 2, "60.0%", "66.7%")]
    assert rows("reminders", MARCH) == [("2026-03", 4, 2, 1, 2)]
    assert totals("reminders", ReportFilters(start=date(2025, 1, 1), end=date(2025, 1, 31))) == []


def test_retention(ledger) -> None:
    assert rows("retention") == [
        ("2026-02", "not_reading", 1, 1, 1, 0, 0, 0, 0, 0),
        ("2026-02", "other", 1, 0, 0, 0, 0, 0, 0, 1),
        ("2026-03", "too_expensive", 2, 1, 0, 1, 1, 0, 0, 0),
    ]
    assert totals("retention") == [(4, 2, 1, 1, 1, 0, 0, 1, "33.3%")]
    assert rows("retention", MARCH) == [("2026-03", "too_expensive", 2, 1, 0, 1, 1, 0, 0, 0)]
    assert totals("retention", ReportFilters(start=date(2025, 1, 1), end=date(2025, 1, 31))) == []


def test_supporters_with_consent(ledger) -> None:
    everyone = rows("supporters")
    assert len(everyone) == 1 + len(PAYLOADS)  # the erased supporter is left out
    first = everyone[0]
    assert first[:6] == (ledger["s1"], "one@example.org", "Zoë O'Brien, Jr.", "US", "en", "yes")
    assert first[7] == 3
    assert first[8].isoformat(" ") == "2026-03-15 06:00:00"
    assert first[9].isoformat(" ") == "2026-04-01 20:00:00"
    assert (first[10], first[11]) == (1, "cus_one")
    assert [r[1] for r in rows("supporters", ReportFilters(consent=Consent.YES))] == [
        "one@example.org"
    ]
    assert len(rows("supporters", ReportFilters(consent=Consent.NO))) == len(PAYLOADS)
    # Seven people, one opted in; five have a counted gift (all new, ever); none lapsed.
    assert totals("supporters") == [(7, 1, 6, 5, 0)]
    five = next(r for r in everyone if r[1] == "five@example.org")
    assert (five[7], five[8], five[9]) == (0, None, None)


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_report_is_empty_on_an_empty_ledger(ctx, name: str) -> None:
    assert rows(name) == []
    assert totals(name) == []
    for row in rows(name):
        assert len(row) == len(REPORTS[name].columns)


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_rows_have_one_value_per_column(ledger, name: str) -> None:
    got = rows(name)
    assert got
    for row in got:
        assert len(row) == len(REPORTS[name].columns)
