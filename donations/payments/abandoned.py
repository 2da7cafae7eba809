"""Abandoned checkouts: expired after CHECKOUT_EXPIRY_HOURS, their Stripe objects cancelled.

A checkout nobody paid keeps a PaymentIntent (one-off) or a SetupIntent
(monthly, annual) open at Stripe, and a pending row that names an address
someone typed. Once it is older than the setting (24 h by default) the
periodic task ``payments.expire_abandoned_checkouts`` cancels the intent,
with an idempotency key derived from the attempt, and records the outcome
the way every Stripe read is recorded: a payment that went through at the
last moment is recorded as paid, never cancelled. Erasure expires a
person's open checkouts at once, whatever their age. Functions flush; the
caller commits.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from donations.db import db
from donations.payments.services import gateway, record_payment
from donations.status import change_status
from donations.supporters.consents import expire_checkout_consents
from donations.supporters.models import (
    Donation,
    DonationStatus,
    PlanStatus,
    RecurringPlan,
    Supporter,
)

log = logging.getLogger(__name__)

# Intents in these states can still be paid (or collect a method): cancellable.
OPEN_INTENT_STATES = frozenset(
    {"requires_payment_method", "requires_confirmation", "requires_action"}
)
UNPAID_DONATION_STATUSES = (DonationStatus.PENDING, DonationStatus.FAILED)


def expire_donation(donation: Donation) -> bool:
    """Cancel an unpaid one-off checkout; True if it is now cancelled."""
    if donation.status not in UNPAID_DONATION_STATUSES or donation.recurring_plan_id:
        return False
    intent_id = donation.stripe_payment_intent_id
    if intent_id:
        snapshot = gateway().retrieve_payment(intent_id)
        if snapshot.status in OPEN_INTENT_STATES:
            snapshot = gateway().cancel_payment(
                intent_id, idempotency_key=f"checkout-{donation.attempt_key}-expire"
            )
        record_payment(snapshot)
        if donation.status is not DonationStatus.CANCELED:
            log.info("donation %s was not abandoned after all: %s", donation.id, snapshot.status)
            return False
    else:  # the PaymentIntent was never created (Stripe was unreachable)
        change_status(donation, DonationStatus.CANCELED)
    expire_checkout_consents(donation)
    log.info("abandoned checkout: donation %s expired", donation.id)
    return True


def expire_plan(plan: RecurringPlan) -> bool:
    """Expire a plan whose checkout never reached a subscription; True if it did."""
    if plan.status is not PlanStatus.INCOMPLETE or plan.stripe_subscription_id:
        return False
    if plan.stripe_setup_intent_id:
        setup = gateway().retrieve_setup(plan.stripe_setup_intent_id)
        if setup.status in OPEN_INTENT_STATES:
            gateway().cancel_setup(
                setup.id, idempotency_key=f"checkout-{plan.attempt_key}-expire-{setup.id}"
            )
        # A SetupIntent that succeeded is left as it is: the reader never saw
        # the plan confirmed, so no subscription is started a day later.
    change_status(plan, PlanStatus.INCOMPLETE_EXPIRED)
    expire_checkout_consents(plan)
    log.info("abandoned checkout: plan %s expired", plan.id)
    return True


def abandoned_checkouts(
    now: datetime, max_age: timedelta, limit: int = 100
) -> list[Donation | RecurringPlan]:
    """Unpaid checkouts created more than ``max_age`` before ``now``, oldest first."""
    cutoff = now - max_age
    donations = db.session.scalars(
        select(Donation)
        .where(
            Donation.status.in_(UNPAID_DONATION_STATUSES),
            Donation.recurring_plan_id.is_(None),
            Donation.created_at < cutoff,
        )
        .order_by(Donation.created_at, Donation.id)
        .limit(limit)
    ).all()
    plans = db.session.scalars(
        select(RecurringPlan)
        .where(
            RecurringPlan.status == PlanStatus.INCOMPLETE,
            RecurringPlan.stripe_subscription_id.is_(None),
            RecurringPlan.created_at < cutoff,
        )
        .order_by(RecurringPlan.created_at, RecurringPlan.id)
        .limit(limit)
    ).all()
    return [*donations, *plans]


def expire_checkout(checkout: Donation | RecurringPlan) -> bool:
    if isinstance(checkout, Donation):
        return expire_donation(checkout)
    return expire_plan(checkout)


def expire_open_checkouts_of(supporter: Supporter) -> int:
    """Erasure: every open checkout of this person, whatever its age."""
    checkouts: list[Donation | RecurringPlan] = [
        *(d for d in supporter.donations if d.status in UNPAID_DONATION_STATUSES),
        *supporter.plans,
    ]
    return sum(expire_checkout(c) for c in checkouts)
