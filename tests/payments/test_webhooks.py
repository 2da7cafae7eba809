"""POST /webhooks/stripe: signed deliveries, forged ones, replays, races.

Deliveries are made with the signed-event injector (``tests.harness.signed_event``);
the PaymentIntents they name are real ones in the simulator, created by driving
the checkout through HTTP, because the handler re-reads each one from Stripe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time

import pytest
import requests
from sqlalchemy import func, select

from donations.db import db
from donations.mail.models import EmailMessage
from donations.payments.models import StripeEvent
from donations.supporters.models import Donation, DonationStatus
from tests.harness import WEBHOOK_SECRET, signed_event

URL = "/webhooks/stripe"


# -- helpers -------------------------------------------------------------------


def _hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', html)
    assert match, f"no hidden {name} field in the page"
    return match.group(1)


def start_donation(client, amount: str = "10") -> tuple[str, str]:
    """Drive the checkout to the payment page; return (payment page URL, client secret)."""
    page = client.get(f"/support/checkout?frequency=once&amount={amount}&currency=USD")
    assert page.status_code == 200, page.text
    form = {
        "csrf_token": _hidden(page.text, "csrf_token"),
        "attempt": _hidden(page.text, "attempt"),
        "amount": _hidden(page.text, "amount"),
        "frequency": "once",
        "currency": "USD",
        "email": "reader@example.org",
        "name": "Ada Reader",
        "country": "GB",
    }
    started = client.post("/support/checkout", data=form)
    assert started.status_code == 303, started.text
    pay_url = started.headers["Location"]
    pay = client.get(pay_url)
    assert pay.status_code == 200, pay.text
    secret = re.search(r'data-client-secret="([^"]+)"', pay.text)
    assert secret
    return pay_url, secret.group(1)


def intent_id(client_secret: str) -> str:
    return client_secret.split("_secret_")[0]


def stale_intent(pi_id: str, status: str = "requires_payment_method") -> dict:
    """The event's copy of the PaymentIntent, deliberately stale: the handler must re-fetch."""
    return {
        "id": pi_id,
        "object": "payment_intent",
        "status": status,
        "amount": 1000,
        "currency": "usd",
    }


def sign_bytes(body: bytes, timestamp: int | None = None, secret: str = WEBHOOK_SECRET) -> dict:
    """Headers signing arbitrary bytes the way Stripe does (HMAC-SHA256 of b"t." + body)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={mac}", "Content-Type": "application/json"}


def event_row(event_id: str) -> StripeEvent | None:
    db.session.expire_all()
    return db.session.scalar(select(StripeEvent).where(StripeEvent.stripe_event_id == event_id))


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def the_donation() -> Donation:
    db.session.expire_all()
    donations = db.session.scalars(select(Donation)).all()
    assert len(donations) == 1
    return donations[0]


def receipts(donation: Donation) -> int:
    db.session.expire_all()
    return db.session.scalar(
        select(func.count())
        .select_from(EmailMessage)
        .where(
            EmailMessage.template == "receipt",
            EmailMessage.dedupe_key == f"receipt:donation:{donation.id}",
        )
    )


def event_id_of(body: bytes) -> str:
    return str(json.loads(body)["id"])


# -- forged, stale and malformed deliveries ---------------------------------------


def _tamper_signature(body: bytes, headers: dict) -> tuple[bytes, dict]:
    t, v1 = headers["Stripe-Signature"].split(",")
    flipped = v1[:-1] + ("0" if v1[-1] != "0" else "1")
    return body, {**headers, "Stripe-Signature": f"{t},{flipped}"}


def _change_one_byte(body: bytes, headers: dict) -> tuple[bytes, dict]:
    assert body.count(b'"amount": 1000') == 1
    return body.replace(b'"amount": 1000', b'"amount": 9000'), headers


def _reserialise(body: bytes, headers: dict) -> tuple[bytes, dict]:
    # The same JSON, re-serialised compactly: verification must be over the raw bytes.
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert compact != body
    return compact, headers


def _drop_header(body: bytes, headers: dict) -> tuple[bytes, dict]:
    return body, {k: v for k, v in headers.items() if k != "Stripe-Signature"}


def _garbage(value: str):
    def apply(body: bytes, headers: dict) -> tuple[bytes, dict]:
        return body, {**headers, "Stripe-Signature": value}

    return apply


@pytest.mark.parametrize(
    ("forge", "secret"),
    [
        pytest.param(_tamper_signature, WEBHOOK_SECRET, id="bad-signature"),
        pytest.param(None, "whsec_someone_else_secret_xxxxxxxx", id="wrong-secret"),
        pytest.param(_change_one_byte, WEBHOOK_SECRET, id="one-byte-changed"),
        pytest.param(_reserialise, WEBHOOK_SECRET, id="reserialised-body"),
        pytest.param(_drop_header, WEBHOOK_SECRET, id="missing-header"),
        pytest.param(_garbage("garbage"), WEBHOOK_SECRET, id="garbage-header"),
        pytest.param(_garbage("t=abc,v1=zz"), WEBHOOK_SECRET, id="non-numeric-timestamp"),
        pytest.param(_garbage("v1=" + "0" * 64), WEBHOOK_SECRET, id="no-timestamp"),
        pytest.param(_garbage(f"t={int(time.time())}"), WEBHOOK_SECRET, id="no-v1"),
        pytest.param(_garbage(""), WEBHOOK_SECRET, id="empty-header"),
    ],
)
def test_forged_deliveries_are_refused_and_not_stored(
    client, ctx, simulator, forge, secret: str
) -> None:
    _, client_secret = start_donation(client)
    assert simulator.confirm(client_secret).json()["status"] == "succeeded"
    body, headers = signed_event(
        "payment_intent.succeeded", stale_intent(intent_id(client_secret)), secret=secret
    )
    if forge is not None:
        body, headers = forge(body, headers)
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 400
    assert response.text == "invalid webhook\n"
    assert event_row(event_id_of(body)) is None
    donation = the_donation()
    assert donation.status is DonationStatus.PENDING
    assert receipts(donation) == 0


def test_the_untampered_delivery_is_accepted(client, ctx, simulator) -> None:
    """The control for the forgeries above: the same event, signed properly, takes effect."""
    _, client_secret = start_donation(client)
    assert simulator.confirm(client_secret).json()["status"] == "succeeded"
    body, headers = signed_event("payment_intent.succeeded", stale_intent(intent_id(client_secret)))
    assert client.post(URL, data=body, headers=headers).status_code == 200
    assert event_row(event_id_of(body)) is not None
    assert the_donation().status is DonationStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("offset", "status"),
    [(-310, 400), (-3600, 400), (310, 400), (86400, 400), (-250, 200), (250, 200), (0, 200)],
)
def test_timestamp_tolerance_is_300_seconds_both_ways(
    client, ctx, offset: int, status: int
) -> None:
    body, headers = signed_event(
        "customer.tax_id.created",
        {"id": "txi_1", "object": "tax_id"},
        timestamp=int(time.time()) + offset,
    )
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == status
    assert response.text == ("ok\n" if status == 200 else "invalid webhook\n")
    assert (event_row(event_id_of(body)) is not None) is (status == 200)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"id": "evt_bad", "type": "payment_intent.succeeded", ', id="truncated"),
        pytest.param(b"not json at all", id="not-json"),
        pytest.param(b"[1, 2, 3]", id="array"),
        pytest.param(b'{"type": "payment_intent.succeeded", "created": 1}', id="no-id"),
        pytest.param(b'{"id": "evt_x", "created": 1, "livemode": false}', id="no-type"),
        pytest.param(b'{"id": "evt_x", "type": "ping", "created": "yesterday"}', id="bad-created"),
        pytest.param(b"", id="empty"),
    ],
)
def test_signed_but_malformed_json_is_400(client, ctx, body: bytes) -> None:
    response = client.post(URL, data=body, headers=sign_bytes(body))
    assert response.status_code == 400
    assert response.text == "invalid webhook\n"
    assert event_row("evt_bad") is None
    assert event_row("evt_x") is None


def test_signed_non_utf8_body_is_400(client, ctx) -> None:
    body = b'{"id": "evt_latin1", "type": "caf\xe9", "created": 1}'
    response = client.post(URL, data=body, headers=sign_bytes(body))
    assert response.status_code == 400
    assert response.text == "invalid webhook\n"
    assert event_row("evt_latin1") is None


def _padded_event(size: int) -> tuple[bytes, dict]:
    body, _ = signed_event(
        "customer.tax_id.created", {"id": "txi_1", "object": "tax_id", "padding": ""}
    )
    padding = "x" * (size - len(body))
    body = body.replace(b'"padding": ""', f'"padding": "{padding}"'.encode())
    assert len(body) == size
    return body, sign_bytes(body, json.loads(body)["created"])


def test_body_over_256_kib_is_413_not_500(client, ctx) -> None:
    body, headers = _padded_event(256 * 1024 + 1)
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 413
    assert event_row(event_id_of(body)) is None


def test_body_of_exactly_256_kib_is_accepted(client, ctx) -> None:
    body, headers = _padded_event(256 * 1024)
    assert client.post(URL, data=body, headers=headers).status_code == 200
    assert event_row(event_id_of(body)) is not None


def test_chunked_body_over_256_kib_is_413_not_500(live_server, ctx) -> None:
    """No Content-Length to check up front: the limit must still hold while reading."""
    body, headers = _padded_event(300 * 1024)
    chunks = (body[i : i + 16384] for i in range(0, len(body), 16384))
    response = requests.post(live_server.url + URL, data=chunks, headers=headers, timeout=10)
    assert response.status_code == 413
    assert event_row(event_id_of(body)) is None


# -- verified deliveries -------------------------------------------------------------


def test_unknown_event_type_is_stored_and_changes_nothing(client, ctx, simulator) -> None:
    _pay_url, _secret = start_donation(client)
    before = the_donation()
    body, headers = signed_event("issuing_card.created", {"id": "ic_1", "object": "issuing_card"})
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 200
    row = event_row(event_id_of(body))
    assert row is not None
    assert (row.type, row.deliveries, row.object_id) == ("issuing_card.created", 1, "ic_1")
    assert row.processed_at is not None
    assert row.last_error is None
    assert row.payload == body.decode()
    after = the_donation()
    assert after.status is DonationStatus.PENDING
    assert after.updated_at == before.updated_at
    assert count(EmailMessage) == 0


def test_livemode_event_with_test_keys_is_ignored(client, ctx, simulator) -> None:
    _, secret = start_donation(client)
    assert simulator.confirm(secret).json()["status"] == "succeeded"
    body, headers = signed_event(
        "payment_intent.succeeded", stale_intent(intent_id(secret)), livemode=True
    )
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 200
    assert "ignored" in response.text
    assert event_row(event_id_of(body)) is None
    donation = the_donation()
    assert donation.status is DonationStatus.PENDING
    assert receipts(donation) == 0


def test_payment_intent_succeeded_records_the_gift_and_one_receipt(client, ctx, simulator) -> None:
    _, secret = start_donation(client)
    assert simulator.confirm(secret).json()["status"] == "succeeded"
    assert the_donation().status is DonationStatus.PENDING
    body, headers = signed_event("payment_intent.succeeded", stale_intent(intent_id(secret)))
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 200
    donation = the_donation()
    assert donation.status is DonationStatus.SUCCEEDED
    assert donation.stripe_charge_id
    assert donation.stripe_charge_id.startswith("ch_")
    assert donation.card_last4 == "4242"
    assert receipts(donation) == 1
    assert count(EmailMessage) == 1
    row = event_row(event_id_of(body))
    assert row is not None
    assert row.processed_at is not None
    assert row.object_id == intent_id(secret)


def test_same_event_ten_times_in_a_row_has_one_effect(client, ctx, simulator) -> None:
    _, secret = start_donation(client)
    assert simulator.confirm(secret).json()["status"] == "succeeded"
    body, headers = signed_event("payment_intent.succeeded", stale_intent(intent_id(secret)))
    statuses = [client.post(URL, data=body, headers=headers).status_code for _ in range(10)]
    assert all(200 <= s < 300 for s in statuses), statuses
    rows = db.session.scalars(
        select(StripeEvent).where(StripeEvent.stripe_event_id == event_id_of(body))
    ).all()
    assert len(rows) == 1
    assert rows[0].deliveries == 10
    donation = the_donation()
    assert donation.status is DonationStatus.SUCCEEDED
    assert receipts(donation) == 1


def _all_at_once(calls: list) -> list:
    """Run each zero-argument callable in its own thread, released together."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # a failed call must fail the test, not vanish
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_same_event_twenty_times_at_once_has_one_effect(
    client, ctx, simulator, live_server
) -> None:
    _, secret = start_donation(client)
    assert simulator.confirm(secret).json()["status"] == "succeeded"
    body, headers = signed_event("payment_intent.succeeded", stale_intent(intent_id(secret)))

    def deliver() -> requests.Response:
        return requests.post(live_server.url + URL, data=body, headers=headers, timeout=30)

    responses = _all_at_once([deliver] * 20)
    statuses = [r.status_code if isinstance(r, requests.Response) else r for r in responses]
    assert statuses == [200] * 20
    rows = db.session.scalars(
        select(StripeEvent).where(StripeEvent.stripe_event_id == event_id_of(body))
    ).all()
    assert len(rows) == 1
    assert rows[0].deliveries == 20
    assert rows[0].processed_at is not None
    donation = the_donation()
    assert donation.status is DonationStatus.SUCCEEDED
    assert receipts(donation) == 1
    assert count(EmailMessage) == 1


def test_payment_failed_after_success_leaves_it_succeeded(client, ctx, simulator) -> None:
    _, secret = start_donation(client)
    assert simulator.confirm(secret).json()["status"] == "succeeded"
    pi_id = intent_id(secret)
    succeeded, h1 = signed_event("payment_intent.succeeded", stale_intent(pi_id, "succeeded"))
    # Stripe does not promise order: a failure from an earlier attempt arrives last.
    failed, h2 = signed_event(
        "payment_intent.payment_failed",
        {
            **stale_intent(pi_id),
            "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline"},
        },
    )
    assert client.post(URL, data=succeeded, headers=h1).status_code == 200
    assert client.post(URL, data=failed, headers=h2).status_code == 200
    donation = the_donation()
    assert donation.status is DonationStatus.SUCCEEDED
    assert donation.failure_code is None
    assert receipts(donation) == 1
    row = event_row(event_id_of(failed))
    assert row is not None
    assert row.processed_at is not None
    assert row.last_error is None


def test_payment_failed_before_success_ends_succeeded(client, ctx, simulator) -> None:
    """A failure event whose re-fetch already shows success is not taken at its word."""
    _, secret = start_donation(client)
    assert simulator.confirm(secret).json()["status"] == "succeeded"
    failed, headers = signed_event("payment_intent.payment_failed", stale_intent(intent_id(secret)))
    assert client.post(URL, data=failed, headers=headers).status_code == 200
    donation = the_donation()
    assert donation.status is DonationStatus.SUCCEEDED
    assert receipts(donation) == 1


@pytest.mark.parametrize("round_", range(3))
def test_thank_you_page_and_webhook_at_the_same_instant(
    client, ctx, simulator, live_server, round_: int
) -> None:
    pay_url, secret = start_donation(client)
    assert simulator.confirm(secret).json()["status"] == "succeeded"
    thanks_url = live_server.url + pay_url.replace("/pay/", "/thanks/")
    body, headers = signed_event("payment_intent.succeeded", stale_intent(intent_id(secret)))
    thanks, hook = _all_at_once(
        [
            lambda: requests.get(thanks_url, timeout=30, allow_redirects=False),
            lambda: requests.post(live_server.url + URL, data=body, headers=headers, timeout=30),
        ]
    )
    assert isinstance(thanks, requests.Response), thanks
    assert thanks.status_code == 200
    assert isinstance(hook, requests.Response), hook
    assert hook.status_code == 200
    assert count(Donation) == 1
    donation = the_donation()
    assert donation.status is DonationStatus.SUCCEEDED
    assert receipts(donation) == 1


def test_payment_failed_for_a_declined_card_records_the_code(client, ctx, simulator) -> None:
    _, secret = start_donation(client)
    declined = simulator.confirm(secret, card="4000000000000002")
    assert declined.status_code == 402
    body, headers = signed_event("payment_intent.payment_failed", stale_intent(intent_id(secret)))
    assert client.post(URL, data=body, headers=headers).status_code == 200
    donation = the_donation()
    assert donation.status is DonationStatus.FAILED
    assert donation.failure_code == "generic_decline"
    assert receipts(donation) == 0


def test_event_for_an_unknown_payment_is_acknowledged(client, ctx, simulator) -> None:
    """A real PaymentIntent that matches no donation (made elsewhere): stored, 2xx, no effect."""
    created = requests.post(
        f"{simulator.url}/v1/payment_intents",
        data={"amount": 500, "currency": "usd"},
        auth=("sk_test_local", ""),
        timeout=10,
    )
    assert created.status_code == 200, created.text
    body, headers = signed_event("payment_intent.succeeded", stale_intent(created.json()["id"]))
    assert client.post(URL, data=body, headers=headers).status_code == 200
    row = event_row(event_id_of(body))
    assert row is not None
    assert row.processed_at is not None
    assert count(Donation) == 0


# -- CSRF -----------------------------------------------------------------------------


# Every view exempt from CSRF, with the reason it is safe. Adding an exemption means
# adding it here, on purpose.
CSRF_EXEMPT = {
    # Stripe holds no session or token; each delivery is signed (HMAC over the raw body).
    "donations.payments.views.stripe_webhook": URL,
    # RFC 8058 one-click unsubscribe: mail providers POST it without cookies;
    # the signed token in the URL is the authority.
    "donations.reminders.views.unsubscribe_one_click": "/reminders/unsubscribe/token",
    # The embed's beacon from article pages on other origins: no cookies, no session;
    # it can only add one to an anonymous daily counter (tests/embed/test_events.py).
    "donations.embed.views.events": "/embed/events",
}


def test_only_the_expected_views_are_exempt_from_csrf(app) -> None:
    csrf = app.extensions["csrf"]
    assert csrf._exempt_views == set(CSRF_EXEMPT)
    assert csrf._exempt_blueprints == set()
    assert app.config["WTF_CSRF_ENABLED"] is True
    assert app.config["WTF_CSRF_CHECK_DEFAULT"] is True
    # Each exempt name is the view actually serving its URL.
    adapter = app.url_map.bind("localhost")
    for name, url in CSRF_EXEMPT.items():
        endpoint, _ = adapter.match(url, method="POST")
        view = app.view_functions[endpoint]
        assert f"{view.__module__}.{view.__name__}" == name


def test_webhook_reaches_its_view_without_a_csrf_token(client) -> None:
    response = client.post(URL, data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.text == "invalid webhook\n"  # the signature check, not a CSRF refusal


def test_other_posts_still_need_a_csrf_token(client) -> None:
    response = client.post("/support/checkout", data={"amount": "10"})
    assert response.status_code == 400
    assert "CSRF" in response.text or "expired" in response.text.lower()
