"""Simulator adaptations for the ledger: fees, list filters, disputes, payouts.

localstripe (1.15.10) records charges and refunds but charges no fee, has no
disputes, pays out nothing it can account for, and lists objects without the
``created`` / ``payout`` filters reconciliation relies on. These patches add
just enough of current Stripe for the ledger's paths; each one is named in
``adapt.DIFFERENCES`` and checked against the running simulator by a test.

Test hooks follow Stripe's own test mode where it has one:
- card ``4000000000000259`` is disputed right after it is charged, and a
  dispute is won or lost by submitting ``winning_evidence`` or
  ``losing_evidence`` as ``evidence[uncategorized_text]``
  (https://docs.stripe.com/testing#disputes);
- a payout created without ``amount`` pays out the whole available balance
  of its currency, as an automatic payout does, and ``status=paid|failed``
  at creation (localstripe's own hook) settles it at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError
from localstripe.webhooks import schedule_webhook

from donations.payments.pricing import STANDARD_PRICING, Price

DISPUTE_CARD = "4000000000000259"
# Stripe's dispute fee in the US: https://stripe.com/pricing
DISPUTE_FEE = 1500


# A card issued outside the account's region costs more: Stripe's test card
# for Brazil (https://docs.stripe.com/testing#international-cards).
INTERNATIONAL_CARD = "4000000760000002"
# What an international card adds to the standard card rate, in basis points:
# +1.5 % in the US, 3.25 % instead of 1.5 % in the EEA and the UK.
INTERNATIONAL_SURCHARGE_BPS = {"USD": 150, "EUR": 175, "GBP": 175}


def processing_fee(amount: int, currency: str, method_type: str, card_number: str | None) -> int:
    """Stripe's standard fee for the charge (the price table the app's defaults come from)."""
    code = currency.upper()
    by_currency = STANDARD_PRICING.get(method_type) or STANDARD_PRICING["card"]
    price = by_currency.get(code) or STANDARD_PRICING["card"]["USD"]
    if method_type == "card" and card_number == INTERNATIONAL_CARD:
        price = Price(price.rate_bps + INTERNATIONAL_SURCHARGE_BPS.get(code, 150), price.fixed)
    return price.fee(amount)


def _new_transaction(
    *,
    amount: int,
    currency: str,
    type: str,
    source: str,
    fee: int = 0,
    reporting_category: str | None = None,
    description: str | None = None,
) -> Any:
    """A balance transaction of any type (localstripe only builds charges and refunds)."""
    txn = resources.BalanceTransaction.__new__(resources.BalanceTransaction)
    resources.StripeObject.__init__(txn)
    txn.amount = amount
    txn.available_on = txn.created
    txn.currency = currency
    txn.description = description
    txn.exchange_rate = None
    txn.fee = fee
    txn.fee_details = _fee_details(fee, currency)
    txn.reporting_category = reporting_category or type
    txn.source = source
    txn.status = "available"
    txn.type = type
    txn._paid_out_in = None
    return txn


def _fee_details(fee: int, currency: str) -> list[dict[str, Any]]:
    if not fee:
        return []
    return [
        {
            "amount": fee,
            "application": None,
            "currency": currency,
            "description": "Stripe processing fees",
            "type": "stripe_fee",
        }
    ]


# -- fees ---------------------------------------------------------------------


def patch_fees() -> None:
    original_init = resources.BalanceTransaction.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._paid_out_in = None
        if self.type == "charge":
            charge = resources.Charge._api_retrieve(self.source)
            method = resources.PaymentMethod._api_retrieve(charge.payment_method)
            self.fee = processing_fee(
                self.amount, self.currency, method.type, getattr(method, "_card_number", None)
            )
            self.fee_details = _fee_details(self.fee, self.currency)

    resources.BalanceTransaction.__init__ = __init__


# -- refunds ---------------------------------------------------------------------


REFUND_REASONS = (None, "duplicate", "fraudulent", "requested_by_customer")


def patch_refunds() -> None:
    original_init = resources.Refund.__init__

    def __init__(self: Any, *args: Any, reason: Any = None, **kwargs: Any) -> None:
        if reason not in REFUND_REASONS:
            raise UserError(400, "Invalid reason: " + str(reason))
        charge_id = kwargs.get("charge")
        if charge_id is None and kwargs.get("payment_intent"):
            intent = resources.PaymentIntent._api_retrieve(kwargs["payment_intent"])
            charge_id = intent.latest_charge.id if intent.latest_charge else None
        if charge_id is not None:
            charge = resources.Charge._api_retrieve(charge_id)
            left = charge.amount - charge.amount_refunded
            amount = resources.try_convert_to_int(kwargs.get("amount"))
            if amount is None:
                kwargs["amount"] = left  # Stripe refunds what is left, not the whole charge
            elif type(amount) is int and amount > left:
                raise UserError(
                    400, f"Refund amount ({amount}) is greater than unrefunded amount ({left})."
                )
            if left <= 0:
                raise UserError(400, f"Charge {charge_id} has already been refunded.")
        original_init(self, *args, **kwargs)
        self.reason = reason
        if self.payment_intent is None:
            self.payment_intent = resources.Charge._api_retrieve(self.charge).payment_intent

    resources.Refund.__init__ = __init__


# -- list filters ----------------------------------------------------------------


def _int(value: Any) -> int | None:
    converted = resources.try_convert_to_int(value)
    if converted is None:
        return None
    if type(converted) is not int:
        raise UserError(400, "Bad request")
    return converted


def _created_matches(created: Any) -> Callable[[Any], bool]:
    """Stripe's ``created`` filter: an exact timestamp or gt/gte/lt/lte bounds."""
    if created is None:
        return lambda obj: True
    if not isinstance(created, dict):
        exact = _int(created)
        return lambda obj: obj.created == exact
    unknown = set(created) - {"gt", "gte", "lt", "lte"}
    if unknown:
        raise UserError(400, "Unexpected created[" + ", ".join(sorted(unknown)) + "]")
    bounds = {op: _int(value) for op, value in created.items()}

    def matches(obj: Any) -> bool:
        c = obj.created
        return (
            ("gt" not in bounds or c > bounds["gt"])
            and ("gte" not in bounds or c >= bounds["gte"])
            and ("lt" not in bounds or c < bounds["lt"])
            and ("lte" not in bounds or c <= bounds["lte"])
        )

    return matches


# -- one type's objects without reading the whole store ---------------------------------

# The store's keys by object type ("refund", "payment_intent", ...), in the
# order they were added. localstripe lists by scanning every object, and the
# app lists a charge's refunds with each payment, so each payment would cost
# more than the one before: a long load test would slow itself down.
_KEYS: dict[str, dict[str, None]] = {}


def objects_of(kind: str) -> list[Any]:
    """Every stored object of ``kind`` (``cls.object``), oldest first."""
    store = resources.store
    return [store[key] for key in _KEYS.get(kind, ()) if key in store]


def reindex() -> None:
    """Index the whole store again (after it was loaded from its file)."""
    _KEYS.clear()
    for key in resources.store:
        _KEYS.setdefault(key.partition(":")[0], {})[key] = None


def patch_store_index() -> None:
    set_item, del_item = resources.Store.__setitem__, resources.Store.__delitem__

    def __setitem__(self: resources.Store, key: str, value: Any) -> None:
        set_item(self, key, value)
        _KEYS.setdefault(key.partition(":")[0], {})[key] = None

    def __delitem__(self: resources.Store, key: str) -> None:
        del_item(self, key)
        _KEYS.get(key.partition(":")[0], {}).pop(key, None)

    resources.Store.__setitem__ = __setitem__
    resources.Store.__delitem__ = __delitem__
    reindex()


def _listing(
    cls: Any, url: str, limit: Any, starting_after: Any, keep: Iterable[Callable[[Any], bool]]
) -> Any:
    """Every stored ``cls`` object that passes ``keep``, newest first, as Stripe lists them."""
    li = resources.List(url, limit=limit, starting_after=starting_after)
    found = objects_of(cls.object)
    checks = list(keep)
    found = [obj for obj in found if all(check(obj) for check in checks)]
    # Newest first; objects made within the same second keep reverse creation order.
    li._list = [obj for _, obj in sorted(enumerate(found), key=lambda p: (-p[1].created, -p[0]))]
    return li


def _attr_is(name: str, value: Any) -> Callable[[Any], bool]:
    if value is None:
        return lambda obj: True
    return lambda obj: getattr(obj, name, None) == value


def patch_list_filters() -> None:
    def list_payment_intents(
        cls: Any,
        url: str,
        limit: Any = None,
        starting_after: Any = None,
        created: Any = None,
        customer: Any = None,
    ) -> Any:
        return _listing(
            cls,
            url,
            limit,
            starting_after,
            [_created_matches(created), _attr_is("customer", customer)],
        )

    def list_refunds(
        cls: Any,
        url: str,
        charge: Any = None,
        payment_intent: Any = None,
        limit: Any = None,
        starting_after: Any = None,
        created: Any = None,
    ) -> Any:
        if payment_intent is not None:
            intent = resources.PaymentIntent._api_retrieve(payment_intent)
            charge = intent.latest_charge.id if intent.latest_charge else "none"
        return _listing(
            cls, url, limit, starting_after, [_created_matches(created), _attr_is("charge", charge)]
        )

    def list_payouts(
        cls: Any,
        url: str,
        limit: Any = None,
        starting_after: Any = None,
        created: Any = None,
        status: Any = None,
    ) -> Any:
        return _listing(
            cls, url, limit, starting_after, [_created_matches(created), _attr_is("status", status)]
        )

    def list_transactions(
        cls: Any,
        url: str,
        limit: Any = None,
        starting_after: Any = None,
        created: Any = None,
        payout: Any = None,
        type: Any = None,
        source: Any = None,
        currency: Any = None,
    ) -> Any:
        keep = [
            _created_matches(created),
            _attr_is("type", type),
            _attr_is("source", source),
            _attr_is("currency", currency),
        ]
        if payout is not None:
            listed = set(resources.Payout._api_retrieve(payout)._transaction_ids)
            keep.append(lambda txn: txn.id in listed)
        return _listing(cls, url, limit, starting_after, keep)

    def list_invoices(
        cls: Any,
        url: str,
        limit: Any = None,
        starting_after: Any = None,
        created: Any = None,
        customer: Any = None,
        subscription: Any = None,
        status: Any = None,
    ) -> Any:
        return _listing(
            cls,
            url,
            limit,
            starting_after,
            [
                _created_matches(created),
                _attr_is("customer", customer),
                _attr_is("subscription", subscription),
                _attr_is("status", status),
            ],
        )

    resources.Invoice._api_list_all = classmethod(list_invoices)
    resources.PaymentIntent._api_list_all = classmethod(list_payment_intents)
    resources.Refund._api_list_all = classmethod(list_refunds)
    resources.Payout._api_list_all = classmethod(list_payouts)
    resources.BalanceTransaction._api_list_all = classmethod(list_transactions)


# -- disputes ---------------------------------------------------------------------


class Dispute(resources.StripeObject):  # type: ignore[misc]
    """A card dispute (chargeback), as the pinned API shapes it."""

    object = "dispute"
    _id_prefix = "du_"

    def __init__(self, charge: Any, reason: str = "fraudulent") -> None:
        super().__init__()
        self.amount = charge.amount
        self.currency = charge.currency
        self.charge = charge.id
        self.payment_intent = charge.payment_intent
        self.reason = reason
        self.status = "needs_response"
        self.is_charge_refundable = False
        self.metadata: dict[str, str] = {}
        self.evidence = {"uncategorized_text": None}
        self.evidence_details = {
            "due_by": self.created + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        }
        withdrawal = _new_transaction(
            amount=-charge.amount,
            currency=charge.currency,
            type="adjustment",
            reporting_category="dispute",
            source=self.id,
            fee=DISPUTE_FEE,
            description=f"Chargeback withdrawal for {charge.id}",
        )
        self._transaction_ids = [withdrawal.id]

    @property
    def balance_transactions(self) -> list[dict[str, Any]]:
        return [
            resources.BalanceTransaction._api_retrieve(txn_id)._export()
            for txn_id in self._transaction_ids
        ]

    def _close(self, won: bool) -> None:
        self.status = "won" if won else "lost"
        if won:
            reinstated = _new_transaction(
                amount=self.amount,
                currency=self.currency,
                type="adjustment",
                reporting_category="dispute_reversal",
                source=self.id,
                description=f"Chargeback reversal for {self.charge}",
            )
            self._transaction_ids.append(reinstated.id)
            schedule_webhook(resources.Event("charge.dispute.funds_reinstated", self))
        schedule_webhook(resources.Event("charge.dispute.closed", self))


def _card_number(charge: Any) -> str | None:
    try:
        method = resources.PaymentMethod._api_retrieve(charge.payment_method)
    except UserError:
        return None
    return getattr(method, "_card_number", None)


def patch_disputes() -> None:
    original_trigger = resources.Charge._trigger_payment

    def _trigger_payment(self: Any, on_success: Any = None) -> None:
        def disputed_after_success() -> None:
            if on_success:
                on_success()
            if _card_number(self) == DISPUTE_CARD:
                dispute = Dispute(self)
                schedule_webhook(resources.Event("charge.dispute.created", dispute))
                schedule_webhook(resources.Event("charge.dispute.funds_withdrawn", dispute))

        original_trigger(self, on_success=disputed_after_success)

    resources.Charge._trigger_payment = _trigger_payment
    resources.Charge.disputed = property(
        lambda self: any(d.charge == self.id for d in objects_of("dispute"))
    )


def _dispute(dispute_id: str) -> Dispute:
    obj = resources.store.get("dispute:" + dispute_id)
    if obj is None:
        raise UserError(404, "No such dispute: " + dispute_id)
    assert isinstance(obj, Dispute)
    return obj


async def list_disputes(request: web.Request) -> web.Response:
    data = server.unflatten_data(request.query)
    expand = data.pop("expand", None)
    li = _listing(
        Dispute,
        "/v1/disputes",
        data.pop("limit", None),
        data.pop("starting_after", None),
        [
            _created_matches(data.pop("created", None)),
            _attr_is("charge", data.pop("charge", None)),
            _attr_is("payment_intent", data.pop("payment_intent", None)),
        ],
    )
    if data:
        raise UserError(400, "Unexpected " + ", ".join(data))
    return server.json_response(li._export(expand=expand))


async def retrieve_dispute(request: web.Request, dispute_id: str) -> web.Response:
    data = server.unflatten_data(request.query)
    return server.json_response(_dispute(dispute_id)._export(expand=data.get("expand")))


async def update_dispute(request: web.Request, dispute_id: str) -> web.Response:
    """Submitting evidence closes the dispute as Stripe's test mode does."""
    dispute = _dispute(dispute_id)
    data = await server.get_post_data(request) or {}
    if dispute.status in ("won", "lost"):
        raise UserError(400, "This dispute is already closed.")
    evidence = data.get("evidence") or {}
    text = evidence.get("uncategorized_text") if isinstance(evidence, dict) else None
    if text is not None:
        dispute.evidence = {"uncategorized_text": text}
    if isinstance(data.get("metadata"), dict):
        dispute.metadata.update(data["metadata"])
    schedule_webhook(resources.Event("charge.dispute.updated", dispute))
    if text in ("winning_evidence", "losing_evidence"):
        dispute._close(won=text == "winning_evidence")
    resources.store.dump_to_disk()
    return server.json_response(dispute._export())


async def close_dispute(request: web.Request, dispute_id: str) -> web.Response:
    """Accepting a dispute loses it."""
    dispute = _dispute(dispute_id)
    if dispute.status in ("won", "lost"):
        raise UserError(400, "This dispute is already closed.")
    dispute._close(won=False)
    resources.store.dump_to_disk()
    return server.json_response(dispute._export())


# -- payouts ------------------------------------------------------------------------


def _available(currency: str) -> list[Any]:
    return [
        txn
        for txn in objects_of("balance_transaction")
        if txn.currency == currency
        and txn.type not in ("payout", "payout_failure")
        and getattr(txn, "_paid_out_in", None) is None
    ]


def patch_payouts() -> None:
    def __init__(
        self: Any,
        amount: Any = None,
        currency: Any = None,
        description: Any = None,
        metadata: Any = None,
        statement_descriptor: Any = None,
        method: Any = None,
        status: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        if not isinstance(currency, str) or not currency:
            raise UserError(400, "Missing required param: currency.")
        if status not in (None, "paid", "pending", "failed"):
            raise UserError(400, "Bad request")
        included = _available(currency)
        balance = sum(txn.amount - txn.fee for txn in included)
        amount = _int(amount)
        if amount is None:
            amount = balance
        if amount <= 0 or amount > balance:
            raise UserError(400, "You have insufficient funds in your Stripe account.")
        resources.StripeObject.__init__(self)
        self.amount = amount
        self.currency = currency
        self.description = description or ""
        self.destination = "ba_" + resources.random_id(24)
        self.metadata = metadata or {}
        self.method = method or "standard"
        self.source_type = "card"
        self.statement_descriptor = statement_descriptor or ""
        self.arrival_date = int(time.time() + 2 * 86400)
        # Like an automatic payout: its balance transactions can be listed.
        self.automatic = True
        self.failure_balance_transaction = None
        self.failure_code = None
        self.failure_message = None
        self.original_payout = None
        self.reversed_by = None
        self.reconciliation_status = "completed"
        self.status = status or "pending"
        self.type = "bank_account"
        own = _new_transaction(amount=-amount, currency=currency, type="payout", source=self.id)
        self.balance_transaction = own.id
        for txn in included:
            txn._paid_out_in = self.id
        self._transaction_ids = [txn.id for txn in included] + [own.id]
        schedule_webhook(resources.Event("payout.created", self))
        if status == "failed":
            returned = _new_transaction(
                amount=amount, currency=currency, type="payout_failure", source=self.id
            )
            self.failure_balance_transaction = returned.id
            self.failure_code = "account_closed"
            self.failure_message = "The bank account has been closed."
            # The money goes back to the balance and into a later payout.
            for txn in included:
                txn._paid_out_in = None
        if status in ("paid", "failed"):
            schedule_webhook(resources.Event(f"payout.{status}", self))

    resources.Payout.__init__ = __init__


# -- routes ---------------------------------------------------------------------------


async def route(request: web.Request) -> web.StreamResponse | None:
    """The ledger's override routes, or None when the request is not one of them."""
    parts = request.path.strip("/").split("/")
    if parts[:2] != ["v1", "disputes"]:
        return None
    if server.get_api_key(request) is None:
        raise UserError(401, "Unauthorized")
    if request.method == "GET" and len(parts) == 2:
        return await list_disputes(request)
    if request.method == "GET" and len(parts) == 3:
        return await retrieve_dispute(request, parts[2])
    if request.method == "POST" and len(parts) == 3:
        return await update_dispute(request, parts[2])
    if request.method == "POST" and parts[3:] == ["close"]:
        return await close_dispute(request, parts[2])
    return None


def apply() -> None:
    patch_store_index()
    patch_fees()
    patch_refunds()
    patch_list_filters()
    patch_disputes()
    patch_payouts()
