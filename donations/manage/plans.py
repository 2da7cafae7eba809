"""Changing a plan from /manage: its amount and interval, and its payment method.

A change is proposed (validated against the ask's limits, nothing stored),
shown to the supporter with the new amount and the date of the next
payment, and applied only when they confirm it. The ledger follows Stripe:
the plan's amount and interval change once Stripe has answered with the
subscription at the new price. Each Stripe call that creates or changes
something carries a key derived from the plan's row and the change, so a
double click or a retry asks Stripe for the same thing once.

Functions flush; the request commits. Staff's upgrade links (the same
change, proposed by the newsroom) use :func:`apply_change` too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from donations.ask.config import GiftError, parse_gift
from donations.ask.services import load_ask_config
from donations.db import db
from donations.mail.models import EmailMessage
from donations.manage.services import record
from donations.money import Money
from donations.payments.gateway import GatewayError, SetupSnapshot, SubscriptionSnapshot
from donations.payments.notices import refresh_plan_card
from donations.payments.recurring import sync_subscription
from donations.payments.services import gateway
from donations.supporters.models import Frequency, PlanStatus, RecurringPlan
from donations.supporters.services import email_supporter

log = logging.getLogger(__name__)

# The intervals a plan may move between (a one-off gift is not a plan).
PLAN_FREQUENCIES = (Frequency.MONTHLY, Frequency.ANNUAL)
# Plans whose payment method can be replaced: they can still charge.
LIVE_PLANS = (PlanStatus.ACTIVE, PlanStatus.PAST_DUE, PlanStatus.UNPAID)
_STRIPE_INTERVALS = {"month": Frequency.MONTHLY, "year": Frequency.ANNUAL}


def _not_changed() -> str:
    from flask_babel import gettext as _

    return _("Our payment provider did not make the change. Nothing was changed; please try again.")


class ChangeRefused(ValueError):
    """The change cannot be made; the message says why, for the supporter."""


@dataclass(frozen=True)
class PlanChange:
    """What a plan would become: the gift, the fee cover with it, and how often."""

    plan_id: int
    gift: Money
    fee_cover: int
    frequency: Frequency

    @property
    def total(self) -> Money:
        return Money(self.gift.amount + self.fee_cover, self.gift.currency)


def change_limit() -> str:
    """Changes (each creates or changes Stripe objects) per supporter and per client."""
    return str(current_app.config["SETTINGS"].manage_change_rate_limit)


def can_change(plan: RecurringPlan) -> bool:
    """Amount and interval change only on a plan in good standing (not past due)."""
    return plan.status is PlanStatus.ACTIVE and plan.stripe_subscription_id is not None


def can_replace_method(plan: RecurringPlan) -> bool:
    return plan.status in LIVE_PLANS and plan.stripe_subscription_id is not None


def propose_change(
    plan: RecurringPlan,
    amount: str,
    frequency: str,
    locale: str | None = None,
    *,
    cover_fee: bool | None = None,
) -> PlanChange:
    """The change asked for, within the ask's limits for the plan's currency and the
    interval; raises ChangeRefused (or GiftError) with the reader's message.

    ``cover_fee``: None keeps the plan's choice (a plan that covers the fee goes on
    covering it, for the new gift); True proposes covering it (an upgrade link).
    """
    from flask_babel import gettext as _

    if not can_change(plan):
        raise ChangeRefused(_("This plan cannot be changed now."))
    if frequency not in {f.value for f in PLAN_FREQUENCIES}:
        raise GiftError(_("Choose how often you would like to give."), "frequency")
    config = load_ask_config()
    gift = parse_gift(config, frequency, plan.currency, amount, locale)
    fee_cover = 0
    covering = bool(plan.fee_cover_amount) if cover_fee is None else cover_fee
    if covering and plan.method:
        cover = config.fee_cover_for(gift, plan.method)
        fee_cover = cover.amount if cover is not None else 0
    if cover_fee and not fee_cover:
        raise ChangeRefused(_("Covering the processing fee is not offered for this plan."))
    change = PlanChange(plan.id, gift, fee_cover, Frequency(frequency))
    if change.total == plan.charge_total and change.frequency is plan.frequency:
        raise ChangeRefused(_("That is what you give already."))
    return change


def next_payment_after_change(plan: RecurringPlan) -> datetime | None:
    """When the changed plan is next charged: where the current period ends."""
    moment = plan.next_renewal_at
    if moment is not None and moment.tzinfo is None:  # SQLite gives naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment


def apply_change(plan: RecurringPlan, change: PlanChange) -> SubscriptionSnapshot:
    """Move the subscription to the new price from its next payment, then the ledger.

    Raises ChangeRefused when Stripe refuses or cannot be reached (nothing
    in the ledger has changed then).
    """
    from flask_babel import gettext as _

    if change.plan_id != plan.id or not can_change(plan):
        raise ChangeRefused(_("This plan cannot be changed now."))
    assert plan.stripe_subscription_id is not None
    interval = str(change.frequency)
    target = f"{change.total.currency}-{change.total.amount}-{interval}"
    try:
        price_id = gateway().recurring_price(
            amount=change.total,
            interval=interval,
            idempotency_key=f"plan-{plan.id}-price-{target}",
        )
        snapshot = gateway().change_subscription_price(
            plan.stripe_subscription_id,
            price_id=price_id,
            new_interval=change.frequency is not plan.frequency,
            # The same change from the same price is one request to Stripe.
            idempotency_key=f"plan-{plan.id}-change-{plan.stripe_price_id}-to-{price_id}",
        )
    except GatewayError as exc:
        log.warning("plan %s: Stripe did not change the subscription: %s", plan.id, exc)
        raise ChangeRefused(_not_changed()) from exc
    if snapshot.amount != change.total or _STRIPE_INTERVALS.get(snapshot.interval) != (
        change.frequency
    ):
        log.error("plan %s: subscription %s is not at the new price", plan.id, snapshot.id)
        raise ChangeRefused(_not_changed())
    previous = (plan.charge_total, plan.frequency)
    plan.amount = change.gift.amount
    plan.fee_cover_amount = change.fee_cover
    plan.frequency = change.frequency
    plan.stripe_price_id = price_id
    sync_subscription(snapshot)
    db.session.flush()
    log.info(
        "plan %s changed from %s %s to %s %s",
        plan.id,
        previous[0],
        previous[1],
        change.total,
        change.frequency,
    )
    return snapshot


def queue_plan_email(
    plan: RecurringPlan, template: str, dedupe_key: str, **context: Any
) -> EmailMessage | None:
    """An email to the plan's supporter about the plan, stating what it is now."""
    return email_supporter(
        plan.supporter,
        template,
        dedupe_key=dedupe_key,
        locale=plan.locale,
        context={
            "amount": plan.charge_total.amount,
            "currency": plan.currency,
            "frequency": str(plan.frequency),
            **context,
        },
    )


def queue_change_email(plan: RecurringPlan, change_id: str) -> None:
    """The confirmation of a change, at most once per change."""
    queue_plan_email(
        plan,
        "plan_changed",
        f"plan-changed:{plan.id}:{change_id}"[:200],
        next_renewal_at=plan.next_renewal_at.isoformat() if plan.next_renewal_at else None,
    )


def record_change(
    plan: RecurringPlan,
    previous: tuple[Money, str],
    snapshot: SubscriptionSnapshot,
    *,
    source: str,
    by: str,
    **details: Any,
) -> None:
    """The change just applied, on the supporter's timeline: from ``previous`` (total,
    frequency) to what the plan is now, at Stripe's subscription and price."""
    record(
        "plan_changed",
        plan.supporter,
        source=source,
        target=f"plan:{plan.id}",
        by=by,
        previous_amount=previous[0],
        previous_frequency=previous[1],
        amount=plan.charge_total,
        frequency=plan.frequency.value,
        subscription=snapshot.id,
        price=plan.stripe_price_id,
        **details,
    )


# -- the payment method ------------------------------------------------------------------


def open_method_setup(plan: RecurringPlan) -> SetupSnapshot:
    """The SetupIntent the page collects the new payment method with (reused while open)."""
    from donations.support.services import open_setup_for_retry

    return open_setup_for_retry(plan, "manage")


@dataclass(frozen=True)
class MethodOutcome:
    """Where replacing the method stands.

    ``state``: "collect" (no method saved yet), "saved" (the plan's default now),
    "paid" (saved, and the open invoice paid with it), "authenticate" (the
    invoice's payment waits for the bank: ``client_secret`` is its intent's),
    "failed" (saved, but the open invoice's payment failed again).
    """

    state: str
    client_secret: str | None = None
    method_type: str | None = None


def use_new_method(plan: RecurringPlan, *, pay_now: bool) -> MethodOutcome:
    """Make the SetupIntent's method the subscription's default; with ``pay_now``,
    pay a past-due plan's open invoice with it. Safe to call again (page reloads)."""
    outcome = _use_new_method(plan, pay_now=pay_now)
    if outcome.state != "collect":
        # The card the plan now charges, as Stripe has it: what the account page and
        # the card-expiry notices speak of (recording the last payment, above, set
        # that payment's card).
        refresh_plan_card(plan)
    return outcome


def _use_new_method(plan: RecurringPlan, *, pay_now: bool) -> MethodOutcome:
    setup_id = plan.stripe_setup_intent_id
    assert plan.stripe_subscription_id is not None
    if setup_id is None:
        return MethodOutcome("collect")
    setup = gateway().retrieve_setup(setup_id)
    if setup.status != "succeeded" or setup.payment_method_id is None:
        return MethodOutcome("collect", setup.client_secret)
    subscription = gateway().retrieve_subscription(plan.stripe_subscription_id)
    if subscription.default_payment_method_id != setup.payment_method_id:
        gateway().update_default_payment_method(
            customer_id=subscription.customer_id,
            subscription_id=subscription.id,
            payment_method_id=setup.payment_method_id,
        )
        plan.method = setup.method_type
    invoice = subscription.latest_invoice
    if not pay_now or invoice is None or invoice.status != "open":
        sync_subscription(gateway().retrieve_subscription(subscription.id))
        return MethodOutcome("saved", method_type=setup.method_type)
    intent = (
        gateway().retrieve_payment(invoice.payment_intent_id) if invoice.payment_intent_id else None
    )
    if intent is not None and intent.status == "requires_action":
        return MethodOutcome("authenticate", intent.client_secret, setup.method_type)
    if intent is None or intent.status in ("requires_payment_method", "requires_confirmation"):
        try:
            gateway().pay_invoice(invoice.id, idempotency_key=f"manage-pay-{invoice.id}-{setup.id}")
        except GatewayError as exc:
            log.info(
                "plan %s: invoice %s not paid with the new method: %s", plan.id, invoice.id, exc
            )
    subscription = gateway().retrieve_subscription(subscription.id)
    sync_subscription(subscription)
    paid = subscription.latest_invoice
    if paid is not None and paid.status == "paid":
        return MethodOutcome("paid", method_type=setup.method_type)
    if paid is not None and paid.payment_intent_id:
        intent = gateway().retrieve_payment(paid.payment_intent_id)
        if intent.status == "requires_action":
            return MethodOutcome("authenticate", intent.client_secret, setup.method_type)
    return MethodOutcome("failed", method_type=setup.method_type)
