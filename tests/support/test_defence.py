"""Card-testing defence, currency choice and fee cover on the ask."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from donations.db import db
from donations.supporters.models import Donation
from tests.support.test_checkout import client_secret_of, details_form


@pytest.fixture
def strict_app(make_app):
    """The same database and simulator with the production rate limits."""
    return make_app(CHECKOUT_RATE_LIMIT=None)


def test_two_hundred_attempts_create_at_most_ten_payment_intents(strict_app, ctx) -> None:
    client = strict_app.test_client()
    statuses = []
    for n in range(200):
        form = details_form(client)
        form["email"] = f"tester{n}@example.org"
        statuses.append(client.post("/support/checkout", data=form).status_code)
    with strict_app.app_context():
        created = db.session.scalar(
            select(func.count())
            .select_from(Donation)
            .where(Donation.stripe_payment_intent_id.is_not(None))
        )
    assert created <= 10
    assert statuses.count(303) == created
    assert statuses.count(429) == 200 - created


def test_one_email_cannot_start_many_checkouts_from_many_addresses(strict_app) -> None:
    client = strict_app.test_client()
    codes = []
    for n in range(15):
        form = details_form(client)
        codes.append(
            client.post(
                "/support/checkout", data=form, environ_base={"REMOTE_ADDR": f"10.0.0.{n}"}
            ).status_code
        )
    assert codes.count(429) >= 5


def test_repeated_declines_block_new_checkouts(client, ctx, simulator) -> None:
    for _ in range(5):
        pay_url = client.post("/support/checkout", data=details_form(client)).headers["Location"]
        secret = client_secret_of(client.get(pay_url).text)
        assert simulator.confirm(secret, card="4000000000000002").status_code == 402
        answer = client.post(
            pay_url + "/declined",
            headers={
                "X-CSRFToken": re.search(r'data-csrf="([^"]+)"', client.get(pay_url).text).group(1)
            },
        )
        assert answer.status_code == 200
    assert answer.json["blocked"] is True
    blocked = client.post("/support/checkout", data=details_form(client))
    assert blocked.status_code == 429
    assert "Too many declined payments" in blocked.text


def test_decline_report_needs_csrf(client, ctx) -> None:
    pay_url = client.post("/support/checkout", data=details_form(client)).headers["Location"]
    assert client.post(pay_url + "/declined").status_code == 400


def test_honeypot_creates_nothing(client, ctx) -> None:
    form = details_form(client)
    form["website"] = "http://spam.example"
    page = client.post("/support/checkout", data=form)
    assert page.status_code == 400
    assert "This form has expired. Please start again." in page.text
    assert db.session.scalar(select(func.count()).select_from(Donation)) == 0


def test_fee_cover_is_shown_and_stored_apart(client, ctx, simulator) -> None:
    form = details_form(client, amount="20")
    page = client.get("/support/checkout?frequency=once&amount=20&currency=USD").text
    assert "Add $0.91 to cover the processing fee" in page  # 2.9% + 30, grossed up
    form["cover_fee"] = "y"
    pay_url = client.post("/support/checkout", data=form).headers["Location"]
    assert "Give $20.91" in client.get(pay_url).text
    donation = db.session.scalar(select(Donation))
    assert (donation.amount, donation.fee_cover_amount) == (2000, 91)
    secret = client_secret_of(client.get(pay_url).text)
    confirmed = simulator.confirm(secret).json()
    assert confirmed["amount"] == 2091


@pytest.mark.parametrize(
    ("accept_language", "currency"),
    [
        ("de-DE,de;q=0.9", "EUR"),
        ("en-GB", "GBP"),
        ("en-US", "USD"),
        ("ru-RU", "USD"),
        ("fr", "USD"),
    ],
)
def test_currency_follows_the_readers_region(client, accept_language: str, currency: str) -> None:
    page = client.get("/support", headers={"Accept-Language": accept_language}).text
    assert f'<option value="{currency}" selected>' in page


def test_currency_can_be_changed(client) -> None:
    page = client.get("/support?currency=GBP&frequency=monthly").text
    assert '<option value="GBP" selected>' in page
    assert "£10.00" in page
