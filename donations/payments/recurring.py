"""Recording Stripe subscriptions and their invoices in the ledger.

As with one-off payments, callers pass authoritative snapshots read from
Stripe, and these functions set absolute state: a plan follows its
subscription's status, and each invoice becomes exactly one donation.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from donations.db import db, insert_or_fetch, utcnow
from donations.payments.gateway import (
    GatewayError,
    InvoiceSnapshot,
    PaymentSnapshot,
    SubscriptionSnapshot,
)
from donations.payments.services import gateway, record_payment
from donations.security import signing_keys
from donations.status import InvalidTransition, change_status
from donations.supporters.models import Donation, PlanStatus, RecurringPlan
from donations.supporters.services import email_supporter

log = logging.getLogger(__name__)

PLAN_LINK_SALT = "plan-payment-method"
PLAN_LINK_MAX_AGE = 45 * 24 * 3600


def _timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def plan_status_from(snapshot: SubscriptionSnapshot) -> PlanStatus | None:
    try:
        return PlanStatus(snapshot.status)
    except ValueError:
        log.info("subscription %s has status %s; plan unchanged", snapshot.id, snapshot.status)
        return None


def find_plan(snapshot: SubscriptionSnapshot) -> RecurringPlan | None:
    plan = db.session.scalar(
        select(RecurringPlan).where(RecurringPlan.stripe_subscription_id == snapshot.id)
    )
    if plan is None and snapshot.metadata.get("plan_attempt"):
        plan = db.session.scalar(
            select(RecurringPlan).where(
                RecurringPlan.attempt_key == snapshot.metadata["plan_attempt"]
            )
        )
    return plan


def sync_subscription(snapshot: SubscriptionSnapshot) -> RecurringPlan | None:
    """Bring the plan for this subscription (and its latest invoice) in line with Stripe."""
    plan = find_plan(snapshot)
    if plan is None:
        log.warning("subscription %s matches no plan", snapshot.id)
        return None
    plan.stripe_subscription_id = snapshot.id
    plan.next_renewal_at = _timestamp(snapshot.current_period_end)
    # Stripe sets canceled_at when a cancellation at the period's end is asked
    # for; the plan has ended only once the subscription has.
    ended = snapshot.status == "canceled" or snapshot.ended_at
    plan.canceled_at = _timestamp(snapshot.canceled_at or snapshot.ended_at) if ended else None
    plan.cancel_at_period_end = snapshot.cancel_at_period_end
    plan.cancel_at = _timestamp(snapshot.cancel_at)
    plan.pause_behavior = snapshot.pause_behavior
    plan.paused_until = _timestamp(snapshot.pause_resumes_at) if snapshot.pause_behavior else None
    if snapshot.cancellation_reason and plan.cancellation_reason is None:
        plan.cancellation_reason = snapshot.cancellation_reason
    new_status = plan_status_from(snapshot)
    changed = new_status is not None and change_status(plan, new_status)
    if changed and new_status is PlanStatus.ACTIVE and plan.started_at is None:
        plan.started_at = utcnow()
        _queue_welcome(plan)
    if snapshot.latest_invoice is not None:
        record_invoice(snapshot.latest_invoice, plan)
    db.session.flush()
    return plan


def cancel_now(plan: RecurringPlan, reason: str) -> None:
    """End the plan now: its subscription at Stripe, then the plan as Stripe answers.

    The one cancellation path (staff, the supporter in /manage, erasure).
    ``reason`` is kept in preference to Stripe's own ("cancellation_requested").
    Raises :class:`GatewayError` when Stripe refuses or does not confirm, and
    :class:`InvalidTransition` when the plan cannot be cancelled.
    """
    if not plan.can_cancel:
        raise InvalidTransition(f"plan {plan.id}: {plan.status} -> {PlanStatus.CANCELED}")
    reason = reason.strip()[:200]
    if plan.stripe_subscription_id:
        snapshot = gateway().cancel_subscription(plan.stripe_subscription_id)
        if snapshot.status != PlanStatus.CANCELED.value:
            raise GatewayError(f"the subscription is {snapshot.status}, not canceled")
        plan.cancellation_reason = reason or plan.cancellation_reason
        sync_subscription(snapshot)
    else:
        change_status(plan, PlanStatus.CANCELED)
        plan.cancellation_reason = reason or plan.cancellation_reason
    if plan.canceled_at is None:
        plan.canceled_at = utcnow()
    db.session.flush()


def record_invoice(
    invoice: InvoiceSnapshot,
    plan: RecurringPlan | None = None,
    payment: PaymentSnapshot | None = None,
) -> Donation | None:
    """One donation per invoice, with its payment's state recorded.

    ``payment`` is the invoice's PaymentIntent when the caller has just read
    it; otherwise it is read from Stripe.
    """
    if plan is None and invoice.subscription_id:
        plan = db.session.scalar(
            select(RecurringPlan).where(
                RecurringPlan.stripe_subscription_id == invoice.subscription_id
            )
        )
    if plan is None:
        log.warning("invoice %s matches no plan", invoice.id)
        return None
    if invoice.amount_due.amount <= 0 or invoice.payment_intent_id is None:
        return None
    donation = _donation_for_invoice(invoice, plan)
    if donation.stripe_payment_intent_id != invoice.payment_intent_id:
        donation.stripe_payment_intent_id = invoice.payment_intent_id
        db.session.flush()
    if payment is None or payment.id != invoice.payment_intent_id:
        payment = gateway().retrieve_payment(invoice.payment_intent_id)
    record_payment(payment)
    if (
        invoice.status == "open"
        and invoice.billing_reason == "subscription_cycle"
        and donation.failure_code
    ):
        queue_dunning(plan, invoice)
    return donation


def record_renewal(payment: PaymentSnapshot) -> Donation | None:
    """A payment with no donation row that pays a plan's invoice: record it from the invoice.

    A renewal's ``payment_intent.*`` event can arrive before (or instead of)
    its ``invoice.*`` event. The PaymentIntent does not say which plan it
    belongs to, its invoice does: the invoice and its subscription are read
    from Stripe and recorded as the invoice event would have. None when the
    payment pays no invoice of a plan we know.
    """
    invoice = gateway().invoice_of_payment(payment.id)
    if invoice is None or invoice.subscription_id is None:
        return None
    plan = sync_subscription(gateway().retrieve_subscription(invoice.subscription_id))
    if plan is None:
        return None
    log.info(
        "payment %s is invoice %s of plan %s; recorded from the invoice",
        payment.id,
        invoice.id,
        plan.id,
    )
    return record_invoice(invoice, plan, payment)


def _donation_for_invoice(invoice: InvoiceSnapshot, plan: RecurringPlan) -> Donation:
    # The invoice is what was billed; the plan says how it splits between
    # the gift and any fee cover.
    if invoice.amount_due == plan.charge_total:
        amount, fee_cover = plan.amount, plan.fee_cover_amount
    else:
        amount, fee_cover = invoice.amount_due.amount, 0
    # Another delivery may record this invoice at the same moment: one row.
    donation, _ = insert_or_fetch(
        Donation,
        {"stripe_invoice_id": invoice.id},
        {
            "attempt_key": f"invoice:{invoice.id}"[:64],
            "public_token": secrets.token_urlsafe(24),
            "supporter_id": plan.supporter_id,
            "recurring_plan_id": plan.id,
            "amount": amount,
            "fee_cover_amount": fee_cover,
            "currency": invoice.amount_due.currency,
            "frequency": plan.frequency,
            "locale": plan.locale,
            "campaign": plan.campaign,
            "source": plan.source,
            "article": plan.article,
            "variant": plan.variant,
            "method": plan.method,
            "donor_email": plan.donor_email,
            "donor_name": plan.donor_name,
            "donor_country": plan.donor_country,
        },
    )
    return donation


def plan_link_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_keys(), salt=PLAN_LINK_SALT)


def plan_link_token(plan: RecurringPlan) -> str:
    return str(plan_link_serializer().dumps(plan.public_token))


def queue_dunning(plan: RecurringPlan, invoice: InvoiceSnapshot) -> None:
    """One email per failed attempt, with a link to give a new payment method."""
    email_supporter(
        plan.supporter,
        "payment_failed",
        dedupe_key=f"dunning:{invoice.id}:{invoice.attempt_count}",
        locale=plan.locale,
        context={
            "amount": invoice.amount_due.amount,
            "currency": invoice.amount_due.currency,
            "frequency": str(plan.frequency),
            "link_token": plan_link_token(plan),
        },
    )


def _queue_welcome(plan: RecurringPlan) -> None:
    supporter = plan.supporter
    email_supporter(
        supporter,
        "welcome",
        dedupe_key=f"welcome:plan:{plan.id}",
        # Sent as the plan starts, just before its first payment applies the name.
        to_name=plan.donor_name or supporter.name,
        locale=plan.locale,
        context={
            "amount": plan.amount + plan.fee_cover_amount,
            "currency": plan.currency,
            "frequency": str(plan.frequency),
            "next_renewal_at": plan.next_renewal_at.isoformat() if plan.next_renewal_at else None,
        },
    )
