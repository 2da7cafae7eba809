"""Campaign meters from the ledger: net of refunds, first payments only, within the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from donations.db import commit, utcnow
from donations.support.campaigns import (
    CampaignError,
    create_campaign,
    forget_meter,
    meter_for,
    running_campaign,
)
from donations.supporters.models import DonationStatus, Frequency
from tests import factories


def winter(goal: int = 100_000, currency: str | None = "USD", slug: str = "winter"):
    now = utcnow()
    return create_campaign(
        slug=slug,
        title={"en": "Winter appeal", "ru": "Зимний сбор"},
        starts_at=now - timedelta(days=10),
        ends_at=now + timedelta(days=20),
        goal=goal,
        currency=currency,
    )


def test_the_meter_counts_settled_first_payments_net_of_refunds(ctx) -> None:
    campaign = winter()
    ada, bo, cy = (factories.supporter(f"{n}@example.org") for n in ("ada", "bo", "cy"))
    factories.donation(ada, 2500, campaign="winter")  # counts 25.00
    factories.donation(bo, 4000, campaign="winter", refunded_amount=1000)  # counts 30.00
    refunded = factories.donation(cy, 5000, campaign="winter", fee_cover_amount=150)
    refunded.refunded_amount = 5150  # refunded in full, fee cover too: counts 0
    plan = factories.plan(ada, 1000, campaign="winter")
    for _ in range(3):  # the first payment counts 10.00; the renewals do not
        factories.donation(
            ada, 1000, frequency=Frequency.MONTHLY, recurring_plan_id=plan.id, campaign="winter"
        )
    factories.donation(ada, 7000, campaign="winter", status=DonationStatus.PROCESSING)  # unsettled
    factories.donation(ada, 7000, campaign="winter", status=DonationStatus.FAILED)
    factories.donation(ada, 7000, "EUR", campaign="winter")  # another currency
    factories.donation(ada, 7000, campaign="summer")  # another campaign
    factories.donation(ada, 7000)  # none
    factories.donation(  # before the campaign began
        ada, 7000, campaign="winter", succeeded_at=campaign.starts_at - timedelta(seconds=1)
    )
    meter = meter_for(campaign)
    assert meter.raised == 2500 + 3000 + 0 + 1000
    assert meter.percent == 6  # 65.00 of 1,000.00, rounded down

    # Refunding the first gift in full moves the meter down by exactly it.
    first = factories.donation(bo, 2000, campaign="winter")
    assert meter_for(campaign).raised == 6500 + 2000
    first.refunded_amount = 2000
    assert meter_for(campaign).raised == 6500


def test_a_supporters_goal_counts_people_with_money_kept(ctx) -> None:
    campaign = winter(goal=3, currency=None)
    ada, bo, cy = (factories.supporter(f"{n}@example.org") for n in ("ada", "bo", "cy"))
    factories.donation(ada, 1000, campaign="winter")
    factories.donation(ada, 1000, campaign="winter")  # the same person twice
    factories.donation(bo, 1000, "EUR", campaign="winter")  # any currency
    factories.donation(cy, 1000, campaign="winter", refunded_amount=1000)  # refunded: not kept
    meter = meter_for(campaign)
    assert (meter.raised, meter.goal, meter.percent) == (2, 3, 66)


def test_only_a_running_campaign_is_shown(ctx) -> None:
    assert running_campaign() is None
    now = utcnow()
    create_campaign(
        slug="over",
        title={"en": "Over"},
        starts_at=now - timedelta(days=30),
        ends_at=now - timedelta(days=1),
        goal=10,
    )
    assert running_campaign() is None
    winter()
    assert running_campaign().slug == "winter"


@pytest.mark.parametrize(
    "change",
    [
        {"slug": ""},
        {"slug": "x" * 101},
        {"slug": "a\x00b"},
        {"goal": 0},
        {"ends_at": datetime(2020, 1, 1, tzinfo=UTC)},
    ],
)
def test_bad_campaigns_are_refused(ctx, change) -> None:
    values = {
        "slug": "spring",
        "title": {"en": "Spring"},
        "starts_at": datetime(2026, 3, 1, tzinfo=UTC),
        "ends_at": datetime(2026, 4, 1, tzinfo=UTC),
        "goal": 100,
        **change,
    }
    with pytest.raises(CampaignError):
        create_campaign(**values)


def test_the_meter_in_the_embed_config_and_on_support(client, ctx) -> None:
    winter()
    factories.donation(factories.supporter(), 12_500, campaign="winter")
    commit()
    forget_meter()
    config = client.get("/embed/config.json?lang=en").get_json()
    assert config["campaign"] == {
        "slug": "winter",
        "title": "Winter appeal",
        "goal_kind": "amount",
        "goal": 100_000,
        "raised": 12_500,
        "percent": 12,
        "currency": "USD",
        "text": "$125.00 raised of $1,000.00",
    }
    russian = client.get("/embed/config.json?lang=ru").get_json()["campaign"]
    assert russian["title"] == "Зимний сбор"
    assert russian["text"].replace("\xa0", " ") == "125,00 $ собрано из 1 000,00 $"
    page = client.get("/support").text
    assert "Winter appeal: $125.00 raised of $1,000.00" in page
    assert '<progress id="campaign-meter" max="100000" value="12500">' in page
    # The ask carries the campaign on, so a gift from /support counts towards it.
    assert '<input type="hidden" name="campaign" value="winter">' in page


def test_the_cli_creates_and_shows(app, ctx) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "campaigns",
            "create",
            "winter",
            "--title",
            "Winter appeal",
            "--start",
            "2026-12-01",
            "--end",
            "2026-12-31",
            "--goal",
            "5000",
            "--currency",
            "eur",
        ]
    )
    assert result.exit_code == 0, result.output
    shown = runner.invoke(args=["campaigns", "show"])
    assert "winter\t2026-12-01..2027-01-01\t€0.00 of €5,000.00 (0%)" in shown.output
    again = runner.invoke(
        args=[
            "campaigns",
            "create",
            "winter",
            "--title",
            "x",
            "--start",
            "2026-12-01",
            "--end",
            "2026-12-31",
            "--goal",
            "5",
        ]
    )
    assert again.exit_code == 1
    assert "exists" in again.output
