"""Supporters as finance staff see them: search, timeline and the actions on them.

Every action appends to the audit log. Functions flush; the request commits.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, or_, select

from donations.db import db
from donations.mail.models import EmailMessage
from donations.money import Money
from donations.payments import ledger, lifecycle, recurring
from donations.payments.gateway import GatewayError
from donations.payments.lifecycle import TimelineEntry
from donations.payments.models import Refund, RefundStatus
from donations.staff.models import AuditEntry, StaffUser, SupporterNote
from donations.staff.services import audit
from donations.supporters.models import (
    Donation,
    InvalidTransition,
    RecurringPlan,
    Supporter,
)
from donations.supporters.services import email_supporter

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


def timeline(supporter: Supporter) -> list[TimelineEntry]:
    """The supporter's one timeline (lifecycle.timeline) with staff notes and audit entries."""
    entries = lifecycle.timeline(supporter)
    for note in db.session.scalars(
        select(SupporterNote).where(SupporterNote.supporter_id == supporter.id)
    ):
        entries.append(
            TimelineEntry(note.created_at, "note", f"Note by {note.staff.email}", detail=note.body)
        )
    for entry in db.session.scalars(
        select(AuditEntry).where(AuditEntry.supporter_id == supporter.id)
    ):
        entries.append(TimelineEntry(entry.created_at, "audit", f"{entry.action} by {entry.actor}"))
    entries.sort(key=lambda item: item.at, reverse=True)
    return entries


refundable = ledger.refundable


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


def refund_donation(
    donation_id: int, amount: Money | None, *, staff: StaffUser, attempt_key: str, reason: str = ""
) -> Refund:
    """Refund a donation (:func:`donations.payments.ledger.refund_donation`) and audit it."""
    already = db.session.scalar(select(Refund.id).where(Refund.attempt_key == attempt_key))
    try:
        refund = ledger.refund_donation(
            donation_id, amount, staff_id=staff.id, attempt_key=attempt_key, reason=reason
        )
    except ledger.RefundRefused as exc:
        raise ActionRefused(str(exc)) from exc
    if already is not None:
        return refund
    donation = refund.donation
    failed = refund.status is RefundStatus.FAILED and refund.stripe_refund_id is None
    outcome = (
        {"error": refund.error}
        if failed
        else {
            "refund": refund.stripe_refund_id,
            "status": str(refund.status),
            "reason": refund.staff_reason,
        }
    )
    audit(
        "refund.failed" if failed else "refund.created",
        supporter_id=donation.supporter_id,
        target=f"donation:{donation.id}",
        staff=staff,
        amount=Money(refund.amount, refund.currency),
        **outcome,
    )
    return refund


def resend_receipt(donation: Donation, staff: StaffUser) -> EmailMessage:
    """Queue the donation's receipt again, to the supporter's current address."""
    original = db.session.scalar(
        select(EmailMessage).where(EmailMessage.dedupe_key == f"receipt:donation:{donation.id}")
    )
    if not donation.is_paid or original is None:
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
    message = email_supporter(
        supporter,
        original.template,
        dedupe_key=f"{prefix}{count + 1}",
        locale=original.locale,
        # A resent receipt states what has been refunded since.
        context={**original.context, "refunded_amount": donation.refunded_amount},
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
    """Cancel a recurring plan now, at Stripe and in the ledger (recurring.cancel_now)."""
    if not plan.can_cancel:
        raise ActionRefused(f"A plan that is {plan.status} cannot be cancelled.")
    previous = plan.status
    # The compare-and-set the webhooks use: a concurrent cancellation (the
    # subscription.deleted event, another staff member) wins or loses cleanly.
    try:
        recurring.cancel_now(plan, reason.strip() or "cancelled by staff")
    except GatewayError as exc:
        raise ActionRefused(f"Stripe did not cancel the plan: {exc}") from exc
    except InvalidTransition as exc:
        raise ActionRefused(f"A plan that is {plan.status} cannot be cancelled.") from exc
    audit(
        "plan.cancelled",
        supporter_id=plan.supporter_id,
        target=f"plan:{plan.id}",
        staff=staff,
        previous_status=previous,
        reason=plan.cancellation_reason,
        subscription=plan.stripe_subscription_id,
    )
