"""Simulator adaptations for Stripe's event stream: the events localstripe never sends.

localstripe (1.15.10) sends no ``charge.refunded`` or ``refund.*`` event,
nothing when a renewal fails or 3D Secure fails, no ``invoice.paid``, no
``invoice.upcoming`` and no ``customer.subscription.updated``, and delivers
each event exactly once. Each
patch below adds one of those flows as Stripe sends it
(https://docs.stripe.com/billing/subscriptions/webhooks,
https://docs.stripe.com/refunds#refund-events); each is named in
``adapt.DIFFERENCES`` and checked by ``tests/simulator/test_event_stream.py``.

Events are built a moment after the change that causes them (``_soon``), so
their payload shows the object's final state, as Stripe's do.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from typing import Any

import aiohttp
from aiohttp import web
from localstripe import resources, server, webhooks

log = logging.getLogger(__name__)

# Stripe's test card whose refunds succeed, then fail some time later.
# https://docs.stripe.com/testing#refunds
FAILING_REFUND_CARD = "4000000000005126"

# Stripe redelivers a failed delivery for up to three days with exponential
# backoff (https://docs.stripe.com/webhooks#retries); the simulator keeps the
# shape on a shortened clock. Seconds between tries, "" for no redelivery.
DEFAULT_RETRY_SECONDS = "2,4,8,16"


def retry_schedule() -> list[float]:
    raw = os.environ.get("SIMULATOR_WEBHOOK_RETRY_SECONDS", DEFAULT_RETRY_SECONDS)
    return [float(part) for part in raw.split(",") if part.strip()]


def _soon(type: str, obj: Any, previous: dict[str, Any] | None = None) -> None:
    """Send ``type`` for ``obj`` once the current change has finished."""

    def send() -> None:
        event = resources.Event(type, obj)
        if previous:
            event.data["previous_attributes"] = previous
        webhooks.schedule_webhook(event)

    asyncio.get_event_loop().call_soon(send)


# -- refunds ---------------------------------------------------------------------


def _card_number(payment_method_id: str | None) -> str | None:
    if not payment_method_id:
        return None
    method = resources.store.get("payment_method:" + payment_method_id)
    return getattr(method, "_card_number", None)


def patch_refund_events() -> None:
    original_init = resources.Refund.__init__
    delay = float(os.environ.get("SIMULATOR_REFUND_FAIL_SECONDS", "1"))

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.failure_reason = None
        charge = resources.Charge._api_retrieve(self.charge)
        _soon("refund.created", self)
        _soon("charge.refunded", charge)
        if _card_number(charge.payment_method) == FAILING_REFUND_CARD:
            asyncio.get_event_loop().call_later(delay, _fail_refund, self)

    resources.Refund.__init__ = __init__

    original_update = resources.Refund._update

    def _update(self: Any, **data: Any) -> None:
        original_update(self, **data)
        _soon("refund.updated", self)
        _soon("charge.refund.updated", self)

    resources.Refund._update = _update


def _fail_refund(refund: Any) -> None:
    """The refund returns to the balance, as a refund to a closed card account does."""
    from devtools.simulator.ledger import _new_transaction

    refund.status = "failed"
    refund.failure_reason = "expired_or_canceled_card"
    returned = _new_transaction(
        amount=refund.amount, currency=refund.currency, type="refund_failure", source=refund.id
    )
    refund.failure_balance_transaction = returned.id
    resources.store.dump_to_disk()
    for type in ("refund.updated", "refund.failed", "charge.refund.updated"):
        _soon(type, refund)


def patch_amount_refunded() -> None:
    # localstripe sums every refund of a charge; a failed one no longer counts.
    resources.Charge.amount_refunded = property(
        lambda self: sum(r.amount for r in self.refunds._list if r.status != "failed")
    )


# -- renewals ----------------------------------------------------------------------


def _subscription(invoice: Any) -> Any:
    if not invoice.subscription:
        return None
    return resources.store.get("subscription:" + invoice.subscription)


def patch_renewal_events() -> None:
    sub_cls = resources.Subscription
    original_init = sub_cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # customer.subscription.created tells of the first invoice's outcome.
        self._announced = False
        original_init(self, *args, **kwargs)
        self._announced = True

    sub_cls.__init__ = __init__

    original_create_invoice = sub_cls._create_invoice

    def _create_invoice(self: Any) -> None:
        previous_invoice, previous_status = self.latest_invoice, self.status
        original_create_invoice(self)
        if previous_invoice is None or not getattr(self, "_announced", True):
            return
        changed: dict[str, Any] = {"latest_invoice": previous_invoice}
        if self.status != previous_status:
            changed["status"] = previous_status
        _soon("customer.subscription.updated", self, changed)

    sub_cls._create_invoice = _create_invoice

    invoice_cls = resources.Invoice
    original_success = invoice_cls._on_payment_success

    def _on_payment_success(self: Any) -> None:
        subscription = _subscription(self)
        before = subscription.status if subscription is not None else None
        original_success(self)
        _soon("invoice.paid", self)
        if (
            subscription is not None
            and getattr(subscription, "_announced", True)
            and subscription.status != before
        ):
            _soon("customer.subscription.updated", subscription, {"status": before})

    invoice_cls._on_payment_success = _on_payment_success


def patch_invoice_payment_failure_events() -> None:
    """An invoice's charge that fails at once: localstripe confirms it with a no-op."""
    original_confirm = resources.PaymentIntent._confirm

    def _confirm(self: Any, on_failure_now: Any) -> None:
        if self.invoice:
            inner = on_failure_now
            invoice = resources.Invoice._api_retrieve(self.invoice)

            def on_failure() -> None:
                _soon("payment_intent.payment_failed", self)
                _soon("invoice.payment_failed", invoice)
                inner()

            on_failure_now = on_failure
        original_confirm(self, on_failure_now=on_failure_now)

    resources.PaymentIntent._confirm = _confirm


# -- 3D Secure failure ------------------------------------------------------------------


@web.middleware
async def authentication_failure(request: web.Request, handler: Any) -> web.StreamResponse:
    """payment_intent.payment_failed after a failed 3D Secure challenge.

    localstripe's ``_authenticate`` route holds its own reference to the
    function, so the event is added around the route instead of inside it.
    """
    response = await handler(request)
    parts = request.path.strip("/").split("/")
    if (
        request.method == "POST"
        and parts[:2] == ["v1", "payment_intents"]
        and parts[3:] == ["_authenticate"]
        and response.status == 200
    ):
        intent = resources.store.get("payment_intent:" + parts[2])
        if intent is not None and intent._authentication_failed:
            _soon("payment_intent.payment_failed", intent)
    return response


# -- redelivery ------------------------------------------------------------------------

# Every delivery attempt, oldest first (GET /_simulator/deliveries).
DELIVERIES: list[dict[str, Any]] = []
MAX_DELIVERIES_KEPT = 5000


def _signature(secret: str, timestamp: int, payload: bytes) -> str:
    mac = hmac.new(secret.encode(), b"%d.%s" % (timestamp, payload), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


async def _deliver(event: Any, endpoint_id: str, endpoint: Any, payload: bytes) -> bool:
    # Each attempt is signed when it is made, as Stripe signs retries.
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": _signature(endpoint.secret, timestamp, payload),
    }
    record: dict[str, Any] = {
        "event": event.id,
        "type": event.type,
        "endpoint": endpoint_id,
        "attempted_at": timestamp,
        "status": None,
        "error": None,
    }
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(endpoint.url, data=payload, headers=headers) as response,
        ):
            record["status"] = response.status
    except (aiohttp.ClientError, OSError) as exc:
        record["error"] = str(exc) or type(exc).__name__
    DELIVERIES.append(record)
    del DELIVERIES[:-MAX_DELIVERIES_KEPT]
    delivered = record["status"] is not None and 200 <= record["status"] < 300
    log.info("webhook %s to %s: %s", event.type, endpoint_id, record["status"] or record["error"])
    return delivered


async def _send_with_retries(event: Any) -> None:
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode()
    await asyncio.sleep(1)  # as localstripe: about a second after the event
    endpoints = [
        (endpoint_id, endpoint)
        for endpoint_id, endpoint in list(webhooks._webhooks.items())
        if endpoint.events is None or event.type in endpoint.events
    ]
    await asyncio.gather(*(_retrying(event, i, e, payload) for i, e in endpoints))


async def _retrying(event: Any, endpoint_id: str, endpoint: Any, payload: bytes) -> None:
    if await _deliver(event, endpoint_id, endpoint, payload):
        return
    for delay in retry_schedule():
        await asyncio.sleep(delay)
        if webhooks._webhooks.get(endpoint_id) is not endpoint:
            return  # the endpoint was replaced meanwhile
        if await _deliver(event, endpoint_id, endpoint, payload):
            return


def patch_redelivery() -> None:
    webhooks._send_webhook = _send_with_retries


async def list_deliveries(request: web.Request) -> web.Response:
    wanted = request.query.get("event")
    found = [d for d in DELIVERIES if wanted is None or d["event"] == wanted]
    return server.json_response({"object": "list", "data": found})


# -- upcoming renewals --------------------------------------------------------------


class _Preview:
    """An object for an event that has no resource of its own (an upcoming invoice)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def _export(self, expand: list[str] | None = None) -> dict[str, Any]:
        return self._data


def upcoming_invoice(subscription: Any) -> dict[str, Any]:
    """The preview Stripe puts in ``invoice.upcoming``: no id, in the pinned API's shape.

    https://docs.stripe.com/api/invoices/create_preview (the subscription under
    ``parent.subscription_details``, the next payment at the period's end).
    """
    item = subscription.items._list[0]
    period = item._current_period()
    amount = (item.plan.amount or 0) * (getattr(item, "quantity", 1) or 1)
    return {
        "object": "invoice",
        "livemode": False,
        "status": "draft",
        "billing_reason": "upcoming",
        "customer": subscription.customer,
        "currency": item.plan.currency,
        "amount_due": amount,
        "amount_paid": 0,
        "attempt_count": 0,
        "period_start": period["start"],
        "period_end": period["end"],
        "next_payment_attempt": period["end"],
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": subscription.id, "metadata": {}},
        },
    }


async def send_upcoming(request: web.Request, subscription_id: str) -> web.Response:
    """``invoice.upcoming`` now (tests only: Stripe sends it days before, on its own clock)."""
    subscription = resources.Subscription._api_retrieve(subscription_id)
    preview = upcoming_invoice(subscription)
    _soon("invoice.upcoming", _Preview(preview))
    return server.json_response(preview)


async def route(request: web.Request) -> web.StreamResponse | None:
    """The event stream's own routes, or None."""
    if request.method == "GET" and request.path.rstrip("/") == "/_simulator/deliveries":
        return await list_deliveries(request)
    parts = request.path.strip("/").split("/")
    if (
        request.method == "POST"
        and parts[:2] == ["_simulator", "subscriptions"]
        and parts[3:] == ["upcoming"]
        and len(parts) == 4
    ):
        return await send_upcoming(request, parts[2])
    return None


def apply(app: web.Application) -> None:
    patch_refund_events()
    patch_amount_refunded()
    patch_renewal_events()
    patch_invoice_payment_failure_events()
    patch_redelivery()
    if authentication_failure not in app.middlewares:
        app.middlewares.append(authentication_failure)
