"""What the rest of the app knows of a payment provider.

Views and services speak in these plain values; only
:mod:`donations.payments.stripe_gateway` knows Stripe's objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from donations.money import Money


class GatewayError(Exception):
    """The provider could not be reached or answered with an error."""


class GatewayUnavailable(GatewayError):
    """Network trouble or a provider-side fault that outlasted our retries."""


class InvalidWebhook(Exception):
    """A webhook delivery that we must not trust: bad signature, stale, malformed."""


@dataclass(frozen=True)
class PaymentSnapshot:
    """Stripe's view of one payment (a PaymentIntent), read at one moment."""

    id: str
    status: str
    amount: Money
    livemode: bool
    client_secret: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    customer_id: str | None = None
    charge_id: str | None = None
    method_type: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook delivery, reduced to what routing needs."""

    id: str
    type: str
    created: int
    livemode: bool
    object_id: str | None
    object_type: str | None


class PaymentGateway(Protocol):
    """A payment provider as the donation flow needs it."""

    publishable_key: str
    livemode: bool

    def ensure_customer(self, *, email: str, name: str, idempotency_key: str) -> str:
        """Create the provider's customer record and return its id."""
        ...

    def create_payment(
        self,
        *,
        amount: Money,
        customer_id: str | None,
        method_types: Sequence[str],
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> PaymentSnapshot:
        """Create a payment the reader then confirms in the page."""
        ...

    def retrieve_payment(self, payment_id: str) -> PaymentSnapshot:
        """Read the authoritative state of a payment."""
        ...

    def parse_webhook(self, payload: bytes, signature: str | None, now: int) -> WebhookEvent:
        """Verify a delivery's signature on the raw bytes, then parse it."""
        ...
