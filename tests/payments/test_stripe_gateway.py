"""The gateway's snapshots read every optional field of Stripe's objects as optional.

Stripe leaves many optional fields out of an object rather than sending null
(a 3D Secure failure's ``last_payment_error`` has no ``decline_code``), and
the SDK raises ``AttributeError`` for a missing key. Each snapshot is built
here from objects holding only the fields the SDK's types mark as required;
``bare`` refuses any value in a field typed ``Optional``, so the fixtures
cannot quietly include one (an optional nested object may be given, to test
that its own optional fields are read as optional).
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import pytest
import stripe

from donations.money import Money
from donations.payments import stripe_gateway
from donations.payments.gateway import (
    ChargeSnapshot,
    CustomerSnapshot,
    DisputeSnapshot,
    InvoiceSnapshot,
    PaymentSnapshot,
    PayoutSnapshot,
    RefundSnapshot,
    SetupSnapshot,
    SubscriptionSnapshot,
)

KEY = "sk_test_local"


def _fields(cls: type) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        found.update(getattr(klass, "__annotations__", {}))
    return found


def _is_optional(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith("Optional[")
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(annotation)


def _only_required(obj: Any, path: str) -> None:
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            _only_required(item, f"{path}[{i}]")
        return
    if isinstance(obj, stripe.ListObject):
        _only_required(obj.data, f"{path}.data")
        return
    if not isinstance(obj, stripe.StripeObject):
        return
    fields = _fields(type(obj))
    for key in obj.to_dict():
        value = obj[key]
        assert key in fields, f"{path}.{key} is not a field of {type(obj).__name__}"
        # An optional nested object may be present (to test its own optional
        # fields); an optional value may not.
        if not isinstance(value, stripe.StripeObject):
            assert not _is_optional(fields[key]), f"{path}.{key} is optional: leave it out"
        _only_required(value, f"{path}.{key}")


def bare(cls: type[stripe.StripeObject], **values: Any) -> Any:
    """A Stripe object of ``cls`` without any optional value (checked, nested too)."""
    obj = cls.construct_from(values, KEY)
    assert isinstance(obj, cls)
    _only_required(obj, cls.__name__)
    return obj


def balance_transaction(**values: Any) -> dict[str, Any]:
    return {
        "id": "txn_1",
        "object": "balance_transaction",
        "amount": 1000,
        "fee": 59,
        "net": 941,
        "currency": "usd",
        "type": "charge",
        **values,
    }


def bare_intent(**values: Any) -> stripe.PaymentIntent:
    return bare(
        stripe.PaymentIntent,
        id="pi_1",
        object="payment_intent",
        amount=1000,
        currency="usd",
        status="requires_payment_method",
        livemode=False,
        created=1_700_000_000,
        metadata={},
        **values,
    )


def bare_invoice(**values: Any) -> stripe.Invoice:
    return bare(
        stripe.Invoice,
        id="in_1",
        object="invoice",
        amount_due=500,
        amount_paid=0,
        currency="eur",
        attempt_count=1,
        period_start=1_700_000_000,
        period_end=1_702_592_000,
        **values,
    )


def test_payment_snapshot_without_any_optional_field() -> None:
    snapshot = stripe_gateway._snapshot(bare_intent())
    assert snapshot == PaymentSnapshot(
        id="pi_1",
        status="requires_payment_method",
        amount=Money(1000, "USD"),
        livemode=False,
        created=1_700_000_000,
    )


def test_payment_error_without_decline_code() -> None:
    # What Stripe sends when 3D Secure fails or is abandoned.
    intent = bare_intent(last_payment_error={"type": "card_error"})
    assert intent.last_payment_error is not None
    snapshot = stripe_gateway._snapshot(intent)
    assert (snapshot.failure_code, snapshot.decline_code) == (None, None)


def test_expanded_method_and_charge_without_optional_fields() -> None:
    intent = bare_intent(
        payment_method={
            "id": "pm_1",
            "object": "payment_method",
            "type": "card",
            "created": 1,
            "livemode": False,
        },
        latest_charge={
            "id": "ch_1",
            "object": "charge",
            "amount": 1000,
            "amount_captured": 1000,
            "amount_refunded": 0,
            "currency": "usd",
            "status": "succeeded",
            "created": 1,
            "disputed": False,
        },
    )
    snapshot = stripe_gateway._snapshot(intent)
    assert (snapshot.method_type, snapshot.card_brand, snapshot.charge_id) == ("card", None, "ch_1")
    assert (snapshot.fee, snapshot.net) == (None, None)


def test_setup_snapshot_without_any_optional_field() -> None:
    intent = bare(
        stripe.SetupIntent,
        id="seti_1",
        object="setup_intent",
        status="requires_payment_method",
        created=1,
        livemode=False,
        last_setup_error={"type": "card_error"},
    )
    assert stripe_gateway._setup_snapshot(intent) == SetupSnapshot(
        id="seti_1",
        status="requires_payment_method",
        client_secret=None,
        customer_id=None,
        payment_method_id=None,
    )


def test_invoice_snapshot_without_any_optional_field() -> None:
    assert stripe_gateway._invoice_snapshot(bare_invoice()) == InvoiceSnapshot(
        id="in_1",
        status="draft",
        amount_due=Money(500, "EUR"),
        amount_paid=0,
        subscription_id=None,
        customer_id=None,
        billing_reason=None,
        attempt_count=1,
        payment_intent_id=None,
        period_start=1_700_000_000,
        period_end=1_702_592_000,
    )


def test_invoice_payment_without_a_payment_intent() -> None:
    invoice = bare_invoice(
        parent={"type": "subscription_details"},
        payments={
            "object": "list",
            "url": "/v1/invoice_payments",
            "has_more": False,
            "data": [
                {
                    "id": "inpay_1",
                    "object": "invoice_payment",
                    "amount_requested": 500,
                    "currency": "eur",
                    "is_default": True,
                    "livemode": False,
                    "created": 1,
                    "status": "open",
                    "invoice": "in_1",
                    "payment": {"type": "payment_intent"},
                    "status_transitions": {},
                }
            ],
        },
    )
    snapshot = stripe_gateway._invoice_snapshot(invoice)
    assert (snapshot.subscription_id, snapshot.payment_intent_id) == (None, None)


def test_subscription_snapshot_without_any_optional_field() -> None:
    subscription = bare(
        stripe.Subscription,
        id="sub_1",
        object="subscription",
        customer="cus_1",
        status="active",
        metadata={},
        items={
            "object": "list",
            "url": "/v1/subscription_items",
            "has_more": False,
            "data": [
                {
                    "id": "si_1",
                    "object": "subscription_item",
                    "created": 1,
                    "current_period_end": 1_702_592_000,
                    "current_period_start": 1_700_000_000,
                    "metadata": {},
                    "subscription": "sub_1",
                    "price": {
                        "id": "price_1",
                        "object": "price",
                        "active": True,
                        "billing_scheme": "per_unit",
                        "created": 1,
                        "currency": "gbp",
                        "livemode": False,
                        "metadata": {},
                        "product": "recurring-donation",
                        "type": "recurring",
                    },
                }
            ],
        },
    )
    assert stripe_gateway._subscription_snapshot(subscription) == SubscriptionSnapshot(
        id="sub_1",
        status="active",
        customer_id="cus_1",
        amount=Money(0, "GBP"),
        interval="month",
        metadata={},
        current_period_end=1_702_592_000,
        cancel_at=None,
        canceled_at=None,
        ended_at=None,
        cancellation_reason=None,
        latest_invoice=None,
    )


def test_charge_snapshot_without_any_optional_field() -> None:
    charge = bare(
        stripe.Charge,
        id="ch_1",
        object="charge",
        amount=1000,
        amount_captured=1000,
        amount_refunded=0,
        currency="usd",
        status="succeeded",
        created=1,
        disputed=False,
        livemode=False,
        paid=True,
        captured=True,
        refunded=False,
    )
    assert stripe_gateway._charge_snapshot(charge, ()) == ChargeSnapshot(
        id="ch_1",
        payment_id=None,
        status="succeeded",
        amount=Money(1000, "USD"),
        amount_refunded=0,
        refunds=(),
        disputed=False,
        created=1,
    )


def test_refund_snapshot_without_any_optional_field() -> None:
    refund = bare(stripe.Refund, id="re_1", object="refund", amount=300, currency="usd", created=1)
    assert stripe_gateway._refund_snapshot(refund) == RefundSnapshot(
        id="re_1", status="pending", amount=Money(300, "USD"), payment_id=None, created=1
    )


def test_dispute_snapshot_without_any_optional_field() -> None:
    dispute = bare(
        stripe.Dispute,
        id="dp_1",
        object="dispute",
        amount=1000,
        currency="usd",
        charge="ch_1",
        created=1,
        reason="fraudulent",
        status="needs_response",
        livemode=False,
        balance_transactions=[balance_transaction(amount=-1000, fee=1500, net=-2500)],
    )
    assert stripe_gateway._dispute_snapshot(dispute) == DisputeSnapshot(
        id="dp_1",
        charge_id="ch_1",
        payment_id=None,
        status="needs_response",
        reason="fraudulent",
        amount=Money(1000, "USD"),
        created=1,
        fee=1500,
        net=-2500,
    )


def test_payout_snapshot_without_any_optional_field() -> None:
    payout = bare(
        stripe.Payout,
        id="po_1",
        object="payout",
        amount=5000,
        currency="usd",
        arrival_date=2,
        automatic=True,
        created=1,
        status="paid",
        livemode=False,
    )
    assert stripe_gateway._payout_snapshot(payout) == PayoutSnapshot(
        id="po_1",
        status="paid",
        amount=Money(5000, "USD"),
        created=1,
        arrival_date=2,
        automatic=True,
    )


def test_customer_and_balance_entry_without_any_optional_field() -> None:
    customer = bare(stripe.Customer, id="cus_1", object="customer", created=1, livemode=False)
    assert stripe_gateway._customer_snapshot(customer) == CustomerSnapshot(
        id="cus_1", email=None, name=None
    )
    txn = bare(stripe.BalanceTransaction, **balance_transaction())
    assert stripe_gateway._source_id(txn) is None


def test_bare_refuses_an_optional_field() -> None:
    with pytest.raises(AssertionError, match="decline_code is optional"):
        bare_intent(last_payment_error={"type": "card_error", "decline_code": "x"})


SNAPSHOT_TESTS = {
    "_snapshot": test_payment_snapshot_without_any_optional_field,
    "_setup_snapshot": test_setup_snapshot_without_any_optional_field,
    "_invoice_snapshot": test_invoice_snapshot_without_any_optional_field,
    "_subscription_snapshot": test_subscription_snapshot_without_any_optional_field,
    "_charge_snapshot": test_charge_snapshot_without_any_optional_field,
    "_refund_snapshot": test_refund_snapshot_without_any_optional_field,
    "_dispute_snapshot": test_dispute_snapshot_without_any_optional_field,
    "_payout_snapshot": test_payout_snapshot_without_any_optional_field,
    "_customer_snapshot": test_customer_and_balance_entry_without_any_optional_field,
}


def test_every_snapshot_is_built_from_bare_objects() -> None:
    snapshots = {
        name
        for name, fn in inspect.getmembers(stripe_gateway, inspect.isfunction)
        if name.endswith("_snapshot") and fn.__module__ == stripe_gateway.__name__
    }
    assert snapshots == set(SNAPSHOT_TESTS)
