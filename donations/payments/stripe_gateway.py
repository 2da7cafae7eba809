"""The Stripe gateway: the only module that imports ``stripe``.

It uses the API version pinned by the installed SDK and is type-checked with
``mypy --strict`` against the SDK's own types, so the code follows the current
API even where the local simulator still returns older shapes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import stripe

from donations.money import Money
from donations.payments.gateway import (
    GatewayError,
    GatewayUnavailable,
    InvalidWebhook,
    PaymentSnapshot,
    WebhookEvent,
)

log = logging.getLogger(__name__)

# Stripe's own default; we also refuse timestamps this far in the future,
# which the SDK does not check.
# https://docs.stripe.com/webhooks#replay-attacks
WEBHOOK_TOLERANCE_SECONDS = 300
# The SDK retries connection errors, 409/429 and retryable 5xx with
# exponential backoff, re-sending the same idempotency key each time.
# https://docs.stripe.com/error-low-level#idempotency
NETWORK_RETRIES = 3

API_VERSION: str = stripe.api_version


class StripeGateway:
    def __init__(
        self,
        *,
        secret_key: str,
        publishable_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        http_timeout: float = 20.0,
    ) -> None:
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=http_timeout)
            if _has_requests()
            else None,
        )
        self._webhook_secret = webhook_secret
        self.publishable_key = publishable_key
        self.livemode = secret_key.startswith(("sk_live_", "rk_live_"))

    # -- customers -------------------------------------------------------

    def ensure_customer(self, *, email: str, name: str, idempotency_key: str) -> str:
        params: stripe.params.CustomerCreateParams = {"email": email}
        if name:
            params["name"] = name
        with _translated_errors():
            customer = self._client.v1.customers.create(
                params, {"idempotency_key": idempotency_key}
            )
        return customer.id

    # -- payments --------------------------------------------------------

    def create_payment(
        self,
        *,
        amount: Money,
        customer_id: str | None,
        method_types: Sequence[str],
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> PaymentSnapshot:
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": amount.amount,
            "currency": amount.currency.lower(),
            # Explicit types rather than automatic_payment_methods: the ask
            # offers only the methods valid for this currency and frequency.
            "allowed_payment_method_types": list(method_types),
            "metadata": dict(metadata),
        }
        if customer_id:
            params["customer"] = customer_id
        with _translated_errors():
            intent = self._client.v1.payment_intents.create(
                params, {"idempotency_key": idempotency_key}
            )
        return _snapshot(intent)

    def retrieve_payment(self, payment_id: str) -> PaymentSnapshot:
        with _translated_errors():
            intent = self._client.v1.payment_intents.retrieve(
                payment_id, {"expand": ["payment_method"]}
            )
        return _snapshot(intent)

    # -- webhooks --------------------------------------------------------

    def parse_webhook(self, payload: bytes, signature: str | None, now: int) -> WebhookEvent:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidWebhook("body is not UTF-8") from exc
        if not signature:
            raise InvalidWebhook("no Stripe-Signature header")
        timestamp = _signature_timestamp(signature)
        if timestamp > now + WEBHOOK_TOLERANCE_SECONDS:
            raise InvalidWebhook("timestamp is in the future")
        try:
            stripe.WebhookSignature.verify_header(
                text, signature, self._webhook_secret, WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhook(str(exc).split(".")[0]) from exc
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise InvalidWebhook("body is not JSON") from exc
        return _webhook_event(body)


def _has_requests() -> bool:
    try:
        import requests  # noqa: F401
    except ImportError:  # pragma: no cover - requests ships with our deps
        return False
    return True


def _signature_timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    raise InvalidWebhook("no timestamp in Stripe-Signature")


def _webhook_event(body: Any) -> WebhookEvent:
    if not isinstance(body, dict):
        raise InvalidWebhook("event is not an object")
    event_id, event_type, created = body.get("id"), body.get("type"), body.get("created")
    if not isinstance(event_id, str) or not event_id.startswith("evt_"):
        raise InvalidWebhook("event has no id")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidWebhook("event has no type")
    if not isinstance(created, int):
        raise InvalidWebhook("event has no creation time")
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    object_id = obj.get("id") if isinstance(obj, dict) else None
    object_type = obj.get("object") if isinstance(obj, dict) else None
    return WebhookEvent(
        id=event_id,
        type=event_type,
        created=created,
        livemode=bool(body.get("livemode", False)),
        object_id=object_id if isinstance(object_id, str) else None,
        object_type=object_type if isinstance(object_type, str) else None,
    )


def _snapshot(intent: stripe.PaymentIntent) -> PaymentSnapshot:
    method = intent.payment_method
    method_type = brand = last4 = None
    if isinstance(method, stripe.PaymentMethod):
        method_type = method.type
        if method.card is not None:
            brand, last4 = method.card.brand, method.card.last4
        elif method.sepa_debit is not None:
            last4 = method.sepa_debit.last4
    charge = intent.latest_charge
    charge_id = charge.id if isinstance(charge, stripe.Charge) else charge
    error = intent.last_payment_error
    customer = intent.customer
    return PaymentSnapshot(
        id=intent.id,
        status=intent.status,
        amount=Money(intent.amount, intent.currency.upper()),
        livemode=intent.livemode,
        client_secret=intent.client_secret,
        metadata={str(k): str(v) for k, v in intent.metadata.to_dict().items()},
        customer_id=customer.id if isinstance(customer, stripe.Customer) else customer,
        charge_id=charge_id,
        method_type=method_type,
        card_brand=brand,
        card_last4=last4,
        failure_code=error.code if error is not None else None,
        decline_code=error.decline_code if error is not None else None,
    )


class _translated_errors:
    """Turn the SDK's exceptions into the gateway's own."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
            raise GatewayUnavailable(str(exc)) from exc
        if isinstance(exc, stripe.APIError):
            raise GatewayUnavailable(str(exc)) from exc
        if isinstance(exc, stripe.StripeError):
            raise GatewayError(f"{type(exc).__name__}: {exc.user_message or exc}") from exc


def sign_webhook_payload(payload: str, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header value for ``payload`` (for local tooling)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"
