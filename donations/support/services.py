"""Starting a checkout: the supporter, the donation and its PaymentIntent."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select

from donations.ask.services import load_ask_config
from donations.db import db, insert_or_fetch
from donations.mail.addresses import normalise_address
from donations.money import Money
from donations.payments.gateway import PaymentSnapshot, SetupSnapshot, SubscriptionSnapshot
from donations.payments.recurring import (
    PLAN_LINK_MAX_AGE,
    plan_link_serializer,
    sync_subscription,
)
from donations.payments.services import gateway, record_payment
from donations.supporters.consents import request_consent
from donations.supporters.models import (
    ConsentTopic,
    Donation,
    Frequency,
    PlanStatus,
    RecurringPlan,
    Supporter,
)
from donations.supporters.services import find_or_create_supporter

log = logging.getLogger(__name__)


class CheckoutConflict(Exception):
    """The attempt key was already used for a different checkout."""


def method_types(currency: str, frequency: Frequency) -> list[str]:
    """Payment methods switched on for this currency and frequency, card first."""
    return load_ask_config().methods_for(currency, frequency)


def checkout_methods(checkout: Donation | RecurringPlan) -> list[str]:
    """The methods this checkout may be paid by.

    A covered fee was worked out for one method's price (the reader chose it
    next to the cover), so the payment is offered by that method only.
    """
    offered = method_types(checkout.currency, checkout.frequency)
    if checkout.fee_cover_amount and checkout.method in offered:
        return [str(checkout.method)]
    return offered


@dataclass(frozen=True)
class CheckoutRequest:
    """What a reader asked for on the details form, validated."""

    gift: Money
    frequency: Frequency
    attempt_key: str
    email: str
    name: str
    country: str | None
    newsletter_opt_in: bool
    locale: str
    fee_cover: int = 0
    # The method the fee cover was priced for (None without a cover).
    fee_cover_method: str | None = None
    campaign: str | None = None
    source: str | None = None
    reminder_id: int | None = None
    article: str | None = None
    variant: str | None = None
    upsell: str | None = None


Row = TypeVar("Row", Donation, RecurringPlan)


def _attempt_row(model: type[Row], request: CheckoutRequest) -> Row:
    """The donation or plan for this checkout attempt, created on first use.

    Posting the same attempt twice -- a double click, a refresh, the back
    button -- finds the same row; posting it twice at the same instant loses
    the unique-constraint race gracefully and resumes the winner's row.
    """
    row = db.session.scalar(select(model).where(model.attempt_key == request.attempt_key))
    if row is None:
        row = _insert_attempt_row(model, request)
    if (
        row.supporter.email_key != normalise_address(request.email)
        or row.gift != request.gift
        or row.fee_cover_amount != request.fee_cover
        or (request.fee_cover and row.method != request.fee_cover_method)
    ):
        raise CheckoutConflict(request.attempt_key)
    return row


def _insert_attempt_row(model: type[Row], request: CheckoutRequest) -> Row:
    """A new row for this attempt, or the row a concurrent post of it inserted."""
    # Nothing stored for this address is read or changed here: the row
    # keeps what this reader typed, and a successful payment applies it
    # to the supporter (supporters.services.apply_paid_checkout).
    supporter = find_or_create_supporter(email=request.email, locale=request.locale)
    row, created = insert_or_fetch(
        model,
        {"attempt_key": request.attempt_key},
        {
            "public_token": secrets.token_urlsafe(24),
            "supporter": supporter,
            "amount": request.gift.amount,
            "fee_cover_amount": request.fee_cover,
            "method": request.fee_cover_method if request.fee_cover else None,
            "currency": request.gift.currency,
            "frequency": request.frequency,
            "locale": request.locale,
            "campaign": request.campaign,
            "source": request.source,
            "reminder_id": request.reminder_id,
            "article": request.article,
            "variant": request.variant,
            "upsell": request.upsell,
            "donor_email": request.email.strip(),
            "donor_name": request.name or None,
            "donor_country": request.country,
        },
    )
    if created and request.newsletter_opt_in:
        request_consent(
            ConsentTopic.NEWSLETTER,
            source="checkout",
            locale=request.locale,
            supporter=supporter,
            checkout=row,
        )
    return row


def _ensure_customer(supporter: Supporter, attempt_key: str, name: str | None = None) -> str:
    """The supporter's Stripe customer; a new one carries only what this checkout was given."""
    if supporter.stripe_customer_id is None:
        supporter.stripe_customer_id = gateway().ensure_customer(
            email=supporter.email,
            name=name or "",
            idempotency_key=f"checkout-{attempt_key}-customer",
        )
    return supporter.stripe_customer_id


def start_checkout(request: CheckoutRequest) -> Donation:
    """Create (or find again) the donation and PaymentIntent for one attempt.

    Both Stripe calls carry idempotency keys derived from the attempt, so
    however often the attempt is posted there is one PaymentIntent.
    """
    donation = _attempt_row(Donation, request)
    if donation.stripe_payment_intent_id is None:
        snapshot = gateway().create_payment(
            amount=donation.charge_total,
            customer_id=_ensure_customer(
                donation.supporter, request.attempt_key, donation.donor_name
            ),
            method_types=checkout_methods(donation),
            metadata={
                "donation_attempt": request.attempt_key,
                "frequency": str(request.frequency),
                "gift_amount": str(donation.amount),
                "fee_cover_amount": str(donation.fee_cover_amount),
                "campaign": request.campaign or "",
                "article": request.article or "",
                "variant": request.variant or "",
            },
            idempotency_key=f"checkout-{request.attempt_key}-payment-intent",
        )
        donation.stripe_payment_intent_id = snapshot.id
        db.session.flush()
    return donation


def sync_donation(donation: Donation) -> PaymentSnapshot | None:
    """Ask Stripe how this donation's payment stands, record it, return Stripe's view."""
    if not donation.stripe_payment_intent_id:
        return None
    snapshot = gateway().retrieve_payment(donation.stripe_payment_intent_id)
    record_payment(snapshot)
    return snapshot


def start_recurring_checkout(request: CheckoutRequest) -> RecurringPlan:
    """Create (or find again) the plan for one attempt and start collecting its method.

    The payment method is collected first with a SetupIntent; the subscription
    is created once it succeeds (see :func:`subscribe`).
    """
    plan = _attempt_row(RecurringPlan, request)
    if plan.stripe_setup_intent_id is None:
        setup = gateway().create_setup(
            customer_id=_ensure_customer(plan.supporter, request.attempt_key, plan.donor_name),
            method_types=checkout_methods(plan),
            metadata={"plan_attempt": request.attempt_key},
            idempotency_key=f"checkout-{request.attempt_key}-setup-intent",
        )
        plan.stripe_setup_intent_id = setup.id
        db.session.flush()
    return plan


@dataclass(frozen=True)
class PlanProgress:
    """Where a plan's checkout stands, for the page to act on."""

    state: str  # "collect" | "authenticate" | "processing" | "active" | "failed" | "ended"
    client_secret: str | None = None


def subscribe(plan: RecurringPlan) -> PlanProgress:
    """Move the plan's checkout forward as far as Stripe allows, and say where it stands.

    Safe to call on every visit: each Stripe call that creates something
    carries an idempotency key derived from the attempt (or the retry).
    """
    if plan.status in (PlanStatus.CANCELED, PlanStatus.INCOMPLETE_EXPIRED):
        # Abandoned and expired (payments.abandoned), or ended: nothing to collect.
        return PlanProgress("ended")
    if plan.stripe_setup_intent_id is None:
        return PlanProgress("collect")
    setup = gateway().retrieve_setup(plan.stripe_setup_intent_id)
    if plan.stripe_subscription_id is None:
        if setup.status != "succeeded" or not setup.payment_method_id:
            return PlanProgress("collect", setup.client_secret)
        price_id = gateway().recurring_price(
            amount=plan.charge_total,
            interval=str(plan.frequency),
            idempotency_key=f"checkout-{plan.attempt_key}-price",
        )
        plan.stripe_price_id = price_id
        plan.method = setup.method_type
        subscription = gateway().create_subscription(
            customer_id=str(plan.supporter.stripe_customer_id),
            price_id=price_id,
            payment_method_id=setup.payment_method_id,
            metadata={"plan_attempt": plan.attempt_key, "frequency": str(plan.frequency)},
            idempotency_key=f"checkout-{plan.attempt_key}-subscription",
        )
        plan.stripe_subscription_id = subscription.id
        db.session.flush()
    else:
        subscription = gateway().retrieve_subscription(plan.stripe_subscription_id)
        invoice = subscription.latest_invoice
        retry_with_new_method = (
            setup.status == "succeeded"
            and setup.payment_method_id
            and setup.payment_method_id != subscription.default_payment_method_id
            and invoice is not None
            and invoice.status == "open"
        )
        if retry_with_new_method:
            assert invoice is not None
            assert setup.payment_method_id is not None
            gateway().update_default_payment_method(
                customer_id=subscription.customer_id,
                subscription_id=subscription.id,
                payment_method_id=setup.payment_method_id,
            )
            plan.method = setup.method_type
            gateway().pay_invoice(invoice.id, idempotency_key=f"retry-{invoice.id}-{setup.id}")
            subscription = gateway().retrieve_subscription(subscription.id)
    sync_subscription(subscription)
    return _progress(plan, subscription)


def _progress(plan: RecurringPlan, subscription: SubscriptionSnapshot) -> PlanProgress:
    invoice = subscription.latest_invoice
    if plan.status in (PlanStatus.CANCELED, PlanStatus.INCOMPLETE_EXPIRED):
        return PlanProgress("ended")
    intent = None
    if invoice is not None and invoice.payment_intent_id and invoice.status == "open":
        intent = gateway().retrieve_payment(invoice.payment_intent_id)
    if intent is not None and intent.status == "requires_action":
        return PlanProgress("authenticate", intent.client_secret)
    if intent is not None and intent.status == "processing":
        return PlanProgress("processing")
    if plan.status is PlanStatus.ACTIVE and (invoice is None or invoice.status == "paid"):
        return PlanProgress("active")
    if plan.status is PlanStatus.ACTIVE:
        return PlanProgress("processing")
    return PlanProgress("failed")


def new_setup_for_retry(plan: RecurringPlan, reason: str) -> SetupSnapshot:
    """A fresh SetupIntent so the supporter can give another payment method."""
    _ensure_customer(plan.supporter, plan.attempt_key, plan.donor_name)
    setup = gateway().create_setup(
        customer_id=str(plan.supporter.stripe_customer_id),
        method_types=checkout_methods(plan),
        metadata={"plan_attempt": plan.attempt_key},
        idempotency_key=f"plan-{plan.attempt_key}-setup-{reason}"[:255],
    )
    plan.stripe_setup_intent_id = setup.id
    db.session.flush()
    return setup


# A SetupIntent in one of these states can still collect a payment method.
OPEN_SETUP_STATES = frozenset(
    {"requires_payment_method", "requires_confirmation", "requires_action"}
)


def open_setup_for_retry(plan: RecurringPlan, purpose: str) -> SetupSnapshot:
    """The SetupIntent to collect another payment method with: the plan's open one if
    it has one, else a new one.

    Every visit of the payment page (or a dunning link) comes here, so it must not
    mint a SetupIntent per request: the open one is reused, and a new one's
    idempotency key is derived from the intent it replaces, so two requests at
    once ask Stripe for the same object.
    """
    replaced = plan.stripe_setup_intent_id
    if replaced:
        current = gateway().retrieve_setup(replaced)
        if current.status in OPEN_SETUP_STATES and current.client_secret:
            return current
    return new_setup_for_retry(plan, f"{purpose}-after-{replaced or 'none'}")


def find_checkout(public_token: str) -> Donation | RecurringPlan | None:
    """The one-off donation or recurring plan behind a checkout link."""
    if not public_token or len(public_token) > 64:
        return None
    donation = db.session.scalar(select(Donation).where(Donation.public_token == public_token))
    if donation is not None:
        return donation
    return db.session.scalar(
        select(RecurringPlan).where(RecurringPlan.public_token == public_token)
    )


def plan_from_link(token: str) -> RecurringPlan | None:
    """The plan a signed dunning link points at, or None if bad or expired."""
    from itsdangerous import BadData

    try:
        public_token = plan_link_serializer().loads(token, max_age=PLAN_LINK_MAX_AGE)
    except BadData:
        return None
    found = find_checkout(str(public_token))
    return found if isinstance(found, RecurringPlan) else None
