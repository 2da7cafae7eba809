"""Every adaptation of localstripe listed in ``DIFFERENCES``, checked against the running simulator.

A test named ``test_difference_<key>`` (or ``test_difference_<key>__<detail>``) in
any module of this package covers ``<key>``; the last test here fails when a key
has no test, or a test names a key that no longer exists.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import inspect
import json
import pickle
import pkgutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import requests
import stripe

from tests.harness import ROOT, Simulator, free_port, wait_for_port

with warnings.catch_warnings():
    # localstripe registers plain-function aiohttp handlers, which aiohttp deprecates.
    warnings.simplefilter("ignore", DeprecationWarning)
    from devtools.simulator.adapt import DECLINE_CARDS, DIFFERENCES

SECRET_KEY = "sk_test_local"
PUBLISHABLE_KEY = "pk_test_local"
PREFIX = "test_difference_"


# -- helpers -------------------------------------------------------------------------


def api(base: str, method: str, path: str, **kwargs) -> requests.Response:
    """A server-side call with the secret key, as the SDK makes it (form-encoded)."""
    return requests.request(method, f"{base}{path}", auth=(SECRET_KEY, ""), timeout=10, **kwargs)


def sdk(base: str) -> stripe.StripeClient:
    """The real SDK, pointed at the simulator as the app points it."""
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": base}, max_network_retries=0)


def new_intent(base: str, amount: int = 1000, types: tuple[str, ...] = ("card",)) -> dict:
    intent = sdk(base).v1.payment_intents.create(
        {
            "amount": amount,
            "currency": "eur",
            "allowed_payment_method_types": list(types),
        }
    )
    return intent.to_dict()


def confirm(
    base: str, intent: dict, card: str = "4242424242424242", client_secret: str | None = None
) -> requests.Response:
    """Confirm as Stripe.js does: publishable key + client secret, no secret key."""
    return requests.post(
        f"{base}/v1/payment_intents/{intent['id']}/confirm",
        json={
            "key": PUBLISHABLE_KEY,
            "client_secret": client_secret or intent["client_secret"],
            "payment_method_data": {
                "type": "card",
                "card": {"number": card, "exp_month": "12", "exp_year": "34", "cvc": "123"},
            },
        },
        timeout=10,
    )


def paid_intent(base: str) -> dict:
    intent = new_intent(base)
    response = confirm(base, intent)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    return dict(response.json())


# -- state_file, loopback_only -------------------------------------------------------


def test_difference_state_file(simulator: Simulator) -> None:
    state = simulator.log.parent / "simulator.pickle"
    shared = Path("/tmp/localstripe.pickle")  # localstripe's own choice  # noqa: S108
    shared_before = shared.stat().st_mtime_ns if shared.exists() else None
    customer = api(simulator.url, "POST", "/v1/customers", data={"email": "state@example.org"})
    assert customer.status_code == 200, customer.text
    assert state.exists()
    with state.open("rb") as f:
        stored = pickle.load(f)  # noqa: S301 - the simulator's own file, in our temp folder
    assert f"customer:{customer.json()['id']}" in stored
    assert (shared.stat().st_mtime_ns if shared.exists() else None) == shared_before


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (Linux /proc)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_difference_loopback_only(simulator: Simulator) -> None:
    response = requests.get(f"http://127.0.0.1:{simulator.port}/js.stripe.com/v3/", timeout=10)
    assert response.status_code == 200
    if not Path("/proc/net/tcp").exists():
        pytest.fail("cannot list listening sockets on this system")
    # 0100007F is 127.0.0.1 in /proc/net/tcp; 00000000 would be every interface.
    assert _listening_addresses(simulator.port) == {"0100007F"}


# -- payment intents -----------------------------------------------------------------


def test_difference_allowed_payment_method_types(simulator: Simulator) -> None:
    intent = new_intent(simulator.url, types=("card",))
    assert intent["status"] == "requires_payment_method"
    assert intent["payment_method_types"] == ["card"]
    sepa_only = new_intent(simulator.url, types=("sepa_debit",))
    assert sepa_only["payment_method_types"] == ["sepa_debit"]
    # A method the intent does not allow is refused.
    refused = confirm(simulator.url, sepa_only)
    assert refused.status_code == 400
    assert "not allowed" in refused.json()["error"]["message"]


def test_difference_confirm_with_payment_method(simulator: Simulator) -> None:
    # payment_method_data, authenticated as Stripe.js is.
    intent = new_intent(simulator.url)
    done = confirm(simulator.url, intent)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "succeeded"
    assert done.json()["payment_method"].startswith("pm_")

    # An existing payment_method id.
    method = api(
        simulator.url,
        "POST",
        "/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": "4242424242424242",
            "card[exp_month]": "12",
            "card[exp_year]": "34",
            "card[cvc]": "123",
        },
    )
    assert method.status_code == 200, method.text
    intent = new_intent(simulator.url)
    by_id = requests.post(
        f"{simulator.url}/v1/payment_intents/{intent['id']}/confirm",
        json={
            "key": PUBLISHABLE_KEY,
            "client_secret": intent["client_secret"],
            "payment_method": method.json()["id"],
        },
        timeout=10,
    )
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["status"] == "succeeded"
    assert by_id.json()["payment_method"] == method.json()["id"]


def test_difference_confirm_with_payment_method__wrong_secret_is_401(simulator: Simulator) -> None:
    intent = new_intent(simulator.url)
    other = new_intent(simulator.url)
    for secret in (other["client_secret"], intent["id"] + "_secret_forged", "x"):
        refused = confirm(simulator.url, intent, client_secret=secret)
        assert refused.status_code == 401
    # A secret key in the body is no substitute for the intent's client secret.
    refused = requests.post(
        f"{simulator.url}/v1/payment_intents/{intent['id']}/confirm",
        json={
            "key": SECRET_KEY,
            "client_secret": intent["client_secret"],
            "payment_method_data": {
                "type": "card",
                "card": {"number": "4242424242424242", "exp_month": "12", "exp_year": "34"},
            },
        },
        timeout=10,
    )
    assert refused.status_code == 401
    status = sdk(simulator.url).v1.payment_intents.retrieve(intent["id"]).status
    assert status == "requires_payment_method"


# Stripe's documented codes for its decline test cards (https://docs.stripe.com/testing).
STRIPE_DECLINES = {
    "4000000000000002": ("card_declined", "generic_decline"),
    "4000000000009995": ("card_declined", "insufficient_funds"),
    "4000000000009987": ("card_declined", "lost_card"),
    "4000000000009979": ("card_declined", "stolen_card"),
    "4100000000000019": ("card_declined", "fraudulent"),
    "4000000000000069": ("expired_card", "expired_card"),
    "4000000000000127": ("incorrect_cvc", "incorrect_cvc"),
    "4000000000000119": ("processing_error", "processing_error"),
    "4000000000000341": ("card_declined", "generic_decline"),
}


@pytest.mark.parametrize(("card", "codes"), STRIPE_DECLINES.items())
def test_difference_decline_codes(simulator: Simulator, card: str, codes: tuple[str, str]) -> None:
    intent = new_intent(simulator.url)
    declined = confirm(simulator.url, intent, card=card)
    assert declined.status_code == 402, declined.text
    error = declined.json()["error"]
    assert (error["code"], error["decline_code"]) == codes
    assert error["type"] == "card_error"
    # The intent keeps the error and waits for another method, as on Stripe.
    again = sdk(simulator.url).v1.payment_intents.retrieve(intent["id"])
    assert again.status == "requires_payment_method"
    assert again.last_payment_error is not None
    assert (again.last_payment_error.code, again.last_payment_error.decline_code) == codes


def test_difference_decline_codes__table_matches_the_simulator() -> None:
    assert set(DECLINE_CARDS) == set(STRIPE_DECLINES)


def test_difference_latest_charge_is_id(simulator: Simulator) -> None:
    intent = paid_intent(simulator.url)
    assert "charges" not in intent
    assert isinstance(intent["latest_charge"], str)
    assert intent["latest_charge"].startswith("ch_")
    fetched = api(simulator.url, "GET", f"/v1/payment_intents/{intent['id']}").json()
    assert "charges" not in fetched
    assert fetched["latest_charge"] == intent["latest_charge"]
    expanded = api(
        simulator.url,
        "GET",
        f"/v1/payment_intents/{intent['id']}",
        params={"expand[]": "latest_charge"},
    ).json()
    assert expanded["latest_charge"]["id"] == intent["latest_charge"]
    assert expanded["latest_charge"]["object"] == "charge"
    # The SDK reads it as the pinned API defines it.
    via_sdk = sdk(simulator.url).v1.payment_intents.retrieve(intent["id"])
    assert via_sdk.latest_charge == intent["latest_charge"]


def test_difference_event_api_version(simulator: Simulator) -> None:
    since = int(time.time()) - 1
    intent = paid_intent(simulator.url)
    listed = api(
        simulator.url,
        "GET",
        "/v1/events",
        params={"type": "payment_intent.succeeded", "created[gte]": since, "limit": 100},
    )
    assert listed.status_code == 200, listed.text
    ours = [e for e in listed.json()["data"] if e["data"]["object"]["id"] == intent["id"]]
    assert len(ours) == 1
    event = ours[0]
    assert event["api_version"] == stripe.api_version
    assert "charges" not in event["data"]["object"]
    assert isinstance(event["data"]["object"]["latest_charge"], str)


def test_difference_payment_element_js(simulator: Simulator) -> None:
    script = requests.get(f"{simulator.url}/js.stripe.com/v3/", timeout=10)
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("application/javascript")
    for name in ("confirmPayment", "retrievePaymentIntent", '"payment"', "window.Stripe"):
        assert name in script.text, name


def test_difference_client_retrieve(simulator: Simulator) -> None:
    intent = new_intent(simulator.url)
    url = f"{simulator.url}/v1/payment_intents/{intent['id']}"
    seen = requests.get(
        url, params={"key": PUBLISHABLE_KEY, "client_secret": intent["client_secret"]}, timeout=10
    )
    assert seen.status_code == 200, seen.text
    assert (seen.json()["id"], seen.json()["status"]) == (intent["id"], "requires_payment_method")
    forged = requests.get(
        url,
        params={"key": PUBLISHABLE_KEY, "client_secret": intent["id"] + "_secret_nope"},
        timeout=10,
    )
    assert forged.status_code == 401
    no_key = requests.get(url, params={"client_secret": intent["client_secret"]}, timeout=10)
    assert no_key.status_code == 401


# -- recurring: prices, subscriptions, invoices, setup intents -----------------------


def _unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def _price(client: stripe.StripeClient, amount: int = 500, interval: str = "month") -> str:
    product = client.v1.products.create({"name": "Recurring donation (test)"})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": interval},
            "product": product.id,
            "lookup_key": _unique("test-price"),
        }
    )
    return price.id


def _card_method(client: stripe.StripeClient, card: str = "4242424242424242") -> str:
    method = client.v1.payment_methods.create(
        {
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    return method.id


def _subscribe(base: str) -> tuple[stripe.StripeClient, dict]:
    """A customer subscribed as the gateway subscribes one (price + default method)."""
    client = sdk(base)
    customer = client.v1.customers.create({"email": "monthly@example.org"})
    subscription = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": _price(client)}],
            "default_payment_method": _card_method(client),
            "off_session": True,
            "payment_behavior": "allow_incomplete",
            "expand": ["latest_invoice.payments"],
        }
    )
    return client, subscription.to_dict()


def test_difference_prices_api(simulator: Simulator) -> None:
    client = sdk(simulator.url)
    product = client.v1.products.create({"name": "Recurring donation (test)"})
    key = _unique("lookup")
    created = client.v1.prices.create(
        {
            "currency": "eur",
            "unit_amount": 1200,
            "recurring": {"interval": "year"},
            "product": product.id,
            "lookup_key": key,
        }
    )
    assert created.id.startswith("price_")
    assert (created.unit_amount, created.currency, created.lookup_key) == (1200, "eur", key)
    assert created.recurring is not None
    assert created.recurring.interval == "year"
    fetched = client.v1.prices.retrieve(created.id)
    assert (fetched.id, fetched.unit_amount, fetched.product) == (created.id, 1200, product.id)
    listed = client.v1.prices.list({"lookup_keys": [key], "limit": 1})
    assert [p.id for p in listed.data] == [created.id]
    assert client.v1.prices.list({"lookup_keys": [_unique("none")]}).data == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create(
            {
                "currency": "eur",
                "unit_amount": 1200,
                "recurring": {"interval": "year"},
                "product": product.id,
                "lookup_key": key,
            }
        )


def test_difference_subscription_params(simulator: Simulator) -> None:
    client, subscription = _subscribe(simulator.url)
    assert subscription["status"] == "active"
    method = subscription["default_payment_method"]
    assert isinstance(method, str)
    assert method.startswith("pm_")
    customer = client.v1.customers.retrieve(subscription["customer"])
    assert customer.invoice_settings is not None
    assert customer.invoice_settings.default_payment_method == method
    # A new default method can be set on the subscription, as the gateway does.
    other = _card_method(client)
    client.v1.subscriptions.update(subscription["id"], {"default_payment_method": other})
    assert client.v1.subscriptions.retrieve(subscription["id"]).default_payment_method == other


def test_difference_subscription_shape(simulator: Simulator) -> None:
    _, subscription = _subscribe(simulator.url)
    for removed in ("plan", "quantity", "current_period_start", "current_period_end"):
        assert removed not in subscription, removed
    (item,) = subscription["items"]["data"]
    assert "plan" not in item
    assert item["price"]["object"] == "price"
    assert item["price"]["id"].startswith("price_")
    assert item["subscription"] == subscription["id"]
    assert item["current_period_end"] > item["current_period_start"] > 0
    assert subscription["cancellation_details"]["reason"] is None


def test_difference_invoice_shape(simulator: Simulator) -> None:
    client, subscription = _subscribe(simulator.url)
    invoice = subscription["latest_invoice"]
    assert isinstance(invoice, dict)
    assert "payment_intent" not in invoice
    assert "subscription" not in invoice
    assert invoice["billing_reason"] == "subscription_create"
    (payment,) = invoice["payments"]["data"]
    intent_id = payment["payment"]["payment_intent"]
    assert payment["payment"]["type"] == "payment_intent"
    assert payment["status"] == "paid"
    assert payment["amount_paid"] == 500
    intent = client.v1.payment_intents.retrieve(intent_id)
    assert intent.status == "succeeded"
    assert invoice["confirmation_secret"]["client_secret"] == intent.client_secret
    again = client.v1.invoices.retrieve(invoice["id"], {"expand": ["payments"]})
    assert again.payments is not None
    assert [p.payment.payment_intent for p in again.payments.data] == [intent_id]


def _setup_intent(base: str) -> dict:
    client = sdk(base)
    customer = client.v1.customers.create({"email": "setup@example.org"})
    intent = client.v1.setup_intents.create(
        {
            "customer": customer.id,
            "usage": "off_session",
            "allowed_payment_method_types": ["card"],
        }
    )
    assert intent.payment_method_types == ["card"]
    return intent.to_dict()


def _confirm_setup(base: str, intent: dict, card: str) -> requests.Response:
    return requests.post(
        f"{base}/v1/setup_intents/{intent['id']}/confirm",
        json={
            "key": PUBLISHABLE_KEY,
            "client_secret": intent["client_secret"],
            "payment_method_data": {
                "type": "card",
                "card": {"number": card, "exp_month": "12", "exp_year": "34", "cvc": "123"},
            },
        },
        timeout=10,
    )


def test_difference_setup_intents(simulator: Simulator) -> None:
    intent = _setup_intent(simulator.url)
    done = _confirm_setup(simulator.url, intent, "4242424242424242")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "succeeded"
    method = api(simulator.url, "GET", f"/v1/payment_methods/{done.json()['payment_method']}")
    assert method.json()["customer"] == intent["customer"]
    # Read as Stripe.js reads it: publishable key + client secret, and nothing less.
    url = f"{simulator.url}/v1/setup_intents/{intent['id']}"
    seen = requests.get(
        url, params={"key": PUBLISHABLE_KEY, "client_secret": intent["client_secret"]}, timeout=10
    )
    assert seen.status_code == 200
    assert seen.json()["status"] == "succeeded"
    forged = requests.get(
        url,
        params={"key": PUBLISHABLE_KEY, "client_secret": intent["id"] + "_secret_x"},
        timeout=10,
    )
    assert forged.status_code == 401


def test_difference_setup_intents__decline_keeps_the_intent(simulator: Simulator) -> None:
    intent = _setup_intent(simulator.url)
    declined = _confirm_setup(simulator.url, intent, "4000000000000002")
    assert declined.status_code == 402
    assert declined.json()["error"]["decline_code"] == "generic_decline"
    after = sdk(simulator.url).v1.setup_intents.retrieve(intent["id"])
    assert after.status == "requires_payment_method"
    assert after.last_setup_error is not None
    assert after.last_setup_error.code == "card_declined"
    # ...and a second card can still be tried on it.
    assert _confirm_setup(simulator.url, intent, "4242424242424242").json()["status"] == "succeeded"


def test_difference_sepa_settles_later(simulator: Simulator) -> None:
    intent = new_intent(simulator.url, types=("sepa_debit",))
    confirmed = requests.post(
        f"{simulator.url}/v1/payment_intents/{intent['id']}/confirm",
        json={
            "key": PUBLISHABLE_KEY,
            "client_secret": intent["client_secret"],
            "payment_method_data": {
                "type": "sepa_debit",
                "sepa_debit": {"iban": "DE89370400440532013000"},
                "billing_details": {"name": "Ada Reader", "email": "ada@example.org"},
            },
        },
        timeout=10,
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "processing"
    client = sdk(simulator.url)
    assert client.v1.payment_intents.retrieve(intent["id"]).status == "processing"
    deadline = time.monotonic() + 10
    status = "processing"
    while status == "processing" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.v1.payment_intents.retrieve(intent["id"]).status
    assert status == "succeeded"


def test_difference_subscription_price_change(simulator: Simulator) -> None:
    client, subscription = _subscribe(simulator.url)
    (item,) = subscription["items"]["data"]
    dearer = _price(client, amount=800)
    updated = client.v1.subscriptions.update(
        subscription["id"],
        {"items": [{"id": item["id"], "price": dearer}], "proration_behavior": "none"},
    )
    assert updated.items.data[0].price.id == dearer
    assert updated.items.data[0].current_period_end == item["current_period_end"]
    assert updated.latest_invoice == subscription["latest_invoice"]["id"]
    # No "unused time" credit: the next invoice bills the new price in full.
    invoice = requests.post(
        f"{simulator.url}/_simulator/subscriptions/{subscription['id']}/renew", timeout=10
    ).json()
    assert (invoice["amount_due"], invoice["amount_paid"]) == (800, 800)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(
            subscription["id"],
            {"proration_behavior": "sometimes"},
        )


def test_difference_subscription_trial_end_period(simulator: Simulator) -> None:
    client, subscription = _subscribe(simulator.url)
    (item,) = subscription["items"]["data"]
    period_end = item["current_period_end"]
    annual = _price(client, amount=6000, interval="year")
    updated = client.v1.subscriptions.update(
        subscription["id"],
        {
            "items": [{"id": item["id"], "price": annual}],
            "proration_behavior": "none",
            "trial_end": period_end,
        },
    )
    # Nothing charged now; the period (and the next payment) still ends where it did.
    assert updated.latest_invoice == subscription["latest_invoice"]["id"]
    assert updated.items.data[0].current_period_end == period_end
    invoice = requests.post(
        f"{simulator.url}/_simulator/subscriptions/{subscription['id']}/renew", timeout=10
    ).json()
    assert invoice["amount_due"] == 6000
    renewed = client.v1.subscriptions.retrieve(subscription["id"]).items.data[0]
    assert renewed.current_period_start == period_end
    assert renewed.current_period_end - period_end >= 365 * 24 * 3600


def test_difference_renewal_helper(simulator: Simulator) -> None:
    client, subscription = _subscribe(simulator.url)
    first = subscription["latest_invoice"]["id"]
    renewed = requests.post(
        f"{simulator.url}/_simulator/subscriptions/{subscription['id']}/renew", timeout=10
    )
    assert renewed.status_code == 200, renewed.text
    invoice = renewed.json()
    assert invoice["id"] != first
    assert invoice["billing_reason"] == "subscription_cycle"
    assert client.v1.subscriptions.retrieve(subscription["id"]).latest_invoice == invoice["id"]
    (payment,) = invoice["payments"]["data"]
    intent = client.v1.payment_intents.retrieve(payment["payment"]["payment_intent"])
    assert intent.status == "succeeded"
    assert intent.amount == 500


def test_difference_invoice_payments(simulator: Simulator) -> None:
    client, subscription = _subscribe(simulator.url)
    invoice = subscription["latest_invoice"]
    intent_id = invoice["payments"]["data"][0]["payment"]["payment_intent"]
    by_intent = client.v1.invoice_payments.list(
        {"payment": {"type": "payment_intent", "payment_intent": intent_id}}
    )
    assert [(p.invoice, p.payment.payment_intent, p.status) for p in by_intent.data] == [
        (invoice["id"], intent_id, "paid")
    ]
    by_invoice = client.v1.invoice_payments.list({"invoice": invoice["id"]})
    assert [p.id for p in by_invoice.data] == [p.id for p in by_intent.data]
    other = paid_intent(simulator.url)  # a payment of its own pays no invoice
    assert (
        client.v1.invoice_payments.list(
            {"payment": {"type": "payment_intent", "payment_intent": other["id"]}}
        ).data
        == []
    )
    assert requests.get(f"{simulator.url}/v1/invoice_payments", timeout=10).status_code == 401


def test_difference_list_filters__invoices(simulator: Simulator) -> None:
    since = int(time.time())
    client, subscription = _subscribe(simulator.url)
    first = subscription["latest_invoice"]["id"]
    renewed = requests.post(
        f"{simulator.url}/_simulator/subscriptions/{subscription['id']}/renew", timeout=10
    ).json()
    listed = client.v1.invoices.list(
        {"created": {"gte": since}, "limit": 100, "expand": ["data.payments"]}
    )
    ids = [i.id for i in listed.data]
    assert ids.index(renewed["id"]) < ids.index(first)  # newest first
    mine = [i for i in listed.data if i.id in (first, renewed["id"])]
    assert all(i.payments is not None and len(i.payments.data) == 1 for i in mine)
    before = client.v1.invoices.list({"created": {"lt": since}, "limit": 100})
    assert first not in [i.id for i in before.data]
    by_subscription = client.v1.invoices.list({"subscription": subscription["id"]})
    assert {i.id for i in by_subscription.data} == {first, renewed["id"]}


# -- the ledger: fees, refunds, list filters, disputes, payouts -----------------------


def _charge_of(base: str, intent: dict) -> stripe.Charge:
    charge = sdk(base).v1.charges.retrieve(
        intent["latest_charge"], {"expand": ["balance_transaction"]}
    )
    return charge


def test_difference_balance_transaction_fees(simulator: Simulator) -> None:
    intent = paid_intent(simulator.url)  # 10.00 EUR by card
    txn = _charge_of(simulator.url, intent).balance_transaction
    assert isinstance(txn, stripe.BalanceTransaction)
    assert (txn.amount, txn.fee, txn.net) == (1000, 40, 960)  # 1.5% + 25
    assert [(d.type, d.amount) for d in txn.fee_details] == [("stripe_fee", 40)]
    for currency, amount, fee in (("usd", 1000, 59), ("gbp", 1000, 35), ("usd", 2500, 103)):
        paid = paid_intent_with(simulator.url, "4242424242424242", currency, amount)
        txn = _charge_of(simulator.url, paid).balance_transaction
        assert (txn.currency, txn.amount, txn.fee, txn.net) == (currency, amount, fee, amount - fee)


def test_difference_balance_transaction_fees__sepa_debit(simulator: Simulator) -> None:
    intent = new_intent(simulator.url, 2000, ("sepa_debit",))
    response = requests.post(
        f"{simulator.url}/v1/payment_intents/{intent['id']}/confirm",
        json={
            "key": PUBLISHABLE_KEY,
            "client_secret": intent["client_secret"],
            "payment_method_data": {
                "type": "sepa_debit",
                "sepa_debit": {"iban": "DE89370400440532013000"},
                "billing_details": {"name": "A", "email": "a@example.org"},
            },
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 10
    while sdk(simulator.url).v1.payment_intents.retrieve(intent["id"]).status == "processing":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    settled = sdk(simulator.url).v1.payment_intents.retrieve(intent["id"]).to_dict()
    txn = _charge_of(simulator.url, settled).balance_transaction
    assert (txn.amount, txn.fee, txn.net) == (2000, 35, 1965)  # EUR 0.35 a debit


def test_difference_balance_transaction_fees__international_card(simulator: Simulator) -> None:
    # 10.00 USD by Stripe's Brazilian test card: 4.4% + 30, not 2.9% + 30.
    paid = paid_intent_with(simulator.url, "4000000760000002", "usd", 1000)
    txn = _charge_of(simulator.url, paid).balance_transaction
    assert (txn.amount, txn.fee, txn.net) == (1000, 74, 926)


def test_difference_refund_shape(simulator: Simulator) -> None:
    client = sdk(simulator.url)
    intent = paid_intent(simulator.url)
    partial = client.v1.refunds.create(
        {"payment_intent": intent["id"], "amount": 300, "reason": "requested_by_customer"}
    )
    assert (partial.amount, partial.reason, partial.payment_intent) == (
        300,
        "requested_by_customer",
        intent["id"],
    )
    rest = client.v1.refunds.create({"charge": intent["latest_charge"]})
    assert rest.amount == 700  # what was left, not the whole charge again
    assert rest.payment_intent == intent["id"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create({"payment_intent": intent["id"], "amount": 1})
    other = paid_intent(simulator.url)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create({"payment_intent": other["id"], "amount": 1001})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create({"payment_intent": other["id"], "reason": "bored"})


def test_difference_list_filters(simulator: Simulator) -> None:
    client = sdk(simulator.url)
    since = int(time.time())
    first, second = paid_intent(simulator.url), paid_intent(simulator.url)
    listed = client.v1.payment_intents.list({"created": {"gte": since}, "limit": 100})
    ids = [p.id for p in listed.data]
    assert ids.index(second["id"]) < ids.index(first["id"])  # newest first
    before = client.v1.payment_intents.list({"created": {"lt": since}, "limit": 100})
    assert first["id"] not in [p.id for p in before.data]
    charges = client.v1.balance_transactions.list({"source": first["latest_charge"]})
    assert [(t.type, t.amount) for t in charges.data] == [("charge", 1000)]
    refund = client.v1.refunds.create({"payment_intent": second["id"]})
    refunds = client.v1.refunds.list({"payment_intent": second["id"]})
    assert [r.id for r in refunds.data] == [refund.id]
    refunds_since = client.v1.refunds.list({"created": {"gt": since - 1}, "limit": 100})
    assert refund.id in [r.id for r in refunds_since.data]
    by_type = client.v1.balance_transactions.list(
        {"type": "refund", "created": {"gte": since}, "limit": 100}
    )
    assert {t.type for t in by_type.data} == {"refund"}
    assert refund.id in {t.source for t in by_type.data}


def test_difference_disputes(simulator: Simulator) -> None:
    client = sdk(simulator.url)
    won, lost, accepted = (paid_intent_with(simulator.url, "4000000000000259") for _ in range(3))
    disputes = {}
    for intent in (won, lost, accepted):
        listed = client.v1.disputes.list({"payment_intent": intent["id"]})
        (dispute,) = listed.data
        assert dispute.status == "needs_response"
        assert (dispute.amount, dispute.charge) == (1000, intent["latest_charge"])
        (withdrawal,) = dispute.balance_transactions
        assert (withdrawal.amount, withdrawal.fee) == (-1000, 1500)
        disputes[intent["id"]] = dispute.id
    assert client.v1.charges.retrieve(won["latest_charge"]).disputed is True
    assert (
        client.v1.disputes.update(
            disputes[won["id"]], {"evidence": {"uncategorized_text": "winning_evidence"}}
        ).status
        == "won"
    )
    assert (
        client.v1.disputes.update(
            disputes[lost["id"]], {"evidence": {"uncategorized_text": "losing_evidence"}}
        ).status
        == "lost"
    )
    assert client.v1.disputes.close(disputes[accepted["id"]]).status == "lost"
    reinstated = client.v1.disputes.retrieve(disputes[won["id"]]).balance_transactions
    assert [t.amount for t in reinstated] == [-1000, 1000]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.disputes.close(disputes[won["id"]])
    # Ordinary cards are not disputed.
    plain = paid_intent(simulator.url)
    assert client.v1.disputes.list({"payment_intent": plain["id"]}).data == []


def paid_intent_with(base: str, card: str, currency: str = "eur", amount: int = 1000) -> dict:
    intent = sdk(base).v1.payment_intents.create(
        {"amount": amount, "currency": currency, "allowed_payment_method_types": ["card"]}
    )
    response = confirm(base, intent.to_dict(), card=card)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    return dict(response.json())


def test_difference_payouts(simulator: Simulator) -> None:
    # A currency no other test uses, so the available balance is ours alone.
    currency = "nok"
    client = sdk(simulator.url)
    gifts = [
        paid_intent_with(simulator.url, "4242424242424242", currency, amount)
        for amount in (1000, 2000)
    ]
    nets = 1000 - 59 + 2000 - 88
    failed = client.v1.payouts.create({"currency": currency, "status": "failed"})
    assert (failed.amount, failed.status) == (nets, "failed")
    assert failed.failure_balance_transaction is not None
    paid = client.v1.payouts.create({"currency": currency, "status": "paid"})
    assert (paid.amount, paid.status) == (nets, "paid")  # the failed payout's money came back
    entries = client.v1.balance_transactions.list({"payout": paid.id, "limit": 100}).data
    sources = {t.source for t in entries if t.type == "charge"}
    assert sources == {g["latest_charge"] for g in gifts}
    assert [t.amount for t in entries if t.type == "payout"] == [-nets]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payouts.create({"currency": currency})  # nothing left to pay out
    assert paid.id in [p.id for p in client.v1.payouts.list({"status": "paid", "limit": 100}).data]


# -- webhook_on_start ----------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    deliveries: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.deliveries.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    deliveries: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (_Receiver,), {"deliveries": deliveries})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", deliveries
    server.shutdown()
    server.server_close()


def test_difference_webhook_on_start(receiver, tmp_path: Path) -> None:
    url, deliveries = receiver
    secret = "whsec_on_start_" + "w" * 20
    port = free_port()
    log = (tmp_path / "simulator.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.simulator",
            "--port",
            str(port),
            "--state",
            str(tmp_path / "state.pickle"),
            "--from-scratch",
            "--webhook-url",
            url,
            "--webhook-secret",
            secret,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        intent = paid_intent(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            b"payment_intent.succeeded" in body for _, body in deliveries
        ):
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    succeeded = [
        (h, b) for h, b in deliveries if json.loads(b)["type"] == "payment_intent.succeeded"
    ]
    assert len(succeeded) == 1, [json.loads(b)["type"] for _, b in deliveries]
    headers, body = succeeded[0]
    # Signed as Stripe signs: the SDK's own verifier accepts it with our secret only.
    event = stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], secret)
    assert event["data"]["object"]["id"] == intent["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], "whsec_other")
    timestamp = headers["Stripe-Signature"].split(",")[0].removeprefix("t=")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert f"v1={expected.hexdigest()}" in headers["Stripe-Signature"]


# -- every difference has a test -----------------------------------------------------


def _tested_keys() -> set[str]:
    keys: set[str] = set()
    package = Path(__file__).parent
    for info in pkgutil.iter_modules([str(package)]):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"tests.simulator.{info.name}")
        for name, obj in vars(module).items():
            if name.startswith(PREFIX) and inspect.isfunction(obj):
                keys.add(name.removeprefix(PREFIX).split("__")[0])
    return keys


def test_every_difference_has_a_test() -> None:
    assert _tested_keys() == set(DIFFERENCES)
