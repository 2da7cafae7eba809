"""What the rest of the app knows of a payment provider.

Views and services speak in these plain values; only
:mod:`donations.payments.stripe_gateway` knows Stripe's objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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
    # The card's expiry (month 1-12, four-digit year): valid to the month's end.
    card_exp_month: int | None = None
    card_exp_year: int | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    # From the charge's balance transaction once the money has settled.
    fee: int | None = None
    net: int | None = None
    created: int = 0


@dataclass(frozen=True)
class SetupSnapshot:
    """A SetupIntent: a payment method collected for later, off-session use."""

    id: str
    status: str
    client_secret: str | None
    customer_id: str | None
    payment_method_id: str | None
    method_type: str | None = None
    failure_code: str | None = None


@dataclass(frozen=True)
class InvoiceSnapshot:
    """One invoice of a subscription: what was billed and how its payment stands."""

    id: str
    status: str
    amount_due: Money
    amount_paid: int
    subscription_id: str | None
    customer_id: str | None
    billing_reason: str | None
    attempt_count: int
    payment_intent_id: str | None
    period_start: int | None = None
    period_end: int | None = None


@dataclass(frozen=True)
class CardSnapshot:
    """A saved card as the provider has it now: what a plan's next payment will use."""

    brand: str | None
    last4: str | None
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class SubscriptionSnapshot:
    id: str
    status: str
    customer_id: str
    amount: Money
    interval: str
    metadata: Mapping[str, str]
    current_period_end: int | None
    cancel_at: int | None
    canceled_at: int | None
    ended_at: int | None
    cancellation_reason: str | None
    latest_invoice: InvoiceSnapshot | None
    default_payment_method_id: str | None = None
    # Set to end the subscription when the current period ends (cancel_at is then that moment).
    cancel_at_period_end: bool = False
    # pause_collection: while set, invoices are handled by ``pause_behavior``
    # ("void": made and voided, nothing charged, nothing owed later) until
    # ``pause_resumes_at`` (None: until collection is resumed by hand).
    pause_behavior: str | None = None
    pause_resumes_at: int | None = None


@dataclass(frozen=True)
class RefundSnapshot:
    """One refund of a payment, as the provider reports it."""

    id: str
    # Stripe's refund status: pending, requires_action, succeeded, failed, canceled.
    status: str
    amount: Money
    payment_id: str | None
    charge_id: str | None = None
    reason: str | None = None
    failure_reason: str | None = None
    created: int = 0


@dataclass(frozen=True)
class ChargeSnapshot:
    """One charge of a payment with its settlement and every refund made of it."""

    id: str
    payment_id: str | None
    status: str
    amount: Money
    # What Stripe counts as refunded (pending and succeeded refunds).
    amount_refunded: int
    refunds: tuple[RefundSnapshot, ...]
    disputed: bool
    created: int
    fee: int | None = None
    net: int | None = None


@dataclass(frozen=True)
class DisputeSnapshot:
    """A dispute (chargeback) of a charge and the money it has moved so far."""

    id: str
    charge_id: str
    payment_id: str | None
    status: str
    reason: str
    amount: Money
    created: int
    # Totals over the dispute's balance transactions: fees charged, and the
    # net change to the balance (withdrawal, fee, any reinstatement).
    fee: int
    net: int


@dataclass(frozen=True)
class PayoutSnapshot:
    """A transfer of the balance to the bank account."""

    id: str
    status: str
    amount: Money
    created: int
    arrival_date: int
    automatic: bool
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class BalanceEntry:
    """One balance transaction: a charge, refund, dispute movement, payout..."""

    id: str
    type: str
    source_id: str | None
    amount: int
    fee: int
    net: int
    currency: str


@dataclass(frozen=True)
class CustomerSnapshot:
    id: str
    email: str | None
    name: str | None
    deleted: bool = False


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

    def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> PaymentSnapshot:
        """Cancel a PaymentIntent nobody paid; raises GatewayError once it moved money."""
        ...

    def create_setup(
        self,
        *,
        customer_id: str,
        method_types: Sequence[str],
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> SetupSnapshot:
        """Start collecting a payment method for a recurring plan."""
        ...

    def retrieve_setup(self, setup_id: str) -> SetupSnapshot:
        """Read a SetupIntent as the provider has it."""
        ...

    def cancel_setup(self, setup_id: str, *, idempotency_key: str) -> SetupSnapshot:
        """Cancel a SetupIntent that never collected a payment method."""
        ...

    def recurring_price(self, *, amount: Money, interval: str, idempotency_key: str) -> str:
        """The provider's price id for this amount and interval (created once, reused)."""
        ...

    def create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        payment_method_id: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> SubscriptionSnapshot:
        """Subscribe the customer, charging the first period now."""
        ...

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionSnapshot:
        """Read a subscription with its latest invoice."""
        ...

    def retrieve_invoice(self, invoice_id: str) -> InvoiceSnapshot:
        """Read one invoice with its payment."""
        ...

    def update_default_payment_method(
        self, *, customer_id: str, subscription_id: str, payment_method_id: str
    ) -> None:
        """Use this payment method for the subscription's future charges."""
        ...

    def pay_invoice(self, invoice_id: str, *, idempotency_key: str) -> InvoiceSnapshot:
        """Try an open invoice's payment again now (after a new payment method)."""
        ...

    def change_subscription_price(
        self, subscription_id: str, *, price_id: str, new_interval: bool, idempotency_key: str
    ) -> SubscriptionSnapshot:
        """Bill the subscription at another price from its next payment on: no proration,
        nothing charged now. With ``new_interval`` (monthly <-> annual) the next payment
        stays on the date the current period ends."""
        ...

    def refund_payment(
        self, payment_id: str, amount: Money | None, idempotency_key: str
    ) -> RefundSnapshot:
        """Refund ``amount`` of a payment (all of what is left when None)."""
        ...

    def cancel_subscription(self, subscription_id: str) -> SubscriptionSnapshot:
        """End a subscription now: no further renewals are charged."""
        ...

    def set_cancel_at_period_end(
        self, subscription_id: str, *, cancel: bool, idempotency_key: str
    ) -> SubscriptionSnapshot:
        """End the subscription when its current period ends (or no longer: ``cancel=False``)."""
        ...

    def pause_collection(
        self, subscription_id: str, *, resumes_at: int | None, idempotency_key: str
    ) -> SubscriptionSnapshot:
        """Collect nothing until ``resumes_at`` (invoices voided, no catch-up charge).

        ``resumes_at=None`` resumes collection now.
        """
        ...

    # -- the ledger: settlement, refunds, disputes, payouts --------------------
    # Periods are [start, end) in Unix seconds of the objects' creation.

    def retrieve_charge(self, charge_id: str) -> ChargeSnapshot:
        """A charge with its balance transaction and all of its refunds."""
        ...

    def retrieve_refund(self, refund_id: str) -> RefundSnapshot:
        """One refund as the provider has it now."""
        ...

    def retrieve_dispute(self, dispute_id: str) -> DisputeSnapshot:
        """A dispute with the totals of its balance transactions."""
        ...

    def retrieve_payout(self, payout_id: str) -> PayoutSnapshot:
        """One payout as the provider has it now."""
        ...

    def retrieve_customer(self, customer_id: str) -> CustomerSnapshot:
        """The customer's contact details (for a payment recorded from the provider)."""
        ...

    def list_payments(self, start: int, end: int) -> Iterator[PaymentSnapshot]:
        """Every payment created in the period, with its settlement."""
        ...

    def list_refunds(self, start: int, end: int) -> Iterator[RefundSnapshot]:
        """Every refund created in the period."""
        ...

    def list_disputes(self, start: int, end: int) -> Iterator[DisputeSnapshot]:
        """Every dispute created in the period."""
        ...

    def list_payouts(self, start: int, end: int) -> Iterator[PayoutSnapshot]:
        """Every payout created in the period."""
        ...

    def list_invoices(self, start: int, end: int) -> Iterator[InvoiceSnapshot]:
        """Every invoice created in the period, with its payment."""
        ...

    def invoice_of_payment(self, payment_id: str) -> InvoiceSnapshot | None:
        """The invoice a payment pays (a plan's renewal), or None for a payment of its own."""
        ...

    def list_payout_entries(self, payout_id: str) -> Iterator[BalanceEntry]:
        """The balance transactions a payout paid out (automatic payouts only)."""
        ...

    def redact_customer(self, customer_id: str) -> None:
        """Clear the customer's personal details at the provider; payments stay."""
        ...

    def parse_webhook(self, payload: bytes, signature: str | None, now: int) -> WebhookEvent:
        """Verify a delivery's signature on the raw bytes, then parse it."""
        ...

    def retrieve_card(self, payment_method_id: str) -> CardSnapshot | None:
        """The card behind a payment method, or None when it is not a card."""
        ...

    def upcoming_invoice_subscription(self, payload: str) -> str | None:
        """The subscription an ``invoice.upcoming`` event (a stored, verified body) is for.

        An upcoming invoice is a preview with no id of its own, so it cannot be
        re-read; the subscription it names can.
        """
        ...
