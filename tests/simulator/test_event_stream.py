"""The simulator sends Stripe's event stream (``devtools/simulator/events.py``).

A simulator of its own delivers every event to a recording endpoint, which can
be told to fail; each test drives one flow through the SDK and checks the
events Stripe would send for it, verified with the SDK's own signature check.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
import stripe

from tests.harness import ROOT, free_port, wait_for_port

SECRET = "whsec_event_stream_" + "e" * 16
SECRET_KEY = "sk_test_local"


@dataclass
class Recorder:
    """A webhook endpoint that keeps every delivery and fails the first ``fail`` per event."""

    url: str = ""
    deliveries: list[tuple[float, dict, str]] = field(default_factory=list)
    fail: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, object_id: str) -> list[dict]:
        """Each event about ``object_id``, once, in the order first received."""
        found: dict[str, dict] = {}
        for _, event, _ in list(self.deliveries):
            obj = event["data"]["object"]
            if object_id in (obj.get("id"), obj.get("charge"), obj.get("payment_intent")):
                found.setdefault(event["id"], event)
        return list(found.values())

    def wait_for(self, object_id: str, *types: str, timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.events(object_id)
            if set(types) <= {e["type"] for e in got}:
                return got
            time.sleep(0.05)
        pytest.fail(f"{types} not all sent for {object_id}: {[e['type'] for e in got]}")


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            # The SDK's verifier, as the app verifies (raises on a bad signature).
            event = stripe.Webhook.construct_event(
                body.decode(), self.headers["Stripe-Signature"], SECRET
            )
            with rec.lock:
                tries = rec.seen[event["id"]] = rec.seen.get(event["id"], 0) + 1
                rec.deliveries.append(
                    (time.monotonic(), json.loads(body), self.headers["Stripe-Signature"])
                )
            self.send_response(500 if tries <= rec.fail else 200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def base(recorder: Recorder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("event-stream")
    port = free_port()
    log = (folder / "simulator.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.simulator",
            "--port",
            str(port),
            "--state",
            str(folder / "state.pickle"),
            "--from-scratch",
            "--webhook-url",
            recorder.url,
            "--webhook-secret",
            SECRET,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "SIMULATOR_WEBHOOK_RETRY_SECONDS": "0.5,1",
            "SIMULATOR_REFUND_FAIL_SECONDS": "0.5",
        },
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(autouse=True)
def _deliver_at_once(recorder: Recorder) -> None:
    recorder.fail = 0


def sdk(base: str) -> stripe.StripeClient:
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": base}, max_network_retries=0)


def paid_intent(base: str, card: str = "4242424242424242") -> stripe.PaymentIntent:
    client = sdk(base)
    intent = client.v1.payment_intents.create(
        {"amount": 2000, "currency": "usd", "allowed_payment_method_types": ["card"]}
    )
    response = confirm(base, intent, card)
    assert response.json()["status"] == "succeeded", response.text
    return client.v1.payment_intents.retrieve(intent.id)


def confirm(base: str, intent: stripe.PaymentIntent, card: str) -> requests.Response:
    return requests.post(
        f"{base}/v1/payment_intents/{intent.id}/confirm",
        json={
            "key": "pk_test_local",
            "client_secret": intent.client_secret,
            "payment_method_data": {
                "type": "card",
                "card": {"number": card, "exp_month": "12", "exp_year": "34", "cvc": "123"},
            },
        },
        timeout=10,
    )


def subscribed(base: str) -> tuple[stripe.StripeClient, stripe.Subscription]:
    client = sdk(base)
    product = client.v1.products.create({"name": "Recurring donation"})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 500,
            "recurring": {"interval": "month"},
            "product": product.id,
            "lookup_key": f"event-stream-{time.monotonic_ns()}",
        }
    )
    customer = client.v1.customers.create({"email": "monthly@example.org"})
    method = card_method(client, "4242424242424242")
    subscription = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": price.id}],
            "default_payment_method": method,
            "off_session": True,
            "payment_behavior": "allow_incomplete",
        }
    )
    return client, subscription


def card_method(client: stripe.StripeClient, card: str) -> str:
    return client.v1.payment_methods.create(
        {
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    ).id


def renew(base: str, subscription_id: str) -> dict:
    response = requests.post(f"{base}/_simulator/subscriptions/{subscription_id}/renew", timeout=10)
    response.raise_for_status()
    return dict(response.json())


def types_of(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


# -- refunds --------------------------------------------------------------------------


def test_difference_refund_events(base: str, recorder: Recorder) -> None:
    intent = paid_intent(base)
    refund = sdk(base).v1.refunds.create({"payment_intent": intent.id, "amount": 500})
    events = recorder.wait_for(refund.id, "refund.created")
    created = next(e for e in events if e["type"] == "refund.created")
    assert created["data"]["object"]["amount"] == 500
    charge_events = recorder.wait_for(str(intent.latest_charge), "charge.refunded")
    refunded = next(e for e in charge_events if e["type"] == "charge.refunded")
    assert refunded["data"]["object"]["amount_refunded"] == 500

    sdk(base).v1.refunds.update(refund.id, {"metadata": {"note": "asked by phone"}})
    updated = recorder.wait_for(refund.id, "refund.updated", "charge.refund.updated")
    assert {
        e["data"]["object"]["metadata"]["note"] for e in updated if e["type"] != "refund.created"
    } == {"asked by phone"}


def test_difference_refund_events__a_failing_refund(base: str, recorder: Recorder) -> None:
    client = sdk(base)
    intent = paid_intent(base, card="4000000000005126")
    refund = client.v1.refunds.create({"payment_intent": intent.id})
    assert refund.status == "succeeded"
    events = recorder.wait_for(
        refund.id, "refund.created", "refund.updated", "refund.failed", "charge.refund.updated"
    )
    failed = next(e for e in events if e["type"] == "refund.failed")["data"]["object"]
    assert (failed["status"], failed["failure_reason"]) == ("failed", "expired_or_canceled_card")
    assert client.v1.refunds.retrieve(refund.id).status == "failed"
    assert client.v1.charges.retrieve(str(intent.latest_charge)).amount_refunded == 0


# -- renewals ---------------------------------------------------------------------------


def test_difference_renewal_events(base: str, recorder: Recorder) -> None:
    _, subscription = subscribed(base)
    first = str(subscription.latest_invoice)
    assert "invoice.paid" in types_of(recorder.wait_for(first, "invoice.paid"))
    invoice = renew(base, subscription.id)
    assert invoice["status"] == "paid"
    assert "invoice.paid" in types_of(recorder.wait_for(invoice["id"], "invoice.paid"))
    updates = [
        e
        for e in recorder.wait_for(subscription.id, "customer.subscription.updated")
        if e["type"] == "customer.subscription.updated"
    ]
    assert len(updates) == 1
    assert updates[0]["data"]["object"]["latest_invoice"] == invoice["id"]
    assert updates[0]["data"]["previous_attributes"] == {"latest_invoice": first}


def test_difference_upcoming_invoice_event(base: str, recorder: Recorder) -> None:
    client, subscription = subscribed(base)
    response = requests.post(
        f"{base}/_simulator/subscriptions/{subscription.id}/upcoming", timeout=10
    )
    assert response.status_code == 200, response.text
    period_end = client.v1.subscriptions.retrieve(subscription.id).items.data[0].current_period_end
    deadline = time.monotonic() + 15
    found: list[dict] = []
    while not found and time.monotonic() < deadline:
        found = [
            event
            for _, event, _ in list(recorder.deliveries)
            if event["type"] == "invoice.upcoming"
            and event["data"]["object"]["parent"]["subscription_details"]["subscription"]
            == subscription.id
        ]
        time.sleep(0.05)
    assert len(found) == 1, found
    preview = found[0]["data"]["object"]
    assert "id" not in preview  # a preview: nothing to retrieve but the subscription
    assert (preview["amount_due"], preview["currency"]) == (500, "usd")
    assert preview["next_payment_attempt"] == period_end
    # The SDK reads it as an Invoice of the pinned API version.
    invoice = stripe.Invoice.construct_from(preview, None)
    assert invoice.parent.subscription_details.subscription == subscription.id


def test_difference_failed_renewal_events(base: str, recorder: Recorder) -> None:
    client, subscription = subscribed(base)
    failing = card_method(client, "4000000000000341")
    client.v1.payment_methods.attach(failing, {"customer": str(subscription.customer)})
    client.v1.subscriptions.update(subscription.id, {"default_payment_method": failing})
    invoice = renew(base, subscription.id)
    assert invoice["status"] == "open"
    intent_id = invoice["payments"]["data"][0]["payment"]["payment_intent"]

    assert "invoice.payment_failed" in types_of(
        recorder.wait_for(invoice["id"], "invoice.payment_failed")
    )
    failed = recorder.wait_for(intent_id, "payment_intent.payment_failed")
    intent = next(e for e in failed if e["type"] == "payment_intent.payment_failed")
    assert intent["data"]["object"]["last_payment_error"]["decline_code"] == "generic_decline"
    update = next(
        e
        for e in recorder.wait_for(subscription.id, "customer.subscription.updated")
        if e["type"] == "customer.subscription.updated"
    )
    assert update["data"]["object"]["status"] == "past_due"
    assert update["data"]["previous_attributes"]["status"] == "active"

    # Paid again with a working card: invoice.paid, and the plan is active again.
    client.v1.subscriptions.update(
        subscription.id, {"default_payment_method": card_method(client, "4242424242424242")}
    )
    client.v1.customers.update(
        str(subscription.customer),
        {
            "invoice_settings": {
                "default_payment_method": client.v1.subscriptions.retrieve(
                    subscription.id
                ).default_payment_method
            }
        },
    )
    assert client.v1.invoices.pay(invoice["id"]).status == "paid"
    recorder.wait_for(invoice["id"], "invoice.paid")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        updates = [
            e
            for e in recorder.events(subscription.id)
            if e["type"] == "customer.subscription.updated"
        ]
        if any(e["data"]["object"]["status"] == "active" for e in updates):
            break
        time.sleep(0.05)
    assert [e["data"]["object"]["status"] for e in updates] == ["past_due", "active"]


# -- 3D Secure ----------------------------------------------------------------------------


def test_difference_authentication_failure_event(base: str, recorder: Recorder) -> None:
    intent = sdk(base).v1.payment_intents.create(
        {"amount": 1500, "currency": "usd", "allowed_payment_method_types": ["card"]}
    )
    assert confirm(base, intent, "4000002500003155").json()["status"] == "requires_action"
    failed = requests.post(
        f"{base}/v1/payment_intents/{intent.id}/_authenticate",
        json={"key": "pk_test_local", "client_secret": intent.client_secret, "success": False},
        timeout=10,
    )
    assert failed.json()["status"] == "requires_payment_method"
    events = recorder.wait_for(intent.id, "payment_intent.payment_failed")
    sent = next(e for e in events if e["type"] == "payment_intent.payment_failed")["data"]["object"]
    assert sent["status"] == "requires_payment_method"
    assert sent["last_payment_error"]["code"] == "payment_intent_authentication_failure"


# -- redelivery ---------------------------------------------------------------------------


def test_difference_webhook_redelivery(base: str, recorder: Recorder) -> None:
    recorder.fail = 2  # the endpoint answers 500 to the first two tries of each event
    intent = paid_intent(base)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        tries = [
            (at, signature)
            for at, e, signature in list(recorder.deliveries)
            if e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == intent.id
        ]
        if len(tries) >= 3:
            break
        time.sleep(0.05)
    assert len(tries) == 3
    # Tries follow the configured (shortened) backoff, 0.5 s then 1 s apart.
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(tries)]
    assert gaps[0] >= 0.4, gaps
    assert gaps[1] >= 0.9, gaps
    time.sleep(1.5)  # delivered: no fourth try
    assert recorder.seen[_event_id(recorder, intent.id)] == 3

    listed = requests.get(
        f"{base}/_simulator/deliveries",
        params={"event": _event_id(recorder, intent.id)},
        timeout=10,
    ).json()["data"]
    assert [d["status"] for d in listed] == [500, 500, 200]


def _event_id(recorder: Recorder, intent_id: str) -> str:
    return next(
        e["id"] for e in recorder.events(intent_id) if e["type"] == "payment_intent.succeeded"
    )


def test_difference_webhook_redelivery__unreachable_endpoint_gives_up(
    base: str, recorder: Recorder
) -> None:
    # Register a second endpoint nobody listens on: every try fails, then it stops.
    dead = f"http://127.0.0.1:{free_port()}/hook"
    requests.post(
        f"{base}/_config/webhooks/dead", data={"url": dead, "secret": SECRET}, timeout=10
    ).raise_for_status()
    try:
        intent = paid_intent(base)
        recorder.wait_for(intent.id, "payment_intent.succeeded")
        time.sleep(3)
        deliveries = requests.get(
            f"{base}/_simulator/deliveries",
            params={"event": _event_id(recorder, intent.id)},
            timeout=10,
        ).json()["data"]
        tries = [d for d in deliveries if d["endpoint"] == "dead"]
        assert len(tries) == 3  # the first try and the two retries configured
        assert all(d["status"] is None and d["error"] for d in tries)
    finally:
        requests.post(
            f"{base}/_config/webhooks/dead",
            data={"url": dead, "secret": SECRET, "events": "none.at_all"},
            timeout=10,
        )
    assert intent.status == "succeeded"
