"""Abandoned checkouts expire, their intents cancelled at Stripe, and block no erasure
(issue 11 item 2), against the simulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from donations.config import ConfigError, load_settings
from donations.db import db, utcnow
from donations.payments.tasks import expire_abandoned
from donations.supporters.models import (
    Consent,
    ConsentStatus,
    Donation,
    DonationStatus,
    PlanStatus,
    RecurringPlan,
    Supporter,
)
from donations.tasks import PERIODIC_TASKS, celery_app
from tests.operations.test_erasure import erase
from tests.payments.stripe_flows import give, start_gift, stripe_api
from tests.support.test_checkout import client_secret_of, details_form
from tests.support.test_recurring import start_plan


def age(row: Donation | RecurringPlan, hours: float) -> None:
    row.created_at = utcnow() - timedelta(hours=hours)
    db.session.commit()


def only(model):
    db.session.expire_all()
    (row,) = db.session.scalars(select(model)).all()
    return row


def test_an_unpaid_gift_expires_after_a_day_with_its_payment_intent(
    client, ctx, simulator
) -> None:
    form = details_form(client)
    form["newsletter"] = "y"
    pay_url = client.post("/support/checkout", data=form).headers["Location"]
    intent_id = client_secret_of(client.get(pay_url).text).split("_secret_")[0]
    donation = only(Donation)
    age(donation, 23)
    assert expire_abandoned() == 0  # not a day old yet
    age(donation, 25)
    assert expire_abandoned() == 1
    assert only(Donation).status is DonationStatus.CANCELED
    assert stripe_api(simulator, "GET", f"/v1/payment_intents/{intent_id}")["status"] == "canceled"
    assert only(Consent).status is ConsentStatus.EXPIRED
    assert client.get(pay_url).status_code == 410
    assert client.get(pay_url.replace("/pay/", "/thanks/")).status_code == 410
    assert expire_abandoned() == 0  # done once


def test_a_declined_gift_expires_too(client, ctx, simulator) -> None:
    gift = start_gift(client)
    simulator.confirm(gift.client_secret, card="4000000000000002")
    client.get(gift.pay_url)
    assert gift.donation().status is DonationStatus.FAILED
    age(gift.donation(), 25)
    assert expire_abandoned() == 1
    assert gift.donation().status is DonationStatus.CANCELED


def test_a_gift_paid_at_the_last_moment_is_recorded_not_cancelled(
    client, ctx, simulator
) -> None:
    gift = give(client, simulator, record=False)  # paid; the ledger has not heard yet
    age(gift.donation(), 25)
    assert expire_abandoned() == 0
    assert gift.donation().status is DonationStatus.SUCCEEDED
    assert stripe_api(simulator, "GET", f"/v1/payment_intents/{gift.intent_id}")["status"] == (
        "succeeded"
    )


def test_an_unpaid_plan_expires_with_its_setup_intent(client, ctx, simulator) -> None:
    pay_url, secret = start_plan(client)
    plan = only(RecurringPlan)
    age(plan, 25)
    assert expire_abandoned() == 1
    assert only(RecurringPlan).status is PlanStatus.INCOMPLETE_EXPIRED
    setup_id = secret.split("_secret_")[0]
    assert stripe_api(simulator, "GET", f"/v1/setup_intents/{setup_id}")["status"] == "canceled"
    assert client.get(pay_url).status_code == 410


def test_an_active_plan_is_never_expired(client, ctx, simulator) -> None:
    pay_url, secret = start_plan(client)
    simulator.confirm_setup(secret)
    client.get(pay_url.replace("/pay/", "/thanks/"))
    age(only(RecurringPlan), 48)
    assert expire_abandoned() == 0
    assert only(RecurringPlan).status is PlanStatus.ACTIVE


def test_a_strangers_unpaid_monthly_checkout_does_not_block_erasure(
    app, client, ctx, simulator
) -> None:
    give(client, simulator, email="owner@example.org")
    form = details_form(client, frequency="monthly")
    form["email"] = "owner@example.org"
    pay_url = client.post("/support/checkout", data=form).headers["Location"]
    setup_id = client_secret_of(client.get(pay_url).text).split("_secret_")[0]
    one_off = start_gift(client, email="owner@example.org")  # and an unpaid gift, minutes old

    result = erase(app, "owner@example.org", "--yes")
    assert result.exit_code == 0, result.output
    assert "2 unpaid checkouts expired" in result.output
    assert only(RecurringPlan).status is PlanStatus.INCOMPLETE_EXPIRED
    assert stripe_api(simulator, "GET", f"/v1/setup_intents/{setup_id}")["status"] == "canceled"
    assert stripe_api(simulator, "GET", f"/v1/payment_intents/{one_off.intent_id}")["status"] == (
        "canceled"
    )
    assert db.session.scalar(select(Supporter.erased_at)) is not None


def test_the_expiry_runs_periodically() -> None:
    import donations.payments.tasks  # noqa: F401 - registers the task

    assert "payments.expire_abandoned_checkouts" in PERIODIC_TASKS
    assert "payments.expire_abandoned_checkouts" in celery_app.tasks
    assert "payments.expire_abandoned_checkouts" in celery_app.conf.beat_schedule


BASE_ENV = {
    "SECRET_KEY": "Zq3vK9pX2mN7bR4tY8wL1cF6hJ0sD5gA",
    "DATABASE_URL": "sqlite:///x.db",
    "STRIPE_SECRET_KEY": "sk_test_x",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
}


@pytest.mark.parametrize(("raw", "hours"), [("", 24), ("1", 1), ("720", 720)])
def test_the_expiry_is_a_setting(raw: str, hours: int) -> None:
    assert load_settings({**BASE_ENV, "CHECKOUT_EXPIRY_HOURS": raw}).checkout_expiry_hours == hours


@pytest.mark.parametrize("raw", ["0", "721", "-1", "1.5", "day", "²"])
def test_a_bad_expiry_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="CHECKOUT_EXPIRY_HOURS"):
        load_settings({**BASE_ENV, "CHECKOUT_EXPIRY_HOURS": raw})
