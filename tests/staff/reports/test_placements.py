"""The ask in articles: shown, gifts, conversion and revenue per article, campaign, variant."""

from __future__ import annotations

import csv
import io
from datetime import date
from zoneinfo import ZoneInfo

from donations.db import commit
from donations.embed.models import EmbedEvent
from donations.embed.services import count_event
from donations.staff.models import Role
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.placements import placement_rows, placement_totals
from donations.supporters.attribution import Attribution
from donations.supporters.models import DonationStatus, Frequency
from tests import factories

UTC = ZoneInfo("UTC")
A = Attribution("budget-vote", "winter", "a")
B = Attribution("budget-vote", "winter", "b")


def seed() -> None:
    for _ in range(200):
        count_event(EmbedEvent.IMPRESSION, A)
    for _ in range(150):
        count_event(EmbedEvent.IMPRESSION, B)
    for _ in range(7):
        count_event(EmbedEvent.CONTINUE, A)
    reader = factories.supporter()
    place_a = A.as_columns()
    # Variant a: two one-off gifts (one partly refunded) and a plan's first payment plus
    # a renewal (not a new gift), in dollars; one gift in euros.
    factories.donation(reader, 1000, **place_a)
    factories.donation(reader, 2500, refunded_amount=500, **place_a)
    plan = factories.plan(reader, 500, **place_a)
    for _ in range(2):
        factories.donation(
            reader, 500, frequency=Frequency.MONTHLY, recurring_plan_id=plan.id, **place_a
        )
    factories.donation(reader, 2000, "EUR", **place_a)
    # Variant b: one gift, and one that failed (not counted).
    factories.donation(reader, 5000, **B.as_columns())
    factories.donation(reader, 5000, status=DonationStatus.FAILED, **B.as_columns())
    # Not from the embed at all: left out.
    factories.donation(reader, 9900)


def test_per_variant_by_hand(ctx) -> None:
    seed()
    commit()
    rows = list(placement_rows(ReportFilters(), UTC))
    # a: gifts 1000 + 2500 + 500 (first payment) = 3 dollar gifts, net 1000 + 2000 + 500 = 35.00;
    # 1 euro gift; 4 gifts / 200 shown = 2.00 %. b: 1 gift / 150 shown = 0.67 %.
    assert [tuple(str(c) for c in r) for r in rows] == [
        ("budget-vote", "winter", "a", "200", "7", "0", "4", "2.00%", "EUR", "1", "20.00"),
        ("budget-vote", "winter", "a", "200", "7", "0", "4", "2.00%", "USD", "3", "35.00"),
        ("budget-vote", "winter", "b", "150", "0", "0", "1", "0.67%", "USD", "1", "50.00"),
    ]
    totals = placement_totals(ReportFilters(), UTC).rows
    assert [tuple(str(c) for c in r) for r in totals] == [
        ("350", "5", "1.43%", "EUR", "20.00"),
        ("350", "5", "1.43%", "USD", "85.00"),
    ]


def test_dates_and_campaign_narrow_it(ctx) -> None:
    seed()
    count_event(EmbedEvent.IMPRESSION, Attribution("old", "autumn", None), day=date(2026, 1, 5))
    commit()
    january = ReportFilters(start=date(2026, 1, 1), end=date(2026, 1, 31))
    assert list(placement_rows(january, UTC)) == [
        ("old", "autumn", "", 1, 0, 0, 0, "0.00%", "", 0, None)
    ]
    autumn = list(placement_rows(ReportFilters(campaign="autumn"), UTC))
    assert [r[:3] for r in autumn] == [("old", "autumn", "")]


def test_the_report_downloads(signed_in, app) -> None:
    with app.app_context():
        seed()
        commit()
    client, _ = signed_in(Role.FINANCE)
    screen = client.get("/staff/reports/placements")
    assert screen.status_code == 200
    assert "budget-vote" in screen.text
    answer = client.get("/staff/reports/placements.csv")
    assert answer.status_code == 200
    table = list(csv.reader(io.StringIO(answer.get_data().decode("utf-8-sig"))))
    assert table[0][:4] == ["article", "campaign", "variant", "impressions"]
    assert len(table) == 4
