"""Supporters as finance staff see them: search, timeline and the actions on them.

Every action appends to the audit log. Functions flush; the request commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from donations.db import db, utcnow
from donations.mail.models import EmailMessage
from donations.mail.services import queue_email
from donations.money import Money
from donations.payments.gateway import GatewayError
from donations.payments.services import gateway
from donations.staff.models import (
    AuditEntry,
    RefundAttempt,
    RefundStatus,
    StaffUser,
    SupporterNote,
)
from donations.staff.services import audit
from donations.supporters.models import (
    PLAN_TRANSITIONS,
    Donation,
    DonationStatus,
    PlanStatus,
    RecurringPlan,
    Supporter,
)

log = logging.getLogger(__name__)

SEARCH_LIMIT = 50
STRIPE_PREFIXES = ("cus_", "pi_", "ch_", "py_", "sub_", "in_")


class ActionRefused(ValueError):
    """The action cannot be done to this record; the message says why (for staff)."""


# -- search ---------------------------------------------------------------


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_supporters(query: str) -> list[Supporter]:
    """Supporters matching an email, a name, or a Stripe id (customer, payment, charge...)."""
    text = query.strip()[:200]
    if not text:
        return []
    if text.startswith(STRIPE_PREFIXES):
        donation_match = select(Donation.supporter_id).where(
            or_(
                Donation.stripe_payment_intent_id == text,
                Donation.stripe_charge_id == text,
                Donation.stripe_invoice_id == text,
            )
        )
        plan_match = select(RecurringPlan.supporter_id).where(
            RecurringPlan.stripe_subscription_id == text
        )
        condition = or_(
            Supporter.stripe_customer_id == text,
            Supporter.id.in_(donation_match),
            Supporter.id.in_(plan_match),
        )
    else:
        pattern = _like(text.lower())
        condition = or_(
            Supporter.email_key.like(pattern, escape="\\"),
            func.lower(Supporter.name).like(pattern, escape="\\"),
        )
    return list(
        db.session.scalars(
            select(Supporter).where(condition).order_by(Supporter.email_key).limit(SEARCH_LIMIT)
        )
    )


# -- the supporter page ------------------------------------------------------


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str  # donation, refund, email, note, audit, plan
    title: str
    detail: str = ""
    obj: Any = None


def timeline(supporter: Supporter) -> list[TimelineItem]:
    """Everything that happened with this supporter, newest first."""
    items: list[TimelineItem] = []
    donations = db.session.scalars(
        select(Donation).where(Donation.supporter_id == supporter.id)
    ).all()
    for donation in donations:
        items.append(
            TimelineItem(
                donation.succeeded_at or donation.created_at,
                "donation",
                f"Donation #{donation.id} {donation.status}",
                obj=donation,
            )
        )
    for plan in db.session.scalars(
        select(RecurringPlan).where(RecurringPlan.supporter_id == supporter.id)
    ):
        items.append(
            TimelineItem(
                plan.started_at or plan.created_at,
                "plan",
                f"{plan.frequency.capitalize()} plan #{plan.id} started",
                obj=plan,
            )
        )
        if plan.canceled_at:
            items.append(
                TimelineItem(
                    plan.canceled_at,
                    "plan",
                    f"Plan #{plan.id} cancelled",
                    plan.cancellation_reason or "",
                    obj=plan,
                )
            )
    donation_ids = [d.id for d in donations]
    if donation_ids:
        for refund in db.session.scalars(
            select(RefundAttempt).where(RefundAttempt.donation_id.in_(donation_ids))
        ):
            items.append(
                TimelineItem(
                    refund.completed_at or refund.created_at,
                    "refund",
                    f"Refund of donation #{refund.donation_id} {refund.status}",
                    refund.reason,
                    obj=refund,
                )
            )
    for message in db.session.scalars(
        select(EmailMessage).where(EmailMessage.supporter_id == supporter.id)
    ):
        items.append(
            TimelineItem(
                message.sent_at or message.created_at,
                "email",
                f"Email “{message.template}” {message.status}",
                message.to_address,
                obj=message,
            )
        )
    for note in db.session.scalars(
        select(SupporterNote).where(SupporterNote.supporter_id == supporter.id)
    ):
        items.append(
            TimelineItem(
                note.created_at, "note", f"Note by {note.staff.email}", note.body, obj=note
            )
        )
    for entry in db.session.scalars(
        select(AuditEntry).where(AuditEntry.supporter_id == supporter.id)
    ):
        items.append(
            TimelineItem(entry.created_at, "audit", f"{entry.action} by {entry.actor}", obj=entry)
        )
    items.sort(key=lambda item: item.at, reverse=True)
    return items


def refundable(donation: Donation) -> Money:
    """What is left to refund of this donation (zero unless it succeeded)."""
    if donation.status is not DonationStatus.SUCCEEDED or not donation.stripe_payment_intent_id:
        return Money.zero(donation.currency)
    return donation.charge_total - Money(donation.refunded_amount, donation.currency)


# -- actions ----------------------------------------------------------------


def add_note(supporter: Supporter, staff: StaffUser, body: str) -> SupporterNote:
    note = SupporterNote(supporter_id=supporter.id, staff=staff, body=body.strip())
    db.session.add(note)
    db.session.flush()
    audit(
        "note.added",
        supporter_id=supporter.id,
        target=f"note:{note.id}",
        staff=staff,
        length=len(note.body),
    )
    return note


def _locked_donation(donation_id: int) -> Donation | None:
    # Row lock on PostgreSQL, so two refunds of one donation are decided one
    # after the other against the up-to-date refunded amount. (SQLite
    # serialises writers anyway.)
    return db.session.scalar(select(Donation).where(Donation.id == donation_id).with_for_update())


def refund_donation(
    donation_id: int, amount: Money | None, *, staff: StaffUser, attempt_key: str, reason: str = ""
) -> RefundAttempt:
    """Refund all (``amount`` None) or part of a donation through the gateway.

    One confirmation form = one ``attempt_key`` = one refund row = one
    idempotency key at Stripe: posting the same confirmation twice returns
    the first attempt instead of refunding again.
    """
    existing = db.session.scalar(
        select(RefundAttempt).where(RefundAttempt.attempt_key == attempt_key)
    )
    if existing is not None:
        if existing.donation_id != donation_id:
            raise ActionRefused("That confirmation belongs to another donation.")
        return existing
    donation = _locked_donation(donation_id)
    if donation is None:
        raise ActionRefused("There is no such donation.")
    left = refundable(donation)
    if left.amount <= 0:
        raise ActionRefused("Nothing is left to refund on this donation.")
    wanted = left if amount is None else amount
    if wanted.currency != donation.currency:
        raise ActionRefused(f"The refund must be in {donation.currency}.")
    if wanted.amount <= 0:
        raise ActionRefused("The refund must be more than zero.")
    if wanted.amount > left.amount:
        raise ActionRefused(f"At most {left.format()} can be refunded.")
    attempt = RefundAttempt(
        attempt_key=attempt_key,
        donation_id=donation.id,
        staff=staff,
        amount=wanted.amount,
        currency=wanted.currency,
        reason=reason.strip()[:500],
    )
    db.session.add(attempt)
    db.session.flush()
    assert donation.stripe_payment_intent_id is not None  # refundable() checked
    try:
        snapshot = gateway().refund_payment(
            donation.stripe_payment_intent_id,
            # Always the exact amount, also for "everything left": the ledger
            # knows what is left, and the refund row records what was asked.
            wanted,
            idempotency_key=f"staff-refund-{attempt_key}",
        )
    except GatewayError as exc:
        attempt.status = RefundStatus.FAILED
        attempt.error = str(exc)[:2000]
        attempt.completed_at = utcnow()
        db.session.flush()
        audit(
            "refund.failed",
            supporter_id=donation.supporter_id,
            target=f"donation:{donation.id}",
            staff=staff,
            amount=wanted,
            error=attempt.error,
        )
        return attempt
    attempt.stripe_refund_id = snapshot.id
    attempt.completed_at = utcnow()
    if snapshot.status in ("failed", "canceled"):
        attempt.status = RefundStatus.FAILED
    else:
        attempt.status = (
            RefundStatus.SUCCEEDED if snapshot.status == "succeeded" else RefundStatus.PENDING
        )
        # What Stripe says it refunded, which is what we asked for.
        donation.refunded_amount += snapshot.amount.amount
    db.session.flush()
    audit(
        "refund.created",
        supporter_id=donation.supporter_id,
        target=f"donation:{donation.id}",
        staff=staff,
        amount=snapshot.amount,
        refund=snapshot.id,
        status=snapshot.status,
        reason=attempt.reason,
    )
    return attempt


def resend_receipt(donation: Donation, staff: StaffUser) -> EmailMessage:
    """Queue the donation's receipt again, to the supporter's current address."""
    original = db.session.scalar(
        select(EmailMessage).where(EmailMessage.dedupe_key == f"receipt:donation:{donation.id}")
    )
    if donation.status is not DonationStatus.SUCCEEDED or original is None:
        raise ActionRefused("This donation has no receipt to resend.")
    prefix = f"receipt:donation:{donation.id}:resend:"
    count = (
        db.session.scalar(
            select(func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.dedupe_key.startswith(prefix, autoescape=True))
        )
        or 0
    )
    supporter = donation.supporter
    message = queue_email(
        original.template,
        dedupe_key=f"{prefix}{count + 1}",
        to_address=supporter.email,
        to_name=supporter.name,
        locale=original.locale,
        supporter_id=supporter.id,
        context=dict(original.context),
    )
    if message is None:
        raise ActionRefused("That receipt is being resent already; reload the page.")
    audit(
        "receipt.resent",
        supporter_id=supporter.id,
        target=f"donation:{donation.id}",
        staff=staff,
        to=supporter.email,
        email=message.id,
    )
    return message


def cancel_plan(plan: RecurringPlan, staff: StaffUser, reason: str) -> None:
    """Cancel a recurring plan now, at Stripe and in the ledger."""
    if PlanStatus.CANCELED not in PLAN_TRANSITIONS[plan.status]:
        raise ActionRefused(f"A plan that is {plan.status} cannot be cancelled.")
    if plan.stripe_subscription_id:
        try:
            gateway().cancel_subscription(plan.stripe_subscription_id)
        except GatewayError as exc:
            raise ActionRefused(f"Stripe did not cancel the plan: {exc}") from exc
    previous = plan.status
    plan.status = PlanStatus.CANCELED
    plan.canceled_at = utcnow()
    plan.cancellation_reason = (reason.strip() or "cancelled by staff")[:200]
    db.session.flush()
    audit(
        "plan.cancelled",
        supporter_id=plan.supporter_id,
        target=f"plan:{plan.id}",
        staff=staff,
        previous_status=previous,
        reason=plan.cancellation_reason,
        subscription=plan.stripe_subscription_id,
    )
