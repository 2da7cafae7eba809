"""Real money movements in the simulator, for the ledger's tests.

A gift is made through the checkout over HTTP and confirmed as Stripe.js
would; refunds, disputes and payouts are then made in the simulator through
its Stripe API, and their events delivered with the signed-event injector
(the simulator never sends charge.* or dispute events itself).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import requests
from flask.testing import FlaskClient
from sqlalchemy import func, select

from donations.db import db
from donations.payments.models import StripeEvent
from donations.supporters.models import Donation, PlanStatus, RecurringPlan
from tests.harness import Simulator, signed_event

WEBHOOK = "/webhooks/stripe"
DISPUTE_CARD = "4000000000000259"


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', html)
    assert match, f"no hidden {name} field in the page"
    return match.group(1)


@dataclass
class Gift:
    pay_url: str
    client_secret: str

    @property
    def intent_id(self) -> str:
        return self.client_secret.split("_secret_")[0]

    @property
    def thanks_url(self) -> str:
        return self.pay_url.replace("/pay/", "/thanks/")

    def donation(self) -> Donation:
        db.session.expire_all()
        found = db.session.scalar(
            select(Donation).where(Donation.stripe_payment_intent_id == self.intent_id)
        )
        assert found is not None
        return found


def start_gift(
    client: FlaskClient,
    amount: str = "10",
    currency: str = "USD",
    email: str = "reader@example.org",
    cover: bool = False,
) -> Gift:
    """Drive the checkout to the payment page (a pending donation and its PaymentIntent);
    with ``cover`` the reader covers the card's processing fee."""
    page = client.get(f"/support/checkout?frequency=once&amount={amount}&currency={currency}")
    assert page.status_code == 200, page.text
    form = {
        "csrf_token": hidden(page.text, "csrf_token"),
        "attempt": hidden(page.text, "attempt"),
        "amount": hidden(page.text, "amount"),
        "frequency": "once",
        "currency": currency,
        "email": email,
        "name": "Ada Reader",
        "country": "GB",
        **({"cover_fee": "y", "cover_method": "card"} if cover else {}),
    }
    started = client.post("/support/checkout", data=form)
    assert started.status_code == 303, started.text
    pay_url = started.headers["Location"]
    pay = client.get(pay_url)
    secret = re.search(r'data-client-secret="([^"]+)"', pay.text)
    assert secret, pay.text
    return Gift(pay_url, secret.group(1))


def give(
    client: FlaskClient,
    simulator: Simulator,
    amount: str = "10",
    currency: str = "USD",
    card: str = "4242424242424242",
    email: str = "reader@example.org",
    record: bool = True,
    cover: bool = False,
) -> Gift:
    """A paid gift; with ``record`` the thank-you page has recorded it in the ledger."""
    gift = start_gift(client, amount, currency, email, cover=cover)
    confirmed = simulator.confirm(gift.client_secret, card=card)
    assert confirmed.json()["status"] == "succeeded", confirmed.text
    if record:
        assert client.get(gift.thanks_url).status_code == 200
    return gift


def stripe_api(simulator: Simulator, method: str, path: str, **data: object) -> dict:
    """The simulator's Stripe API with the secret key (test set-up only)."""
    response = requests.request(
        method,
        f"{simulator.url}{path}",
        params=data if method == "GET" else None,
        data=data if method != "GET" else None,
        headers={"Authorization": "Bearer sk_test_local"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def charge_of(simulator: Simulator, gift: Gift) -> str:
    return str(
        stripe_api(simulator, "GET", f"/v1/payment_intents/{gift.intent_id}")["latest_charge"]
    )


def refund(simulator: Simulator, gift: Gift, amount: int | None = None) -> dict:
    data: dict[str, object] = {"payment_intent": gift.intent_id}
    if amount is not None:
        data["amount"] = amount
    return stripe_api(simulator, "POST", "/v1/refunds", **data)


def dispute_of(simulator: Simulator, charge_id: str) -> dict:
    found = stripe_api(simulator, "GET", "/v1/disputes", charge=charge_id)["data"]
    assert len(found) == 1, found
    return found[0]


def close_dispute(simulator: Simulator, dispute_id: str, won: bool) -> dict:
    evidence = "winning_evidence" if won else "losing_evidence"
    return stripe_api(
        simulator,
        "POST",
        f"/v1/disputes/{dispute_id}",
        **{"evidence[uncategorized_text]": evidence},
    )


def payout(simulator: Simulator, currency: str = "usd", status: str = "paid") -> dict:
    return stripe_api(simulator, "POST", "/v1/payouts", currency=currency, status=status)


# -- deliveries -------------------------------------------------------------------


def stale(obj_id: str, object_type: str, **fields: object) -> dict:
    """The event's copy of an object: deliberately thin, as handlers must re-fetch."""
    return {"id": obj_id, "object": object_type, **fields}


def deliver(client: FlaskClient, event_type: str, obj: dict, event_id: str | None = None) -> int:
    body, headers = signed_event(event_type, obj, event_id=event_id)
    return client.post(WEBHOOK, data=body, headers=headers).status_code


def event(event_type: str, obj: dict, event_id: str | None = None) -> tuple[bytes, dict, str]:
    body, headers = signed_event(event_type, obj, event_id=event_id)
    return body, headers, str(json.loads(body)["id"])


def count(model: type) -> int:
    db.session.expire_all()
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def event_row(event_id: str) -> StripeEvent | None:
    db.session.expire_all()
    return db.session.scalar(select(StripeEvent).where(StripeEvent.stripe_event_id == event_id))


def wait_until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- plans and renewals -------------------------------------------------------------

FAILING_CARD = "4000000000000341"  # attaches, then every charge fails


def subscribe(
    client: FlaskClient,
    simulator: Simulator,
    amount: str = "10",
    email: str = "monthly@example.org",
    currency: str = "USD",
) -> RecurringPlan:
    """A monthly plan whose first payment the thank-you page has recorded.

    Give each plan of a test its own ``email``: a supporter's plans share
    one Stripe customer, whose default card they all charge.
    """
    from tests.support.test_checkout import client_secret_of, details_form

    form = details_form(client, amount=amount, currency=currency, frequency="monthly")
    started = client.post("/support/checkout", data={**form, "email": email})
    assert started.status_code == 303, started.text
    pay_url = started.headers["Location"]
    secret = client_secret_of(client.get(pay_url).text)
    assert simulator.confirm_setup(secret).json()["status"] == "succeeded"
    assert client.get(pay_url.replace("/pay/", "/thanks/")).status_code == 200
    db.session.expire_all()
    plan = db.session.scalar(select(RecurringPlan).order_by(RecurringPlan.id.desc()))
    assert plan is not None
    assert plan.status is PlanStatus.ACTIVE
    return plan


def fail_future_charges(simulator: Simulator, plan: RecurringPlan) -> None:
    """The card on file stops working: the plan's next renewal fails."""
    failing = stripe_api(
        simulator,
        "POST",
        "/v1/payment_methods",
        type="card",
        **{
            "card[number]": FAILING_CARD,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
    )
    stripe_api(
        simulator,
        "POST",
        f"/v1/payment_methods/{failing['id']}/attach",
        customer=plan.supporter.stripe_customer_id,
    )
    stripe_api(
        simulator,
        "POST",
        f"/v1/subscriptions/{plan.stripe_subscription_id}",
        default_payment_method=failing["id"],
    )


def intent_of(invoice: dict) -> str:
    (payment,) = invoice["payments"]["data"]
    return str(payment["payment"]["payment_intent"])


def renewals(plan: RecurringPlan) -> list[Donation]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Donation).where(Donation.recurring_plan_id == plan.id).order_by(Donation.id)
        )
    )
