"""The one-off checkout through HTTP, against the Stripe simulator."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from donations.db import db
from donations.mail.models import EmailMessage
from donations.money import Money
from donations.supporters.models import Donation, DonationStatus, Supporter


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def details_form(client, amount: str = "10", currency: str = "USD", frequency: str = "once"):
    page = client.get(
        f"/support/checkout?frequency={frequency}&amount={amount}&currency={currency}"
    )
    assert page.status_code == 200, page.text
    html = page.text
    attempt = re.search(r'name="attempt" type="hidden" value="([0-9a-f]{32})"', html)
    assert attempt
    return {
        "csrf_token": csrf_token(html),
        "attempt": attempt.group(1),
        "frequency": frequency,
        "currency": currency,
        "amount": re.search(r'name="amount" type="hidden" value="([^"]+)"', html).group(1),
        "email": "Reader@Example.org",
        "name": "Ada Reader",
        "country": "GB",
    }


def client_secret_of(html: str) -> str:
    match = re.search(r'data-client-secret="([^"]+)"', html)
    assert match
    return match.group(1)


def test_ask_page_offers_the_choices(client) -> None:
    page = client.get("/support")
    assert page.status_code == 200
    for label in ("Once", "Monthly", "Annual", "Continue", "Remind me later"):
        assert label in page.text


def test_ask_prefills_from_query(client) -> None:
    page = client.get("/support?frequency=once&amount=50&currency=EUR").text
    assert re.search(r'id="frequency-once" value="once"\s+checked', page)
    assert re.search(r'<option value="EUR" selected>', page)
    assert re.search(r'value="50.00"\s+checked', page)


@pytest.mark.parametrize(
    "query", ["frequency=weekly", "amount=-5", "currency=XXX", "amount=NaN", "amount=1e9"]
)
def test_ask_ignores_bad_prefill(client, query: str) -> None:
    page = client.get(f"/support?{query}")
    assert page.status_code == 200
    # The ask's own choices, as with no prefill at all (the link carries them).
    chosen = re.compile(r'<a href="([^"]*)" id="remind-link"')
    assert chosen.findall(page.text) == chosen.findall(client.get("/support").text) != []


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "smallest gift"),
        ("-5", "such as 10"),
        ("1e9", "such as 10"),
        ("NaN", "such as 10"),
        ("10.005", "such as 10"),
        ("0.50", "smallest gift"),
        ("20000", "largest gift"),
        ("", "such as 10"),
    ],
)
def test_bad_amounts_get_a_message_and_create_nothing(
    client, ctx, amount: str, message: str
) -> None:
    page = client.get(f"/support/checkout?frequency=once&amount={amount}&currency=USD")
    assert page.status_code == 400
    assert message in page.text
    assert db.session.scalar(select(func.count()).select_from(Donation)) == 0


def test_unknown_currency_is_refused(client) -> None:
    page = client.get("/support/checkout?frequency=once&amount=10&currency=XXX")
    assert page.status_code == 400
    assert "currencies offered" in page.text


def test_tampered_hidden_amount_is_revalidated(client, ctx) -> None:
    form = details_form(client)
    form["amount"] = "0.01"
    page = client.post("/support/checkout", data=form)
    assert page.status_code == 400
    assert "smallest gift" in page.text
    assert db.session.scalar(select(func.count()).select_from(Donation)) == 0


def test_post_without_csrf_token_is_refused(client, ctx) -> None:
    form = details_form(client)
    del form["csrf_token"]
    assert client.post("/support/checkout", data=form).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Donation)) == 0


def test_invalid_email_is_refused(client, ctx) -> None:
    form = details_form(client)
    form["email"] = "not-an-email\r\nBcc: x@y.z"
    page = client.post("/support/checkout", data=form)
    assert page.status_code == 400
    assert "email address" in page.text
    assert db.session.scalar(select(func.count()).select_from(Supporter)) == 0


def test_one_off_gift_end_to_end(client, ctx, simulator, mailbox) -> None:
    form = details_form(client, amount="10")
    started = client.post("/support/checkout", data=form)
    assert started.status_code == 303
    pay_url = started.headers["Location"]
    pay = client.get(pay_url)
    assert pay.status_code == 200
    secret = client_secret_of(pay.text)

    confirmed = simulator.confirm(secret)
    assert confirmed.json()["status"] == "succeeded"

    thanks = client.get(pay_url.replace("/pay/", "/thanks/"))
    assert thanks.status_code == 200
    assert "We charged $10.00 to Visa •••• 4242." in thanks.text

    donation = db.session.scalar(select(Donation))
    assert donation.status is DonationStatus.SUCCEEDED
    assert (donation.amount, donation.currency, donation.card_last4) == (1000, "USD", "4242")
    assert donation.stripe_charge_id
    assert donation.stripe_charge_id.startswith("ch_")
    assert donation.supporter.email_key == "reader@example.org"
    assert donation.supporter.stripe_customer_id

    messages = mailbox.wait_for(1)
    assert len(messages) == 1
    assert messages[0]["To"].addresses[0].addr_spec == "Reader@Example.org"
    assert "$10.00" in messages[0]["Subject"]
    # A second visit to the thank-you page sends nothing more.
    client.get(pay_url.replace("/pay/", "/thanks/"))
    assert db.session.scalar(select(func.count()).select_from(EmailMessage)) == 1


def test_double_submit_creates_one_payment(client, ctx, simulator) -> None:
    form = details_form(client)
    first = client.post("/support/checkout", data=form)
    second = client.post("/support/checkout", data=form)
    assert first.headers["Location"] == second.headers["Location"]
    assert db.session.scalar(select(func.count()).select_from(Donation)) == 1
    # Refreshing the payment page shows the same PaymentIntent.
    url = first.headers["Location"]
    assert client_secret_of(client.get(url).text) == client_secret_of(client.get(url).text)


def test_same_attempt_with_other_email_is_refused(client, ctx) -> None:
    form = details_form(client)
    client.post("/support/checkout", data=form)
    form["email"] = "someone.else@example.org"
    page = client.post("/support/checkout", data=form)
    assert page.status_code == 409
    assert "This form has expired. Please start again." in page.text
    assert db.session.scalar(select(Supporter.email_key)) == "reader@example.org"
    assert db.session.scalar(select(func.count()).select_from(Donation)) == 1


def test_decline_then_retry_succeeds(client, ctx, simulator, mailbox) -> None:
    started = client.post("/support/checkout", data=details_form(client))
    pay_url = started.headers["Location"]
    secret = client_secret_of(client.get(pay_url).text)
    declined = simulator.confirm(secret, card="4000000000000002")
    assert declined.status_code == 402
    assert declined.json()["error"]["decline_code"] == "generic_decline"

    again = client.get(pay_url.replace("/pay/", "/thanks/"))
    assert again.status_code == 303
    assert again.headers["Location"].endswith(pay_url)
    retry_page = client.get(pay_url)
    assert "declined" in retry_page.text
    donation = db.session.scalar(select(Donation))
    assert donation.status is DonationStatus.FAILED
    assert mailbox.messages == []

    assert simulator.confirm(client_secret_of(retry_page.text)).json()["status"] == "succeeded"
    thanks = client.get(pay_url.replace("/pay/", "/thanks/"))
    assert thanks.status_code == 200
    db.session.refresh(donation)
    assert donation.status is DonationStatus.SUCCEEDED
    charged = Money(donation.amount, donation.currency).format()
    assert f"We charged {charged} to Visa •••• {donation.card_last4}." in thanks.text
    assert len(mailbox.wait_for(1)) == 1


def test_three_d_secure_success(client, ctx, simulator) -> None:
    pay_url = client.post("/support/checkout", data=details_form(client)).headers["Location"]
    secret = client_secret_of(client.get(pay_url).text)
    assert simulator.confirm(secret, card="4000002500003155").json()["status"] == "requires_action"
    # Not paid yet: the thank-you page sends the reader back to finish.
    unpaid = client.get(pay_url.replace("/pay/", "/thanks/"))
    assert unpaid.status_code == 303
    assert unpaid.headers["Location"].endswith(pay_url)
    assert simulator.authenticate(secret, True).json()["status"] == "succeeded"
    thanks = client.get(pay_url.replace("/pay/", "/thanks/"))
    assert thanks.status_code == 200
    donation = db.session.scalar(select(Donation))
    assert donation.status is DonationStatus.SUCCEEDED
    assert Money(donation.amount, donation.currency).format() in thanks.text


def test_three_d_secure_failure_without_decline_code(client, ctx, simulator) -> None:
    # Stripe's last_payment_error for a failed 3DS challenge has no decline_code.
    pay_url = client.post("/support/checkout", data=details_form(client)).headers["Location"]
    secret = client_secret_of(client.get(pay_url).text)
    assert simulator.confirm(secret, card="4000002500003155").json()["status"] == "requires_action"
    failed = simulator.authenticate(secret, False).json()
    assert "decline_code" not in failed["last_payment_error"]

    pay_page = client.get(pay_url)
    assert pay_page.status_code == 200
    assert "declined" in pay_page.text
    csrf = re.search(r'data-csrf="([^"]+)"', pay_page.text).group(1)
    answer = client.post(pay_url + "/declined", headers={"X-CSRFToken": csrf})
    assert answer.status_code == 200
    assert answer.json == {"blocked": False}  # one decline does not block the address
    donation = db.session.scalar(select(Donation))
    assert donation.status is DonationStatus.FAILED
    assert donation.failure_code == "payment_intent_authentication_failure"


def test_unknown_token_is_404(client) -> None:
    assert client.get(f"/support/pay/{uuid.uuid4().hex}").status_code == 404
    assert client.get("/support/thanks/" + "x" * 300).status_code == 404


@pytest.mark.parametrize(
    ("typed", "lang", "major"),
    [("1,000", "en", "1000.00"), ("1 000,50", "ru", "1000.50"), ("1000,5", "ru", "1000.50")],
)
def test_typed_amount_is_read_in_the_readers_locale(
    client, typed: str, lang: str, major: str
) -> None:
    page = client.get(
        "/support/checkout",
        query_string={"frequency": "once", "currency": "EUR", "custom_amount": typed, "lang": lang},
    )
    assert page.status_code == 200, page.text
    assert f'name="amount" type="hidden" value="{major}"' in page.text


def test_ambiguous_typed_amount_gets_an_example_in_the_locale(client) -> None:
    page = client.get(
        "/support/checkout",
        query_string={"frequency": "once", "currency": "EUR", "custom_amount": "5,5", "lang": "en"},
    )
    assert page.status_code == 400
    assert "such as 1,234.50" in page.text
