"""Every way we adapt localstripe, in one place, outside the production path.

The production code follows the Stripe API version pinned by the SDK and
Stripe.js with the Payment Element. localstripe (1.15.10) predates both, so
the simulator is patched here -- and only here -- to behave like current
Stripe for the paths we use. ``DIFFERENCES`` names each one; a test checks
every entry against the running simulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import stripe
from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

from devtools.simulator import events, ledger, pausing

# The test cards Stripe documents for declines, with the codes Stripe gives.
# https://docs.stripe.com/testing#declined-payments
DECLINE_CARDS: dict[str, tuple[str, str, str]] = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": ("card_declined", "stolen_card", "Your card was declined."),
    "4100000000000019": ("card_declined", "fraudulent", "Your card was declined."),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": (
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    "4000000000000119": (
        "processing_error",
        "processing_error",
        "An error occurred while processing your card.",
    ),
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
}

DIFFERENCES: dict[str, str] = {
    "state_file": (
        "state is kept in a file we choose, not one shared file in /tmp, or only in "
        "memory (no --state: localstripe rewrites the whole file on every change, "
        "which a load test cannot afford)"
    ),
    "loopback_only": "listens on 127.0.0.1 only (localstripe binds every interface)",
    "allowed_payment_method_types": (
        "PaymentIntents accept allowed_payment_method_types (the pinned API's name "
        "for payment_method_types)"
    ),
    "confirm_with_payment_method": (
        "POST /v1/payment_intents/{id}/confirm accepts payment_method or "
        "payment_method_data, authenticated by publishable key + client secret as "
        "Stripe.js does (localstripe answers 500 Not implemented)"
    ),
    "decline_codes": (
        "Stripe's decline test cards fail at charge time with Stripe's code and "
        "decline_code (localstripe declines most only when attached, with no decline_code)"
    ),
    "latest_charge_is_id": (
        "PaymentIntent.latest_charge is an id unless expanded, and the removed "
        "`charges` list is gone"
    ),
    "event_api_version": "events carry the SDK's pinned API version",
    "payment_element_js": "the mock Stripe.js offers the Payment Element and confirmPayment",
    "client_retrieve": (
        "GET /v1/payment_intents/{id} with publishable key + client secret "
        "(Stripe.js's retrievePaymentIntent)"
    ),
    "webhook_on_start": "the webhook endpoint is registered at start (localstripe keeps none)",
    "prices_api": (
        "a Prices API (create, retrieve, list by lookup_keys) backed by localstripe plans"
    ),
    "subscription_params": (
        "subscriptions accept items[][price], default_payment_method and off_session, "
        "as the pinned API has them"
    ),
    "subscription_shape": (
        "subscription items carry price and their own current_period_start/end; the "
        "top-level plan, quantity and current_period_* are gone"
    ),
    "invoice_shape": (
        "invoices list their payments (invoice.payments) and a confirmation_secret "
        "instead of invoice.payment_intent, with billing_reason set"
    ),
    "setup_intents": (
        "SetupIntents accept allowed_payment_method_types, attach the method to the "
        "customer when they succeed, keep a decline as requires_payment_method with "
        "last_setup_error, and can be read with publishable key + client secret"
    ),
    "sepa_settles_later": (
        "a SEPA Direct Debit stays processing for a while before it succeeds "
        "(SIMULATOR_SEPA_SETTLE_SECONDS, default 2), as a real debit does for days"
    ),
    "invoice_payments": (
        "GET /v1/invoice_payments lists an invoice's payments, filtered by invoice or "
        "payment[type]=payment_intent&payment[payment_intent] (how the pinned API finds "
        "the invoice of a PaymentIntent; localstripe has no such route)"
    ),
    "subscription_price_change": (
        "POST /v1/subscriptions/{id} with items[0][id]+items[0][price] and "
        'proration_behavior=none swaps the price with no "unused time" credit on the '
        "next invoice (localstripe refuses proration_behavior and always credits it)"
    ),
    "subscription_trial_end_period": (
        "a trial_end set on an active subscription ends its current period there (the "
        "item's current_period_end), and the next renewal starts the new price's period "
        "from it, with nothing charged at the update even when the interval changes "
        "(localstripe invoices at once and keeps start_date + one interval); "
        "the status stays active where Stripe would say trialing"
    ),
    "renewal_helper": (
        "POST /_simulator/subscriptions/{id}/renew bills the next period now "
        "(tests only: Stripe renews on its own clock)"
    ),
    # The ledger's adaptations live in devtools/simulator/ledger.py.
    "balance_transaction_fees": (
        "charge balance transactions carry Stripe's standard fee for the method and "
        "currency (donations.payments.pricing: card 2.9% + 30 in USD, 1.5% + 25 in EUR, "
        "1.5% + 20 in GBP; SEPA Direct Debit 35 in EUR) and net; international card "
        "4000000760000002 pays the international rate (+1.5% in USD, +1.75% in EUR and "
        "GBP), so covering the standard fee falls short (localstripe charges no fee)"
    ),
    "refund_shape": (
        "refunds accept and carry a reason, name their payment_intent however they were "
        "created, refund what is left when no amount is given and refuse more than that "
        "(localstripe: no reason, no payment_intent for a charge's refund, and a refund "
        "without amount refunds the whole charge again)"
    ),
    "list_filters": (
        "payment intents, refunds, payouts, invoices and balance transactions are listed "
        "newest first and filtered by created[gt|gte|lt|lte]; invoices also by customer, "
        "subscription and status, balance transactions by payout, type and source "
        "(localstripe refuses every filter, and lists invoices by date only)"
    ),
    "disputes": (
        "card 4000000000000259 is disputed once charged (charge.dispute.created, a "
        "withdrawal with the 15.00 dispute fee); GET /v1/disputes[/{id}]; submitting "
        "evidence[uncategorized_text]=winning_evidence|losing_evidence closes it won or "
        "lost, POST /v1/disputes/{id}/close loses it (localstripe has no disputes)"
    ),
    "payouts": (
        "a payout in any currency, without amount, pays out the available balance like "
        "an automatic payout, lists its balance transactions, and a failed one returns "
        "them to the balance (localstripe: EUR only, no balance transactions)"
    ),
    # The event stream's adaptations live in devtools/simulator/events.py.
    "refund_events": (
        "a refund sends refund.created and charge.refunded; updating it sends "
        "refund.updated and charge.refund.updated; card 4000000000005126's refunds fail "
        "a moment later (refund.updated, refund.failed, charge.refund.updated) and go back "
        "to the balance (localstripe sends no charge.* or refund.* event)"
    ),
    "renewal_events": (
        "every paid invoice sends invoice.paid, and a renewal sends "
        "customer.subscription.updated (as does a past-due plan paid again); localstripe "
        "sends neither"
    ),
    "failed_renewal_events": (
        "an invoice whose charge fails sends payment_intent.payment_failed and "
        "invoice.payment_failed, and the plan's move to past_due "
        "customer.subscription.updated (localstripe sends nothing)"
    ),
    "upcoming_invoice_event": (
        "POST /_simulator/subscriptions/{id}/upcoming sends invoice.upcoming with the "
        "preview Stripe sends days before a renewal (no id; the subscription under "
        "parent.subscription_details, amount_due, next_payment_attempt at the period's "
        "end); localstripe never sends it (tests only: Stripe sends it on its own clock, "
        "as many days ahead as the account's Billing settings say)"
    ),
    "authentication_failure_event": (
        "a failed 3D Secure challenge sends payment_intent.payment_failed (localstripe "
        "sends nothing)"
    ),
    # Pausing and ending at the period's end live in devtools/simulator/pausing.py.
    "pause_collection": (
        'subscriptions accept pause_collection[behavior|resumes_at] ("" clears it) and '
        "show it; localstripe answers 400 Unexpected pause_collection"
    ),
    "paused_renewal_voided": (
        "the renewal helper, for a subscription paused with behavior void, makes the "
        "period's invoice void (no PaymentIntent, nothing charged, nothing owed later), "
        "sends invoice.voided and customer.subscription.updated; at or after resumes_at "
        "(the helper's at, default the period's end) the pause clears and the period is "
        "billed as usual"
    ),
    "cancel_at_period_end": (
        "a subscription set to cancel_at_period_end shows cancel_at (the period's end), "
        "and the renewal helper cancels it (customer.subscription.deleted) instead of "
        "billing; localstripe keeps the flag and renews anyway"
    ),
    "webhook_redelivery": (
        "a delivery answered non-2xx or not at all is retried on Stripe's backoff, "
        "shortened (SIMULATOR_WEBHOOK_RETRY_SECONDS, default 2,4,8,16; empty for none), "
        "each try signed afresh; GET /_simulator/deliveries lists every try "
        "(localstripe delivers once and signs with the event's creation time)"
    ),
}

STATIC = Path(__file__).parent / "static"


def _patch_state_file(state_path: Path | None) -> None:
    import pickle

    def dump_to_disk(self: resources.Store) -> None:
        if state_path is None:
            return
        tmp = state_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(state_path)

    def try_load_from_disk(self: resources.Store) -> None:
        if state_path is None:
            return
        try:
            with open(state_path, "rb") as f:
                old = pickle.load(f)  # noqa: S301 - our own file, written above
        except FileNotFoundError:
            return
        dict.clear(self)
        dict.update(self, old)
        ledger.reindex()

    resources.Store.dump_to_disk = dump_to_disk
    resources.Store.try_load_from_disk = try_load_from_disk


def _patch_payment_intent_types() -> None:
    original = resources.PaymentIntent.__init__

    def __init__(
        self: Any, *args: Any, allowed_payment_method_types: Any = None, **kwargs: Any
    ) -> None:
        if allowed_payment_method_types is not None:
            kwargs["payment_method_types"] = allowed_payment_method_types
        original(self, *args, **kwargs)
        self.payment_method_types = kwargs.get("payment_method_types") or ["card"]

    resources.PaymentIntent.__init__ = __init__


def _card_number(payment_method_id: str | None) -> str | None:
    if not payment_method_id:
        return None
    try:
        pm = resources.PaymentMethod._api_retrieve(payment_method_id)
    except UserError:
        return None
    return getattr(pm, "_card_number", None)


def _patch_declines() -> None:
    pm_cls = resources.PaymentMethod
    original_charging = pm_cls._charging_is_declined

    def _charging_is_declined(self: Any) -> bool:
        if self.type == "card" and self._card_number in DECLINE_CARDS:
            return True
        return bool(original_charging(self))

    pm_cls._charging_is_declined = _charging_is_declined

    def _set_auth_failure(self: Any) -> None:
        self.status = "failed"
        code, decline, message = DECLINE_CARDS.get(
            _card_number(self.payment_method) or "",
            ("card_declined", "generic_decline", "Your card was declined."),
        )
        self.failure_code = code
        self.failure_message = message
        self._decline_code = decline

    resources.Charge._set_auth_failure = _set_auth_failure

    def _raise_failure(self: Any) -> None:
        raise UserError(
            402,
            self.failure_message,
            {
                "code": self.failure_code,
                "decline_code": getattr(self, "_decline_code", None),
                "charge": self.id,
            },
        )

    resources.Charge._raise_failure = _raise_failure

    def last_payment_error(self: Any) -> dict[str, Any] | None:
        if self._authentication_failed:
            return {
                "type": "card_error",
                "code": "payment_intent_authentication_failure",
                "message": "The provided PaymentMethod has failed authentication.",
            }
        charge = self.latest_charge
        if charge is not None and charge.status == "failed":
            return {
                "type": "card_error",
                "charge": charge.id,
                "code": charge.failure_code,
                "decline_code": getattr(charge, "_decline_code", None),
                "message": charge.failure_message,
            }
        return None

    resources.PaymentIntent.last_payment_error = property(last_payment_error)


def _patch_shapes() -> None:
    original_export = resources.PaymentIntent._export

    def _export(self: Any, expand: list[str] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = original_export(self, expand=expand)
        data.pop("charges", None)
        expanded = any(e.split(".")[0] == "latest_charge" for e in expand or [])
        if not expanded and isinstance(data.get("latest_charge"), dict):
            data["latest_charge"] = data["latest_charge"]["id"]
        return data

    resources.PaymentIntent._export = _export

    original_event_init = resources.Event.__init__

    def event_init(self: Any, type: str, data: Any) -> None:
        original_event_init(self, type, data)
        self.api_version = stripe.api_version
        if isinstance(self.data.get("object"), dict):
            self.data["object"].pop("charges", None)
            charge = self.data["object"].get("latest_charge")
            if isinstance(charge, dict):
                self.data["object"]["latest_charge"] = charge["id"]

    resources.Event.__init__ = event_init


def _price_export(plan: Any) -> dict[str, Any]:
    return {
        "id": plan.id,
        "object": "price",
        "active": plan.active,
        "billing_scheme": "per_unit",
        "created": plan.created,
        "currency": plan.currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": getattr(plan, "_lookup_key", None),
        "metadata": dict(plan.metadata or {}),
        "nickname": None,
        "product": plan.product,
        "recurring": {
            "interval": plan.interval,
            "interval_count": plan.interval_count,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": plan.amount,
        "unit_amount_decimal": str(plan.amount),
    }


def _prices() -> list[Any]:
    return [v for k, v in resources.store.items() if k.startswith("plan:price_")]


async def create_price(request: web.Request) -> web.Response:
    data = await server.get_post_data(request) or {}
    recurring = data.get("recurring") or {}
    lookup_key = data.get("lookup_key")
    if lookup_key and any(getattr(p, "_lookup_key", None) == lookup_key for p in _prices()):
        raise UserError(400, f"A price with lookup_key {lookup_key} already exists.")
    plan = resources.Plan(
        id="price_" + resources.random_id(14),
        amount=data.get("unit_amount"),
        currency=data.get("currency"),
        interval=recurring.get("interval"),
        interval_count=recurring.get("interval_count", 1),
        product=data.get("product"),
        metadata=data.get("metadata"),
    )
    plan._lookup_key = lookup_key
    resources.store.dump_to_disk()
    return server.json_response(_price_export(plan))


async def list_prices(request: web.Request) -> web.Response:
    query = server.unflatten_data(request.query)
    wanted = query.get("lookup_keys")
    if isinstance(wanted, str):
        wanted = [wanted]
    prices = [
        _price_export(p)
        for p in _prices()
        if not wanted or getattr(p, "_lookup_key", None) in wanted
    ]
    return server.json_response(
        {"object": "list", "data": prices, "has_more": False, "url": "/v1/prices"}
    )


async def retrieve_price(request: web.Request, price_id: str) -> web.Response:
    return server.json_response(_price_export(resources.Plan._api_retrieve(price_id)))


def _set_default_method(customer_id: str, method_id: str) -> None:
    method = resources.PaymentMethod._api_retrieve(method_id)
    method.customer = customer_id
    customer = resources.Customer._api_retrieve(customer_id)
    customer.invoice_settings = {
        **(customer.invoice_settings or {}),
        "default_payment_method": method_id,
    }


def _invoice_payments(invoice: Any) -> list[dict[str, Any]]:
    """The invoice's payments as the pinned API lists them (also at /v1/invoice_payments)."""
    intent_id = invoice.payment_intent
    if not intent_id:
        return []
    intent = resources.PaymentIntent._api_retrieve(intent_id)
    return [
        {
            "id": "inpay_" + intent_id[3:],
            "object": "invoice_payment",
            "amount_paid": intent.amount if intent.status == "succeeded" else None,
            "amount_requested": intent.amount,
            "created": intent.created,
            "currency": intent.currency,
            "invoice": invoice.id,
            "is_default": True,
            "livemode": False,
            "payment": {"type": "payment_intent", "payment_intent": intent_id},
            "status": "paid" if intent.status == "succeeded" else "open",
            "status_transitions": {"canceled_at": None, "paid_at": None},
        }
    ]


async def list_invoice_payments(request: web.Request) -> web.Response:
    """GET /v1/invoice_payments filtered by invoice or payment[payment_intent]."""
    if server.get_api_key(request) is None:
        raise UserError(401, "Unauthorized")
    query = server.unflatten_data(request.query)
    wanted_invoice = query.get("invoice")
    payment = query.get("payment") or {}
    wanted_intent = payment.get("payment_intent") if isinstance(payment, dict) else None
    found = []
    for key, invoice in list(resources.store.items()):
        if not key.startswith("invoice:"):
            continue
        if wanted_invoice is not None and invoice.id != wanted_invoice:
            continue
        for entry in _invoice_payments(invoice):
            if wanted_intent is None or entry["payment"]["payment_intent"] == wanted_intent:
                found.append(entry)
    found.sort(key=lambda entry: -entry["created"])
    return server.json_response(
        {"object": "list", "data": found, "has_more": False, "url": "/v1/invoice_payments"}
    )


def _patch_subscriptions() -> None:
    sub_cls = resources.Subscription
    original_init = sub_cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        method = kwargs.pop("default_payment_method", None)
        kwargs.pop("off_session", None)
        for item in kwargs.get("items") or []:
            if "price" in item:
                item["plan"] = item.pop("price")
        if method and kwargs.get("customer"):
            _set_default_method(kwargs["customer"], method)
        self._default_payment_method = method
        self._cancellation_reason = None
        original_init(self, *args, **kwargs)

    sub_cls.__init__ = __init__

    original_update = sub_cls._update

    def _update(
        self: Any,
        default_payment_method: str | None = None,
        proration_behavior: str | None = None,
        **data: Any,
    ) -> Any:
        if default_payment_method:
            _set_default_method(self.customer, default_payment_method)
            self._default_payment_method = default_payment_method
        for item in data.get("items") or []:
            if "price" in item:
                item["plan"] = item.pop("price")
        if proration_behavior not in (None, "none", "create_prorations", "always_invoice"):
            raise UserError(400, f"Invalid proration_behavior: {proration_behavior}")
        period = self.items._list[0]._current_period()
        before = {key for key in resources.store if key.startswith("invoiceitem:")}
        # A trial (trial_end) charges nothing now, even when the interval changes.
        self._invoice_later = data.get("trial_end") is not None
        try:
            result = original_update(self, **data)
        finally:
            self._invoice_later = False
        if proration_behavior == "none":
            # localstripe always credits the "unused time" of the old price.
            for key in [k for k in resources.store if k.startswith("invoiceitem:")]:
                if key not in before and getattr(resources.store[key], "proration", False):
                    del resources.store[key]
        if data.get("trial_end") is not None:
            # A trial until trial_end: the period ends there, and the next
            # renewal starts the new price's first full period from it.
            self._period_override = (period["start"], int(data["trial_end"]))
        return result

    sub_cls._update = _update

    original_create_invoice = sub_cls._create_invoice

    def _create_invoice(self: Any) -> None:
        if getattr(self, "_invoice_later", False):
            return
        first = self.latest_invoice is None
        original_create_invoice(self)
        if self.latest_invoice:
            invoice = resources.Invoice._api_retrieve(self.latest_invoice)
            invoice.billing_reason = "subscription_create" if first else "subscription_cycle"

    sub_cls._create_invoice = _create_invoice

    original_delete = sub_cls._api_delete.__func__

    @classmethod  # type: ignore[misc]
    def _api_delete(cls: Any, id: str) -> Any:
        obj = sub_cls._api_retrieve(id)
        obj._cancellation_reason = getattr(obj, "_cancellation_reason", None) or (
            "cancellation_requested"
        )
        return original_delete(cls, id)

    sub_cls._api_delete = _api_delete

    original_export = sub_cls._export

    def sub_export(self: Any, expand: list[str] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = original_export(self, expand=expand)
        for key in (
            "plan",
            "quantity",
            "tax_percent",
            "current_period_start",
            "current_period_end",
        ):
            data.pop(key, None)
        data["default_payment_method"] = getattr(self, "_default_payment_method", None)
        reason = getattr(self, "_cancellation_reason", None)
        data["cancellation_details"] = {"comment": None, "feedback": None, "reason": reason}
        return data

    sub_cls._export = sub_export

    original_period = resources.SubscriptionItem._current_period

    def _current_period(self: Any) -> dict[str, int]:
        if self._subscription:
            subscription = sub_cls._api_retrieve(self._subscription)
            override = getattr(subscription, "_period_override", None)
            if override is not None:
                return {"start": override[0], "end": override[1]}
        result: dict[str, int] = original_period(self)
        return result

    resources.SubscriptionItem._current_period = _current_period

    item_export = resources.SubscriptionItem._export

    def item_export_new(self: Any, expand: list[str] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = item_export(self, expand=expand)
        data.pop("plan", None)
        data["price"] = _price_export(self.plan)
        period = self._current_period()
        data["current_period_start"] = period["start"]
        data["current_period_end"] = period["end"]
        data["subscription"] = self._subscription
        return data

    resources.SubscriptionItem._export = item_export_new

    invoice_export = resources.Invoice._export

    def invoice_export_new(self: Any, expand: list[str] | None = None) -> dict[str, Any]:
        # `payments` is built below, already expanded.
        expand = [e for e in (expand or []) if e.split(".")[0] != "payments"]
        data: dict[str, Any] = invoice_export(self, expand=expand)
        intent_id = data.pop("payment_intent", None)
        data.pop("charge", None)
        data.pop("subscription", None)
        data.pop("tax_percent", None)
        payments = _invoice_payments(self)
        secret = None
        if intent_id:
            secret = resources.PaymentIntent._api_retrieve(intent_id).client_secret
        data["payments"] = {
            "object": "list",
            "data": payments,
            "has_more": False,
            "url": f"/v1/invoice_payments?invoice={self.id}",
        }
        data["confirmation_secret"] = (
            {"client_secret": secret, "type": "payment_intent"} if secret else None
        )
        return data

    resources.Invoice._export = invoice_export_new


_PENDING: set[object] = set()


def _patch_sepa_settlement() -> None:
    import asyncio
    import os

    delay = float(os.environ.get("SIMULATOR_SEPA_SETTLE_SECONDS", "2"))
    original = resources.Charge._trigger_payment

    def _trigger_payment(self: Any, on_success: Any = None) -> None:
        if not self._is_async_payment_method():
            original(self, on_success)
            return
        self.status = "pending"

        async def settle() -> None:
            await asyncio.sleep(delay)
            txn = resources.BalanceTransaction(
                amount=self.amount,
                currency=self.currency,
                description=self.description,
                exchange_rate=1.0,
                reporting_category="charge",
                source=self.id,
                type="charge",
            )
            self.balance_transaction = txn.id
            self.status = "succeeded"
            if on_success:
                on_success()
            resources.store.dump_to_disk()

        # Keep a reference so the pending settlement is not garbage-collected.
        _PENDING.add(task := asyncio.ensure_future(settle()))
        task.add_done_callback(_PENDING.discard)

    resources.Charge._trigger_payment = _trigger_payment


def _patch_setup_intents() -> None:
    si_cls = resources.SetupIntent
    original_init = si_cls.__init__

    def __init__(
        self: Any, *args: Any, allowed_payment_method_types: Any = None, **kwargs: Any
    ) -> None:
        if allowed_payment_method_types is not None:
            kwargs["payment_method_types"] = allowed_payment_method_types
        original_init(self, *args, **kwargs)
        self._setup_error = None

    si_cls.__init__ = __init__

    original_attach = si_cls._attach_pm

    def _attach_pm(self: Any, pm: Any) -> None:
        self._setup_error = None
        try:
            original_attach(self, pm)
        except UserError as exc:
            code, decline, message = DECLINE_CARDS.get(
                getattr(pm, "_card_number", ""),
                ("card_declined", "generic_decline", "Your card was declined."),
            )
            self.status = "requires_payment_method"
            self.payment_method = None
            self._setup_error = {
                "type": "card_error",
                "code": code,
                "decline_code": decline,
                "message": message,
            }
            exc.body["error"].update(self._setup_error)
            raise
        if self.status == "succeeded" and self.customer:
            pm.customer = self.customer

    si_cls._attach_pm = _attach_pm

    original_confirm = si_cls._api_confirm.__func__

    @classmethod  # type: ignore[misc]
    def _api_confirm(cls: Any, id: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("return_url", None)
        obj = original_confirm(cls, id, *args, **kwargs)
        if obj.status == "succeeded" and obj.customer and obj.payment_method:
            resources.PaymentMethod._api_retrieve(obj.payment_method).customer = obj.customer
        return obj

    si_cls._api_confirm = _api_confirm
    si_cls.last_setup_error = property(lambda self: getattr(self, "_setup_error", None))


async def retrieve_setup_intent(request: web.Request, intent_id: str) -> web.Response:
    data = server.unflatten_data(request.query)
    intent = resources.SetupIntent._api_retrieve(intent_id)
    if not _client_authorised(data, request, intent):
        raise UserError(401, "Unauthorized")
    return server.json_response(intent._export())


async def renew_subscription(request: web.Request, subscription_id: str) -> web.Response:
    subscription = resources.Subscription._api_retrieve(subscription_id)
    override = getattr(subscription, "_period_override", None)
    if override is not None:
        # The trial set by a change of interval ends: the new period starts there.
        subscription._period_override = None
        subscription.start_date = override[1]
        subscription.trial_end = None
    subscription._create_invoice()
    resources.store.dump_to_disk()
    invoice = resources.Invoice._api_retrieve(subscription.latest_invoice)
    return server.json_response(invoice._export())


def _client_authorised(data: dict[str, Any], request: web.Request, intent: Any) -> bool:
    if server.get_api_key(request) is not None:
        return True
    key = data.get("key")
    return (
        isinstance(key, str)
        and key.startswith("pk_")
        and data.get("client_secret") == intent.client_secret
    )


async def retrieve_payment_intent(request: web.Request, intent_id: str) -> web.Response:
    """GET with publishable key + client secret, as Stripe.js's retrievePaymentIntent does."""
    data = server.unflatten_data(request.query)
    intent = resources.PaymentIntent._api_retrieve(intent_id)
    if not _client_authorised(data, request, intent):
        raise UserError(401, "Unauthorized")
    return server.json_response(intent._export())


async def confirm_payment_intent(request: web.Request, intent_id: str) -> web.Response:
    """Confirm with a payment method, as Stripe.js's confirmPayment does."""
    data = await server.get_post_data(request, remove_auth=False) or {}
    intent = resources.PaymentIntent._api_retrieve(intent_id)
    if not _client_authorised(data, request, intent):
        raise UserError(401, "Unauthorized")
    method_data = data.get("payment_method_data")
    method_id = data.get("payment_method")
    if intent.status in ("requires_payment_method", "requires_confirmation") and (
        method_data or method_id
    ):
        if method_data:
            method_data = dict(method_data)
            method_data.setdefault("type", "card")
            allowed = getattr(intent, "payment_method_types", ["card"])
            if method_data["type"] not in allowed:
                raise UserError(400, f"{method_data['type']} is not allowed for this payment")
            try:
                method = resources.PaymentMethod(**method_data)
            except UserError as exc:
                if method_data["type"] == "card":
                    raise UserError(
                        402,
                        "Your card number is incorrect.",
                        {
                            "type": "card_error",
                            "code": "incorrect_number",
                        },
                    ) from exc
                raise
            method_id = method.id
        resources.PaymentMethod._api_retrieve(method_id)
        intent.payment_method = method_id
        intent.latest_charge = None
        intent._authentication_failed = False
    if intent.status != "requires_confirmation":
        raise UserError(
            400,
            f"This PaymentIntent's status is {intent.status}.",
            {
                "code": "payment_intent_unexpected_state",
            },
        )
    try:
        intent._confirm(on_failure_now=intent._report_failure)
    except UserError as exc:
        exc.body["error"]["type"] = "card_error"
        exc.body["error"]["payment_intent"] = intent._export()
        return exc.to_response()
    finally:
        resources.store.dump_to_disk()
    return server.json_response(intent._export())


async def stripe_js(request: web.Request) -> web.Response:
    return web.Response(
        text=(STATIC / "stripe-v3.js").read_text(), content_type="application/javascript"
    )


@web.middleware
async def overrides(request: web.Request, handler: Any) -> web.StreamResponse:
    """Our routes win over localstripe's, which the router would match first."""
    parts = request.path.strip("/").split("/")
    try:
        ledger_response = await ledger.route(request)
        if ledger_response is not None:
            return ledger_response
        events_response = await events.route(request)
        if events_response is not None:
            return events_response
        paused_response = await pausing.route(request)
        if paused_response is not None:
            return paused_response
        if parts == ["v1", "invoice_payments"] and request.method == "GET":
            return await list_invoice_payments(request)
        if parts[:2] == ["v1", "prices"]:
            if request.method == "POST" and len(parts) == 2:
                return await create_price(request)
            if request.method == "GET" and len(parts) == 2:
                return await list_prices(request)
            if request.method == "GET" and len(parts) == 3:
                return await retrieve_price(request, parts[2])
        if (
            parts[:2] == ["v1", "setup_intents"]
            and len(parts) == 3
            and request.method == "GET"
            and "client_secret" in request.query
            and server.get_api_key(request) is None
        ):
            return await retrieve_setup_intent(request, parts[2])
        if (
            parts[:2] == ["_simulator", "subscriptions"]
            and parts[3:] == ["renew"]
            and request.method == "POST"
        ):
            return await renew_subscription(request, parts[2])
        if parts[:2] == ["v1", "payment_intents"] and len(parts) >= 3:
            if request.method == "POST" and parts[3:] == ["confirm"]:
                return await confirm_payment_intent(request, parts[2])
            if (
                request.method == "GET"
                and len(parts) == 3
                and "client_secret" in request.query
                and server.get_api_key(request) is None
            ):
                return await retrieve_payment_intent(request, parts[2])
        if request.method == "GET" and request.path == "/js.stripe.com/v3/":
            return await stripe_js(request)
    except UserError as exc:
        return exc.to_response()
    return await handler(request)


def build_app(
    state_path: Path | None, webhooks: list[tuple[str, str]], from_scratch: bool = False
) -> web.Application:
    """The localstripe app with every adaptation applied."""
    from localstripe.webhooks import register_webhook

    _patch_state_file(state_path)
    _patch_payment_intent_types()
    _patch_declines()
    _patch_shapes()
    _patch_subscriptions()
    _patch_setup_intents()
    _patch_sepa_settlement()
    pausing.apply()
    ledger.apply()
    if not from_scratch:
        resources.store.try_load_from_disk()
    for number, (url, secret) in enumerate(webhooks):
        register_webhook(f"wh_{number}", url, secret, None)
    app = server.app
    if overrides not in app.middlewares:
        app.middlewares.insert(0, overrides)
    events.apply(app)
    return app


def describe() -> str:
    return json.dumps(DIFFERENCES, indent=2)
