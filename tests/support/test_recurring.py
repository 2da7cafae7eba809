"""Monthly and annual support: SetupIntent first, then the subscription, renewals, dunning."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import func, select

from donations.db import db
from donations.mail.models import EmailMessage
from donations.money import Money
from donations.supporters.models import Donation, DonationStatus, PlanStatus, RecurringPlan
from tests.harness import signed_event
from tests.support.test_checkout import client_secret_of, details_form


def start_plan(client, frequency: str = "monthly", amount: str = "10", currency: str = "USD"):
    form = details_form(client, amount=amount, currency=currency, frequency=frequency)
    started = client.post("/support/checkout", data=form)
    assert started.status_code == 303, started.text
    pay_url = started.headers["Location"]
    page = client.get(pay_url)
    assert page.status_code == 200
    assert 'data-mode="setup"' in page.text
    secret = client_secret_of(page.text)
    assert secret.startswith("seti_")
    return pay_url, secret


def thanks_url(pay_url: str) -> str:
    return pay_url.replace("/pay/", "/thanks/")


def emails(template: str) -> list[EmailMessage]:
    return list(db.session.scalars(select(EmailMessage).where(EmailMessage.template == template)))


@pytest.mark.parametrize(
    ("frequency", "wording"), [("monthly", "every month"), ("annual", "every year")]
)
def test_recurring_by_card(client, ctx, simulator, mailbox, frequency: str, wording: str) -> None:
    pay_url, secret = start_plan(client, frequency=frequency, amount="15")
    assert simulator.confirm_setup(secret).json()["status"] == "succeeded"

    thanks = client.get(thanks_url(pay_url))
    assert thanks.status_code == 200, thanks.text
    assert "We charged $15.00 to Visa •••• 4242." in thanks.text
    assert f"You will be charged $15.00 {wording}." in thanks.text

    plan = db.session.scalar(select(RecurringPlan))
    assert plan.status is PlanStatus.ACTIVE
    assert plan.stripe_subscription_id.startswith("sub_")
    assert plan.next_renewal_at is not None
    first = db.session.scalar(select(Donation))
    assert (first.recurring_plan_id, first.amount, first.status) == (
        plan.id,
        1500,
        DonationStatus.SUCCEEDED,
    )
    assert str(first.frequency) == frequency
    assert first.stripe_invoice_id.startswith("in_")

    messages = mailbox.wait_for(2)
    subjects = sorted(m["Subject"] for m in messages)
    assert any("receipt" in s.lower() for s in subjects)
    assert any("Welcome" in s for s in subjects)
    welcome = next(m for m in messages if "Welcome" in m["Subject"])
    assert "cancel" in welcome.get_body(("plain",)).get_content()
    # Visiting again creates nothing more, and says the same.
    again = client.get(thanks_url(pay_url))
    assert again.status_code == 200
    charged = Money(first.amount, first.currency).format()
    assert f"We charged {charged} to Visa •••• {first.card_last4}." in again.text
    assert db.session.scalar(select(func.count()).select_from(Donation)) == 1
    assert len(emails("welcome")) == 1


def test_monthly_by_sepa_is_pending_until_the_debit_settles(
    client, ctx, simulator, mailbox
) -> None:
    page_html = client.get("/support/checkout?frequency=monthly&amount=10&currency=EUR").text
    assert "SEPA Direct Debit" in page_html
    pay_url, secret = start_plan(client, currency="EUR")
    assert "sepa-mandate" in client.get(pay_url).text
    assert simulator.confirm_setup(secret, "DE89370400440532013000").json()["status"] == "succeeded"

    thanks = client.get(thanks_url(pay_url))
    assert thanks.status_code == 200
    assert "processing the first payment" in thanks.text
    first = db.session.scalar(select(Donation))
    assert first.status is DonationStatus.PROCESSING
    assert first.method == "sepa_debit"
    assert emails("receipt") == []

    deadline = time.monotonic() + 10
    while first.status is not DonationStatus.SUCCEEDED and time.monotonic() < deadline:
        time.sleep(0.3)
        client.get(thanks_url(pay_url))
        db.session.expire_all()
        first = db.session.scalar(select(Donation))
    assert first.status is DonationStatus.SUCCEEDED
    assert len(emails("receipt")) == 1


def test_sepa_is_not_offered_for_dollars(client) -> None:
    assert (
        "SEPA" not in client.get("/support/checkout?frequency=monthly&amount=10&currency=USD").text
    )


def test_three_d_secure_on_first_payment(client, ctx, simulator) -> None:
    pay_url, secret = start_plan(client)
    assert simulator.confirm_setup(secret, "4000002500003155").json()["status"] == "requires_action"
    assert simulator.complete_setup_authentication(secret).json()["status"] == "succeeded"

    # The subscription exists but its first payment waits for the reader's bank.
    back = client.get(thanks_url(pay_url))
    assert back.status_code == 303
    assert back.headers["Location"].endswith(pay_url)
    page = client.get(pay_url)
    assert 'data-mode="authenticate"' in page.text
    intent_secret = client_secret_of(page.text)
    assert intent_secret.startswith("pi_")
    plan = db.session.scalar(select(RecurringPlan))
    assert plan.status is PlanStatus.INCOMPLETE

    assert simulator.authenticate(intent_secret, True).json()["status"] == "succeeded"
    thanks = client.get(thanks_url(pay_url))
    assert thanks.status_code == 200
    db.session.refresh(plan)
    assert plan.status is PlanStatus.ACTIVE
    assert f"We charged {Money(plan.amount, plan.currency).format()} to" in thanks.text


def test_failed_renewal_then_new_card(client, ctx, simulator, mailbox) -> None:
    pay_url, secret = start_plan(client)
    simulator.confirm_setup(secret)
    client.get(thanks_url(pay_url))
    plan = db.session.scalar(select(RecurringPlan))
    assert plan.status is PlanStatus.ACTIVE

    # The card on file stops working (it attaches, then every charge fails).
    failing = simulator.api(
        "POST",
        "/v1/payment_methods",
        type="card",
        **{
            "card[number]": "4000000000000341",
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
    )
    simulator.api(
        "POST",
        f"/v1/payment_methods/{failing['id']}/attach",
        customer=plan.supporter.stripe_customer_id,
    )
    simulator.api(
        "POST",
        f"/v1/subscriptions/{plan.stripe_subscription_id}",
        default_payment_method=failing["id"],
    )
    invoice = simulator.renew(plan.stripe_subscription_id)
    assert invoice["status"] == "open"

    body, headers = signed_event(
        "invoice.payment_failed", {"id": invoice["id"], "object": "invoice"}
    )
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 200
    db.session.expire_all()
    plan = db.session.scalar(select(RecurringPlan))
    assert plan.status is PlanStatus.PAST_DUE
    renewal = db.session.scalar(select(Donation).where(Donation.stripe_invoice_id == invoice["id"]))
    assert renewal.status is DonationStatus.FAILED
    # The same failure delivered again sends no second dunning email.
    client.post("/webhooks/stripe", data=body, headers=headers)
    assert len(emails("payment_failed")) == 1

    dunning = next(m for m in mailbox.wait_for(3) if "did not go through" in m["Subject"])
    link = re.search(
        r"(/support/plan/[^/\s]+/payment-method)", dunning.get_body(("plain",)).get_content()
    ).group(1)
    page = client.get(link)
    assert page.status_code == 200
    new_secret = client_secret_of(page.text)
    assert simulator.confirm_setup(new_secret).json()["status"] == "succeeded"
    done = client.get(thanks_url(pay_url))
    assert done.status_code == 200

    db.session.expire_all()
    plan = db.session.scalar(select(RecurringPlan))
    assert plan.status is PlanStatus.ACTIVE
    renewal = db.session.scalar(select(Donation).where(Donation.stripe_invoice_id == invoice["id"]))
    assert renewal.status is DonationStatus.SUCCEEDED
    assert db.session.scalar(select(func.count()).select_from(Donation)) == 2


def test_tampered_payment_method_link(client) -> None:
    page = client.get("/support/plan/not-a-real-token/payment-method")
    assert page.status_code == 404
    assert "not valid" in page.text


def test_subscription_ended_on_stripe_ends_the_plan(client, ctx, simulator) -> None:
    pay_url, secret = start_plan(client)
    simulator.confirm_setup(secret)
    client.get(thanks_url(pay_url))
    plan = db.session.scalar(select(RecurringPlan))
    simulator.api("DELETE", f"/v1/subscriptions/{plan.stripe_subscription_id}")
    body, headers = signed_event(
        "customer.subscription.deleted",
        {"id": plan.stripe_subscription_id, "object": "subscription"},
    )
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 200
    db.session.refresh(plan)
    assert plan.status is PlanStatus.CANCELED
    assert plan.canceled_at is not None


@pytest.mark.parametrize(
    ("amount", "message"), [("1.50", "smallest gift"), ("1000.01", "largest gift")]
)
def test_monthly_limits(client, ctx, amount: str, message: str) -> None:
    page = client.get(f"/support/checkout?frequency=monthly&amount={amount}&currency=USD")
    assert page.status_code == 400
    assert message in page.text
    assert db.session.scalar(select(func.count()).select_from(RecurringPlan)) == 0
