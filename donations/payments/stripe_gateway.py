"""The Stripe gateway: the only module that imports ``stripe``.

It uses the API version pinned by the installed SDK and is type-checked with
``mypy --strict`` against the SDK's own types, so the code follows the current
API even where the local simulator still returns older shapes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import stripe

from donations.money import Money
from donations.payments.gateway import (
    BalanceEntry,
    CardSnapshot,
    ChargeSnapshot,
    CustomerSnapshot,
    DisputeSnapshot,
    GatewayError,
    GatewayUnavailable,
    InvalidWebhook,
    InvoiceSnapshot,
    PaymentSnapshot,
    PayoutSnapshot,
    RefundSnapshot,
    SetupSnapshot,
    SubscriptionSnapshot,
    WebhookEvent,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Stripe's own default; we also refuse timestamps this far in the future,
# which the SDK does not check.
# https://docs.stripe.com/webhooks#replay-attacks
WEBHOOK_TOLERANCE_SECONDS = 300
# The SDK retries connection errors, 409/429 and retryable 5xx with
# exponential backoff, re-sending the same idempotency key each time.
# https://docs.stripe.com/error-low-level#idempotency
NETWORK_RETRIES = 3

API_VERSION: str = stripe.api_version

# One product holds every recurring donation price.
DONATION_PRODUCT_ID = "recurring-donation"
INTERVALS = {"monthly": "month", "annual": "year"}


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
            http_client=stripe.RequestsClient(timeout=http_timeout) if _has_requests() else None,
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
                payment_id, {"expand": ["payment_method", "latest_charge.balance_transaction"]}
            )
        return _snapshot(intent)

    def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> PaymentSnapshot:
        # https://docs.stripe.com/api/payment_intents/cancel -- only while it can still
        # be paid (requires_payment_method / _confirmation / _action / _capture).
        with _translated_errors():
            intent = self._client.v1.payment_intents.cancel(
                payment_id, options={"idempotency_key": idempotency_key}
            )
        return _snapshot(intent)

    # -- recurring plans -------------------------------------------------

    def create_setup(
        self,
        *,
        customer_id: str,
        method_types: Sequence[str],
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> SetupSnapshot:
        # Collect the method first, then subscribe with it: the flow Stripe
        # documents for taking payment details before creating a subscription.
        # https://docs.stripe.com/billing/subscriptions/build-subscriptions?ui=elements
        params: stripe.params.SetupIntentCreateParams = {
            "customer": customer_id,
            "usage": "off_session",
            "allowed_payment_method_types": list(method_types),
            "metadata": dict(metadata),
        }
        with _translated_errors():
            intent = self._client.v1.setup_intents.create(
                params, {"idempotency_key": idempotency_key}
            )
        return _setup_snapshot(intent)

    def retrieve_setup(self, setup_id: str) -> SetupSnapshot:
        with _translated_errors():
            intent = self._client.v1.setup_intents.retrieve(
                setup_id, {"expand": ["payment_method"]}
            )
        return _setup_snapshot(intent)

    def cancel_setup(self, setup_id: str, *, idempotency_key: str) -> SetupSnapshot:
        # https://docs.stripe.com/api/setup_intents/cancel
        with _translated_errors():
            intent = self._client.v1.setup_intents.cancel(
                setup_id, options={"idempotency_key": idempotency_key}
            )
        return _setup_snapshot(intent)

    def recurring_price(self, *, amount: Money, interval: str, idempotency_key: str) -> str:
        stripe_interval = INTERVALS[interval]
        lookup_key = f"donation-{amount.currency.lower()}-{amount.amount}-{stripe_interval}"
        with _translated_errors():
            found = self._client.v1.prices.list({"lookup_keys": [lookup_key], "limit": 1})
            for price in found.data:
                return price.id
            self._ensure_product()
            price = self._client.v1.prices.create(
                {
                    "currency": amount.currency.lower(),
                    "unit_amount": amount.amount,
                    "recurring": {"interval": stripe_interval},
                    "product": DONATION_PRODUCT_ID,
                    "lookup_key": lookup_key,
                },
                {"idempotency_key": idempotency_key},
            )
        return price.id

    def _ensure_product(self) -> None:
        try:
            self._client.v1.products.retrieve(DONATION_PRODUCT_ID)
        except stripe.InvalidRequestError:
            self._client.v1.products.create(
                {"id": DONATION_PRODUCT_ID, "name": "Recurring donation"},
                {"idempotency_key": f"product-{DONATION_PRODUCT_ID}"},
            )

    def create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        payment_method_id: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> SubscriptionSnapshot:
        params: stripe.params.SubscriptionCreateParams = {
            "customer": customer_id,
            "items": [{"price": price_id}],
            "default_payment_method": payment_method_id,
            # An SCA challenge on the first payment leaves the subscription
            # incomplete; the page completes it with the invoice's intent.
            "payment_behavior": "allow_incomplete",
            "metadata": dict(metadata),
            "expand": ["latest_invoice.payments"],
        }
        with _translated_errors():
            subscription = self._client.v1.subscriptions.create(
                params, {"idempotency_key": idempotency_key}
            )
        return _subscription_snapshot(subscription)

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionSnapshot:
        with _translated_errors():
            subscription = self._client.v1.subscriptions.retrieve(
                subscription_id, {"expand": ["latest_invoice.payments"]}
            )
        return _subscription_snapshot(subscription)

    def retrieve_invoice(self, invoice_id: str) -> InvoiceSnapshot:
        with _translated_errors():
            invoice = self._client.v1.invoices.retrieve(invoice_id, {"expand": ["payments"]})
        return _invoice_snapshot(invoice)

    def update_default_payment_method(
        self, *, customer_id: str, subscription_id: str, payment_method_id: str
    ) -> None:
        with _translated_errors():
            self._client.v1.customers.update(
                customer_id, {"invoice_settings": {"default_payment_method": payment_method_id}}
            )
            self._client.v1.subscriptions.update(
                subscription_id, {"default_payment_method": payment_method_id}
            )

    def pay_invoice(self, invoice_id: str, *, idempotency_key: str) -> InvoiceSnapshot:
        with _translated_errors():
            invoice = self._client.v1.invoices.pay(
                invoice_id, {"expand": ["payments"]}, {"idempotency_key": idempotency_key}
            )
        return _invoice_snapshot(invoice)

    def change_subscription_price(
        self, subscription_id: str, *, price_id: str, new_interval: bool, idempotency_key: str
    ) -> SubscriptionSnapshot:
        # The item is swapped with proration_behavior=none: what the current
        # period cost stays paid, and the next invoice bills the new price.
        # https://docs.stripe.com/billing/subscriptions/change-price
        # Moving to another interval would reset the billing cycle anchor to
        # now and charge at once; a trial until the current period's end keeps
        # the next payment where it was (no charge before it).
        # https://docs.stripe.com/billing/subscriptions/billing-cycle#changing
        with _translated_errors():
            current = self._client.v1.subscriptions.retrieve(subscription_id)
            item = current.items.data[0]
            params: stripe.params.SubscriptionUpdateParams = {
                "items": [{"id": item.id, "price": price_id}],
                "proration_behavior": "none",
                "expand": ["latest_invoice.payments"],
            }
            if new_interval:
                params["trial_end"] = item.current_period_end
            subscription = self._client.v1.subscriptions.update(
                subscription_id, params, {"idempotency_key": idempotency_key}
            )
        return _subscription_snapshot(subscription)

    # -- refunds and cancellations ----------------------------------------

    def refund_payment(
        self, payment_id: str, amount: Money | None, idempotency_key: str
    ) -> RefundSnapshot:
        # https://docs.stripe.com/api/refunds/create -- partial refunds may be
        # repeated until the charge is fully refunded.
        params: stripe.params.RefundCreateParams = {"payment_intent": payment_id}
        if amount is not None:
            params["amount"] = amount.amount
        with _translated_errors():
            refund = self._client.v1.refunds.create(params, {"idempotency_key": idempotency_key})
        return _refund_snapshot(refund)

    def cancel_subscription(self, subscription_id: str) -> SubscriptionSnapshot:
        # DELETE is idempotent by definition and takes no idempotency key:
        # https://docs.stripe.com/api/idempotent_requests
        with _translated_errors():
            subscription = self._client.v1.subscriptions.cancel(subscription_id)
        return _subscription_snapshot(subscription)

    def set_cancel_at_period_end(
        self, subscription_id: str, *, cancel: bool, idempotency_key: str
    ) -> SubscriptionSnapshot:
        # https://docs.stripe.com/billing/subscriptions/cancel#cancel-at-end-of-cycle
        params: stripe.params.SubscriptionUpdateParams = {
            "cancel_at_period_end": cancel,
            "expand": ["latest_invoice.payments"],
        }
        with _translated_errors():
            subscription = self._client.v1.subscriptions.update(
                subscription_id, params, {"idempotency_key": idempotency_key}
            )
        return _subscription_snapshot(subscription)

    def pause_collection(
        self, subscription_id: str, *, resumes_at: int | None, idempotency_key: str
    ) -> SubscriptionSnapshot:
        # "void": invoices made during the pause are voided, so nothing is owed
        # and nothing is charged when collection resumes.
        # https://docs.stripe.com/billing/subscriptions/pause-payment
        params: stripe.params.SubscriptionUpdateParams = {
            "pause_collection": (
                {"behavior": "void", "resumes_at": resumes_at} if resumes_at is not None else ""
            ),
            "expand": ["latest_invoice.payments"],
        }
        with _translated_errors():
            subscription = self._client.v1.subscriptions.update(
                subscription_id, params, {"idempotency_key": idempotency_key}
            )
        return _subscription_snapshot(subscription)

    # -- the ledger: settlement, refunds, disputes, payouts ----------------

    def retrieve_charge(self, charge_id: str) -> ChargeSnapshot:
        with _translated_errors():
            charge = self._client.v1.charges.retrieve(
                charge_id, {"expand": ["balance_transaction"]}
            )
            # The charge's own `refunds` list is no longer included by
            # default; list them all, so the ledger sees every one.
            refunds = self._client.v1.refunds.list({"charge": charge_id, "limit": 100})
            refund_snapshots = tuple(_refund_snapshot(r) for r in refunds.auto_paging_iter())
        return _charge_snapshot(charge, refund_snapshots)

    def retrieve_refund(self, refund_id: str) -> RefundSnapshot:
        with _translated_errors():
            refund = self._client.v1.refunds.retrieve(refund_id)
        return _refund_snapshot(refund)

    def retrieve_dispute(self, dispute_id: str) -> DisputeSnapshot:
        with _translated_errors():
            dispute = self._client.v1.disputes.retrieve(dispute_id)
        return _dispute_snapshot(dispute)

    def retrieve_payout(self, payout_id: str) -> PayoutSnapshot:
        with _translated_errors():
            payout = self._client.v1.payouts.retrieve(payout_id)
        return _payout_snapshot(payout)

    def retrieve_customer(self, customer_id: str) -> CustomerSnapshot:
        with _translated_errors():
            customer = self._client.v1.customers.retrieve(customer_id)
        return _customer_snapshot(customer)

    def list_payments(self, start: int, end: int) -> Iterator[PaymentSnapshot]:
        params: stripe.params.PaymentIntentListParams = {
            "created": {"gte": start, "lt": end},
            "limit": 100,
            "expand": ["data.payment_method", "data.latest_charge.balance_transaction"],
        }
        return _every(self._client.v1.payment_intents.list, params, _snapshot)

    def list_refunds(self, start: int, end: int) -> Iterator[RefundSnapshot]:
        params: stripe.params.RefundListParams = {
            "created": {"gte": start, "lt": end},
            "limit": 100,
        }
        return _every(self._client.v1.refunds.list, params, _refund_snapshot)

    def list_disputes(self, start: int, end: int) -> Iterator[DisputeSnapshot]:
        params: stripe.params.DisputeListParams = {
            "created": {"gte": start, "lt": end},
            "limit": 100,
        }
        return _every(self._client.v1.disputes.list, params, _dispute_snapshot)

    def list_payouts(self, start: int, end: int) -> Iterator[PayoutSnapshot]:
        params: stripe.params.PayoutListParams = {
            "created": {"gte": start, "lt": end},
            "limit": 100,
        }
        return _every(self._client.v1.payouts.list, params, _payout_snapshot)

    def list_invoices(self, start: int, end: int) -> Iterator[InvoiceSnapshot]:
        params: stripe.params.InvoiceListParams = {
            "created": {"gte": start, "lt": end},
            "limit": 100,
            "expand": ["data.payments"],
        }
        return _every(self._client.v1.invoices.list, params, _invoice_snapshot)

    def invoice_of_payment(self, payment_id: str) -> InvoiceSnapshot | None:
        # Since 2025-03-31 a PaymentIntent no longer names its invoice; the
        # invoice's payments do (https://docs.stripe.com/api/invoice-payment/list).
        params: stripe.params.InvoicePaymentListParams = {
            "payment": {"type": "payment_intent", "payment_intent": payment_id},
            "limit": 1,
        }
        with _translated_errors():
            found = self._client.v1.invoice_payments.list(params)
            for payment in found.data:
                invoice_id = _id_of(payment.invoice)
                if invoice_id is None:
                    continue
                invoice = self._client.v1.invoices.retrieve(invoice_id, {"expand": ["payments"]})
                return _invoice_snapshot(invoice)
        return None

    def list_payout_entries(self, payout_id: str) -> Iterator[BalanceEntry]:
        # https://docs.stripe.com/payouts/reconciliation -- only automatic
        # payouts can list the transactions they settled.
        params: stripe.params.BalanceTransactionListParams = {"payout": payout_id, "limit": 100}
        return _every(self._client.v1.balance_transactions.list, params, _balance_entry)

    def redact_customer(self, customer_id: str) -> None:
        # Empty strings unset fields (https://docs.stripe.com/api/customers/update);
        # the customer and its payments stay, so the ledger still reconciles.
        params: stripe.params.CustomerUpdateParams = {
            "email": "",
            "name": "",
            "phone": "",
            "description": "",
            "address": "",
            "shipping": "",
        }
        with _translated_errors():
            self._client.v1.customers.update(customer_id, params)

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
        except (ValueError, RecursionError) as exc:
            # RecursionError: a signed body nested deeper than the parser's stack.
            raise InvalidWebhook("body is not JSON") from exc
        return _webhook_event(body)

    def retrieve_card(self, payment_method_id: str) -> CardSnapshot | None:
        with _translated_errors():
            method = self._client.v1.payment_methods.retrieve(payment_method_id)
        card = _optional(lambda: method.card)
        if method.type != "card" or card is None:
            return None
        return CardSnapshot(
            brand=card.brand, last4=card.last4, exp_month=card.exp_month, exp_year=card.exp_year
        )

    def upcoming_invoice_subscription(self, payload: str) -> str | None:
        try:
            body = json.loads(payload)
        except (ValueError, RecursionError):
            return None
        data = body.get("data") if isinstance(body, dict) else None
        obj = data.get("object") if isinstance(data, dict) else None
        if not isinstance(obj, dict) or obj.get("object") != "invoice":
            return None
        # The event's object read as the SDK's Invoice, so the field names
        # are the pinned API version's (the subscription is under ``parent``).
        invoice = stripe.Invoice.construct_from(obj, None)
        parent = _optional(lambda: invoice.parent)
        details = _optional(lambda: parent.subscription_details) if parent is not None else None
        found = _id_of(_optional(lambda: details.subscription)) if details is not None else None
        return _plain_text(found, MAX_EVENT_ID)


_ListParams = TypeVar("_ListParams", bound=Mapping[str, Any])
_Listed = TypeVar("_Listed", bound=stripe.StripeObject)
_Snapshot = TypeVar("_Snapshot")


def _every(
    list_page: Callable[[_ListParams], stripe.ListObject[_Listed]],
    params: _ListParams,
    snapshot: Callable[[_Listed], _Snapshot],
) -> Iterator[_Snapshot]:
    """Each object a list call finds, page after page, as ``snapshot`` makes it."""
    with _translated_errors():
        for listed in list_page(params).auto_paging_iter():
            yield snapshot(listed)


def _has_requests() -> bool:
    try:
        import requests  # noqa: F401
    except ImportError:  # pragma: no cover - requests ships with our deps
        return False
    return True


def _signature_timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        # ASCII digits only ("²".isdigit() is true) and no more than a Unix time needs.
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            return int(value)
    raise InvalidWebhook("no timestamp in Stripe-Signature")


# What a stored event's columns hold (``stripe_events``); Stripe's ids are far shorter.
MAX_EVENT_ID = 255
MAX_EVENT_TYPE = 100
# Creation times from 1970 to 2286: anything else is not a Stripe event.
MAX_EVENT_CREATED = 9_999_999_999


def _plain_text(value: object, limit: int) -> str | None:
    """``value`` if it is a string that fits its column and PostgreSQL can store (no NUL)."""
    if isinstance(value, str) and 0 < len(value) <= limit and "\x00" not in value:
        return value
    return None


def _webhook_event(body: Any) -> WebhookEvent:
    if not isinstance(body, dict):
        raise InvalidWebhook("event is not an object")
    event_id = _plain_text(body.get("id"), MAX_EVENT_ID)
    event_type = _plain_text(body.get("type"), MAX_EVENT_TYPE)
    created = body.get("created")
    if event_id is None or not event_id.startswith("evt_"):
        raise InvalidWebhook("event has no id")
    if event_type is None:
        raise InvalidWebhook("event has no type")
    if (
        not isinstance(created, int)
        or isinstance(created, bool)
        or not 0 <= created <= MAX_EVENT_CREATED
    ):
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
        object_id=_plain_text(object_id, MAX_EVENT_ID),
        object_type=_plain_text(object_type, MAX_EVENT_TYPE),
    )


def _optional(read: Callable[[], T | None]) -> T | None:
    """A field the SDK types as optional, or None when Stripe left it out.

    Stripe omits many optional fields instead of sending null (a 3D Secure
    failure's ``last_payment_error`` has no ``decline_code``), and the SDK's
    objects raise ``AttributeError`` for a missing key. Reading each optional
    field through here keeps mypy checking the field's name and type.
    """
    try:
        return read()
    except AttributeError:
        return None


def _id_of(value: object) -> str | None:
    """The id of an expandable field, expanded or not."""
    if value is None or isinstance(value, str):
        return value
    found = getattr(value, "id", None)
    return found if isinstance(found, str) else None


def _metadata(obj: stripe.PaymentIntent | stripe.Subscription) -> dict[str, str]:
    metadata = _optional(lambda: obj.metadata)
    if metadata is None:
        return {}
    return {str(k): str(v) for k, v in metadata.to_dict().items()}


def _snapshot(intent: stripe.PaymentIntent) -> PaymentSnapshot:
    method = _optional(lambda: intent.payment_method)
    method_type = brand = last4 = None
    exp_month = exp_year = None
    if isinstance(method, stripe.PaymentMethod):
        method_type = method.type
        # Only the hash for the method's own type is present in the object.
        card = _optional(lambda: method.card)
        sepa = _optional(lambda: method.sepa_debit)
        if method.type == "card" and card is not None:
            brand, last4 = card.brand, card.last4
            exp_month, exp_year = card.exp_month, card.exp_year
        elif method.type == "sepa_debit" and sepa is not None:
            last4 = _optional(lambda: sepa.last4)
    charge = _optional(lambda: intent.latest_charge)
    fee, net = _settlement(charge) if isinstance(charge, stripe.Charge) else (None, None)
    error = _optional(lambda: intent.last_payment_error)
    return PaymentSnapshot(
        id=intent.id,
        status=intent.status,
        amount=Money(intent.amount, intent.currency.upper()),
        livemode=intent.livemode,
        client_secret=_optional(lambda: intent.client_secret),
        metadata=_metadata(intent),
        customer_id=_id_of(_optional(lambda: intent.customer)),
        charge_id=_id_of(charge),
        method_type=method_type,
        card_brand=brand,
        card_last4=last4,
        card_exp_month=exp_month,
        card_exp_year=exp_year,
        failure_code=_optional(lambda: error.code) if error is not None else None,
        decline_code=_optional(lambda: error.decline_code) if error is not None else None,
        fee=fee,
        net=net,
        created=intent.created,
    )


def _setup_snapshot(intent: stripe.SetupIntent) -> SetupSnapshot:
    method = _optional(lambda: intent.payment_method)
    error = _optional(lambda: intent.last_setup_error)
    return SetupSnapshot(
        id=intent.id,
        status=intent.status,
        client_secret=_optional(lambda: intent.client_secret),
        customer_id=_id_of(_optional(lambda: intent.customer)),
        payment_method_id=_id_of(method),
        method_type=method.type if isinstance(method, stripe.PaymentMethod) else None,
        failure_code=_optional(lambda: error.code) if error is not None else None,
    )


def _invoice_snapshot(invoice: stripe.Invoice) -> InvoiceSnapshot:
    subscription_id = None
    parent = _optional(lambda: invoice.parent)
    details = _optional(lambda: parent.subscription_details) if parent is not None else None
    if details is not None:
        subscription_id = _id_of(details.subscription)
    intent_id = None
    payments = _optional(lambda: invoice.payments)
    for payment in payments.data if payments is not None else ():
        pi = _intent_of(payment)
        if pi is not None and (payment.is_default or intent_id is None):
            intent_id = pi
    assert invoice.id is not None
    return InvoiceSnapshot(
        id=invoice.id,
        status=_optional(lambda: invoice.status) or "draft",
        amount_due=Money(invoice.amount_due, invoice.currency.upper()),
        amount_paid=invoice.amount_paid,
        subscription_id=subscription_id,
        customer_id=_id_of(_optional(lambda: invoice.customer)),
        billing_reason=_optional(lambda: invoice.billing_reason),
        attempt_count=invoice.attempt_count,
        payment_intent_id=intent_id,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
    )


def _intent_of(payment: stripe.InvoicePayment) -> str | None:
    return _id_of(_optional(lambda: payment.payment.payment_intent))


def _subscription_snapshot(subscription: stripe.Subscription) -> SubscriptionSnapshot:
    item = subscription.items.data[0]
    price = item.price
    recurring = _optional(lambda: price.recurring)
    latest = _optional(lambda: subscription.latest_invoice)
    details = _optional(lambda: subscription.cancellation_details)
    pause = _optional(lambda: subscription.pause_collection)
    customer_id = _id_of(subscription.customer)
    assert customer_id is not None
    unit_amount = _optional(lambda: price.unit_amount) or 0
    return SubscriptionSnapshot(
        id=subscription.id,
        status=subscription.status,
        customer_id=customer_id,
        amount=Money(unit_amount * (_optional(lambda: item.quantity) or 1), price.currency.upper()),
        interval=recurring.interval if recurring is not None else "month",
        metadata=_metadata(subscription),
        # Since 2025-03-31 the billing period lives on each item.
        current_period_end=item.current_period_end,
        cancel_at=_optional(lambda: subscription.cancel_at),
        canceled_at=_optional(lambda: subscription.canceled_at),
        ended_at=_optional(lambda: subscription.ended_at),
        cancellation_reason=_optional(lambda: details.reason) if details is not None else None,
        latest_invoice=_invoice_snapshot(latest) if isinstance(latest, stripe.Invoice) else None,
        default_payment_method_id=_id_of(_optional(lambda: subscription.default_payment_method)),
        cancel_at_period_end=bool(_optional(lambda: subscription.cancel_at_period_end)),
        pause_behavior=pause.behavior if pause is not None else None,
        pause_resumes_at=_optional(lambda: pause.resumes_at) if pause is not None else None,
    )


def _charge_snapshot(charge: stripe.Charge, refunds: tuple[RefundSnapshot, ...]) -> ChargeSnapshot:
    fee, net = _settlement(charge)
    return ChargeSnapshot(
        id=charge.id,
        payment_id=_id_of(_optional(lambda: charge.payment_intent)),
        status=charge.status,
        amount=Money(charge.amount, charge.currency.upper()),
        amount_refunded=charge.amount_refunded,
        refunds=refunds,
        disputed=charge.disputed,
        created=charge.created,
        fee=fee,
        net=net,
    )


def _customer_snapshot(customer: stripe.Customer) -> CustomerSnapshot:
    if _optional(lambda: customer.deleted):
        return CustomerSnapshot(id=customer.id, email=None, name=None, deleted=True)
    return CustomerSnapshot(
        id=customer.id,
        email=_optional(lambda: customer.email),
        name=_optional(lambda: customer.name),
    )


def _settlement(charge: stripe.Charge) -> tuple[int | None, int | None]:
    """Fee and net of a charge whose balance transaction was expanded."""
    txn = _optional(lambda: charge.balance_transaction)
    if isinstance(txn, stripe.BalanceTransaction):
        return txn.fee, txn.net
    return None, None


def _balance_entry(txn: stripe.BalanceTransaction) -> BalanceEntry:
    return BalanceEntry(
        id=txn.id,
        type=txn.type,
        source_id=_source_id(txn),
        amount=txn.amount,
        fee=txn.fee,
        net=txn.net,
        currency=txn.currency.upper(),
    )


def _source_id(txn: stripe.BalanceTransaction) -> str | None:
    return _id_of(_optional(lambda: txn.source))


def _refund_snapshot(refund: stripe.Refund) -> RefundSnapshot:
    return RefundSnapshot(
        id=refund.id,
        status=_optional(lambda: refund.status) or "pending",
        amount=Money(refund.amount, refund.currency.upper()),
        payment_id=_id_of(_optional(lambda: refund.payment_intent)),
        charge_id=_id_of(_optional(lambda: refund.charge)),
        reason=_optional(lambda: refund.reason),
        # Only present on failed refunds.
        failure_reason=_optional(lambda: refund.failure_reason),
        created=refund.created,
    )


def _dispute_snapshot(dispute: stripe.Dispute) -> DisputeSnapshot:
    charge_id = _id_of(dispute.charge)
    assert charge_id is not None
    return DisputeSnapshot(
        id=dispute.id,
        charge_id=charge_id,
        payment_id=_id_of(_optional(lambda: dispute.payment_intent)),
        status=dispute.status,
        reason=dispute.reason,
        amount=Money(dispute.amount, dispute.currency.upper()),
        created=dispute.created,
        fee=sum(txn.fee for txn in dispute.balance_transactions),
        net=sum(txn.net for txn in dispute.balance_transactions),
    )


def _payout_snapshot(payout: stripe.Payout) -> PayoutSnapshot:
    return PayoutSnapshot(
        id=payout.id,
        status=payout.status,
        amount=Money(payout.amount, payout.currency.upper()),
        created=payout.created,
        arrival_date=payout.arrival_date,
        automatic=payout.automatic,
        failure_code=_optional(lambda: payout.failure_code),
        failure_message=_optional(lambda: payout.failure_message),
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
