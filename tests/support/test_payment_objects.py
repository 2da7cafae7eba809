"""GET requests cannot mint Stripe objects: counted in the simulator after 200 requests."""

from __future__ import annotations

import re

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from donations.db import db
from donations.payments.recurring import plan_link_token
from donations.supporters.models import RecurringPlan
from tests.harness import Simulator
from tests.support.test_recurring import start_plan, thanks_url

FAILING_CARD = "4000000000000341"  # attaches, then every charge fails


def setup_intents(simulator: Simulator, customer: str) -> list[str]:
    """The customer's SetupIntents. The simulator cannot filter them and the whole suite
    makes more than Stripe's page of 100, so all are listed in one (it has no maximum)."""
    response = requests.get(
        f"{simulator.url}/v1/setup_intents",
        params={"limit": 100_000},  # a GET reads its options from the query string
        headers={"Authorization": "Bearer sk_test_local"},
        timeout=30,
    )
    response.raise_for_status()
    listed = response.json()
    assert not listed["has_more"]
    return [s["id"] for s in listed["data"] if s.get("customer") == customer]


def plan_with_failed_first_payment(client, simulator: Simulator) -> tuple[str, RecurringPlan]:
    pay_url, secret = start_plan(client)
    assert simulator.confirm_setup(secret, card=FAILING_CARD).json()["status"] == "succeeded"
    back = client.get(thanks_url(pay_url))
    assert back.status_code == 303
    assert back.headers["Location"].endswith(pay_url)
    plan = db.session.scalar(select(RecurringPlan))
    assert plan is not None
    assert plan.stripe_subscription_id
    return pay_url, plan


def test_200_visits_of_a_failed_plans_payment_page_create_one_setup_intent(
    client, ctx, simulator
) -> None:
    pay_url, plan = plan_with_failed_first_payment(client, simulator)
    customer = str(plan.supporter.stripe_customer_id)
    before = setup_intents(simulator, customer)
    assert len(before) == 1  # the one the card was saved with

    secrets = set()
    for _ in range(200):
        page = client.get(pay_url)
        assert page.status_code == 200
        assert 'data-mode="setup"' in page.text
        secrets.add(re.search(r'data-client-secret="([^"]+)"', page.text).group(1))

    after = setup_intents(simulator, customer)
    assert len(after) == 2, after  # one retry intent, reused by every visit
    assert len(secrets) == 1


def test_the_dunning_link_reuses_the_open_setup_intent(client, ctx, simulator) -> None:
    _, plan = plan_with_failed_first_payment(client, simulator)
    customer = str(plan.supporter.stripe_customer_id)
    link = f"/support/plan/{plan_link_token(plan)}/payment-method"
    for _ in range(20):
        assert client.get(link).status_code == 200
    assert len(setup_intents(simulator, customer)) == 2


@pytest.fixture
def limited_app(make_app) -> Flask:
    return make_app(CHECKOUT_RATE_LIMIT="10 per minute")


@pytest.mark.parametrize("page", ["pay", "thanks"])
def test_payment_pages_are_rate_limited(limited_app: Flask, page: str) -> None:
    client = limited_app.test_client()
    answers = [client.get(f"/support/{page}/no-such-token").status_code for _ in range(12)]
    assert answers[:10] == [404] * 10
    assert answers[10:] == [429, 429]
