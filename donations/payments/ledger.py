"""What happens to a donation's money after the payment: refunds, disputes, payouts.

Like :func:`~donations.payments.services.record_payment`, each function reads
the authoritative object from Stripe and sets absolute state from it (the
refunded total is re-derived from every refund of the charge, a dispute's fee
from all of its balance transactions), so replays, duplicates and events out
of order converge on the same ledger. Functions flush; the caller commits.

When the payment a Stripe object belongs to is not in the ledger yet, it is
fetched from Stripe and recorded; when it cannot be placed but looks like
ours, :class:`UnknownPayment` is raised so the webhook answers non-2xx and
Stripe delivers again later.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.sql import ColumnElement

from donations.db import db, insert_or_fetch, utcnow
from donations.money import Money
from donations.payments import recurring
from donations.payments.gateway import (
    ChargeSnapshot,
    DisputeSnapshot,
    GatewayError,
    PaymentSnapshot,
    PayoutSnapshot,
    RefundSnapshot,
)
from donations.payments.models import (
    MONEY_RETURNING_REFUNDS,
    Dispute,
    DisputeStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundStatus,
)
from donations.payments.services import gateway, record_payment
from donations.status import InvalidTransition, change_status
from donations.supporters.models import Donation, DonationStatus, Frequency, Supporter
from donations.supporters.services import email_supporter, find_or_create_supporter

log = logging.getLogger(__name__)

# Marks a donation recorded from Stripe because our own row was missing.
IMPORTED_NOTE = "Recorded from Stripe: the checkout's own record was missing."
# How long a payment of ours may lack its donation row before it is recorded
# from Stripe: the checkout that created it commits before the reader can
# pay, so only a lost checkout transaction leaves one orphaned this long.
ORPHAN_GRACE = timedelta(minutes=15)


class UnknownPayment(Exception):
    """A Stripe object of one of our payments that the ledger cannot place yet."""


def timestamp(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


# -- finding (or recording) the donation -----------------------------------------


# PaymentIntent statuses in which money has moved or is moving.
MONEY_STATUSES = frozenset({"succeeded", "processing", "requires_capture"})


def moved_money(snapshot: PaymentSnapshot) -> bool:
    return snapshot.status in MONEY_STATUSES


def is_ours(snapshot: PaymentSnapshot) -> bool:
    """Made by our checkout, or charged to one of our supporters (a plan's renewal)."""
    if snapshot.metadata.get("donation_attempt"):
        return True
    return snapshot.customer_id is not None and (
        db.session.scalar(
            select(Supporter.id).where(Supporter.stripe_customer_id == snapshot.customer_id)
        )
        is not None
    )


def import_payment(snapshot: PaymentSnapshot) -> Donation | None:
    """Record a payment our checkout made but whose donation row never committed.

    Only payments carrying our checkout's metadata are imported: the gift,
    fee cover and frequency come from it and the supporter from the Stripe
    customer. Anything else (a plan's renewal, another system's payment)
    returns None.
    """
    meta = snapshot.metadata
    attempt = meta.get("donation_attempt")
    if not attempt or not snapshot.customer_id or not moved_money(snapshot):
        # An attempt that never took money is not worth a ledger row.
        return None
    existing = db.session.scalar(select(Donation).where(Donation.attempt_key == attempt))
    if existing is None:
        customer = gateway().retrieve_customer(snapshot.customer_id)
        if customer.deleted or not customer.email:
            log.warning("payment %s: customer %s has no email", snapshot.id, customer.id)
            return None
        supporter = find_or_create_supporter(email=customer.email, locale="en")
        if supporter.stripe_customer_id is None:
            supporter.stripe_customer_id = customer.id
        gift, cover = _split(snapshot, meta)
        try:
            frequency = Frequency(meta.get("frequency", "once"))
        except ValueError:
            frequency = Frequency.ONCE
        db.session.flush()
        _, created = insert_or_fetch(
            Donation,
            {"attempt_key": attempt},
            {
                "public_token": secrets.token_urlsafe(24),
                "supporter_id": supporter.id,
                "amount": gift,
                "fee_cover_amount": cover,
                "currency": snapshot.amount.currency,
                "frequency": frequency,
                "campaign": (meta.get("campaign") or "")[:100] or None,
                "article": (meta.get("article") or "")[:300] or None,
                "variant": (meta.get("variant") or "")[:50] or None,
                "stripe_payment_intent_id": snapshot.id,
                "note": IMPORTED_NOTE,
                "donor_email": customer.email,
                "donor_name": customer.name or None,
            },
        )
        if created:
            log.warning("payment %s had no donation; recorded it from Stripe", snapshot.id)
        else:
            log.info("payment %s was recorded concurrently", snapshot.id)
    return record_payment(snapshot)


def _split(snapshot: PaymentSnapshot, meta: Any) -> tuple[int, int]:
    """The gift and the fee cover, from our metadata when it adds up to the charge."""
    try:
        gift, cover = int(meta.get("gift_amount", "")), int(meta.get("fee_cover_amount", "0"))
    except ValueError:
        return snapshot.amount.amount, 0
    if gift > 0 and cover >= 0 and gift + cover == snapshot.amount.amount:
        return gift, cover
    return snapshot.amount.amount, 0


def sync_payment(snapshot: PaymentSnapshot, *, grace: timedelta | None = None) -> Donation | None:
    """Record a payment from Stripe's snapshot, importing it if the row is missing.

    A supporter's payment that pays a plan's invoice is recorded from that
    invoice (:func:`recurring.record_renewal`), as its invoice event would.

    A payment of ours younger than ``grace`` (ORPHAN_GRACE) with no row raises
    UnknownPayment instead, so a webhook answers non-2xx and Stripe delivers
    again later; reconciliation, which runs long after, passes no grace.
    """
    donation = record_payment(snapshot)
    if donation is not None:
        return donation
    if not snapshot.metadata.get("donation_attempt") and is_ours(snapshot):
        # Not our checkout's, but a supporter's: a plan's renewal whose
        # invoice event has not been processed (yet, or ever).
        donation = recurring.record_renewal(snapshot)
        if donation is not None:
            return donation
    if not moved_money(snapshot) or not is_ours(snapshot):
        return None
    if utcnow() - timestamp(snapshot.created) < (ORPHAN_GRACE if grace is None else grace):
        raise UnknownPayment(f"payment {snapshot.id} has no donation yet")
    return import_payment(snapshot)


def donation_for(payment_id: str | None, charge_id: str | None) -> Donation | None:
    """The donation a charge belongs to, brought up to date from Stripe if needed.

    Refunds and disputes only happen to paid charges: a donation not yet
    marked succeeded (its payment_intent.succeeded still on the way) is
    re-read from Stripe first, as is one the ledger does not have at all.
    Returns None for payments that are not ours; raises UnknownPayment for
    ones that are but cannot be placed yet.
    """
    donation = None
    if charge_id:
        donation = db.session.scalar(select(Donation).where(Donation.stripe_charge_id == charge_id))
    if donation is None and payment_id:
        donation = db.session.scalar(
            select(Donation).where(Donation.stripe_payment_intent_id == payment_id)
        )
    if donation is not None and donation.status is DonationStatus.SUCCEEDED:
        return donation
    if not payment_id:
        if donation is None:
            log.info("charge %s belongs to no payment we know", charge_id)
        return donation
    snapshot = gateway().retrieve_payment(payment_id)
    recorded = sync_payment(snapshot)
    if recorded is None and is_ours(snapshot):
        raise UnknownPayment(f"payment {payment_id} is not in the ledger yet")
    if recorded is None:
        log.info("payment %s is not a donation; ignored", payment_id)
    return recorded


# -- charges and refunds -------------------------------------------------------------


def sync_charge(charge_id: str) -> Donation | None:
    """Settlement and refunds of one charge, as Stripe has them now."""
    charge = gateway().retrieve_charge(charge_id)
    donation = donation_for(charge.payment_id, charge.id)
    if donation is None:
        return None
    apply_charge(donation, charge)
    return donation


def sync_refund(refund_id: str) -> Donation | None:
    refund = gateway().retrieve_refund(refund_id)
    if refund.charge_id is None:
        log.info("refund %s has no charge; ignored", refund_id)
        return None
    return sync_charge(refund.charge_id)


def apply_charge(donation: Donation, charge: ChargeSnapshot) -> None:
    lock(donation)
    if donation.stripe_charge_id is None:
        donation.stripe_charge_id = charge.id
    if donation.stripe_charge_id != charge.id:
        log.warning(
            "charge %s is not donation %s's charge %s",
            charge.id,
            donation.id,
            donation.stripe_charge_id,
        )
        return
    if charge.fee is not None and charge.net is not None:
        donation.fee, donation.net = charge.fee, charge.net
    for refund in charge.refunds:
        upsert_refund(donation, refund)
    db.session.flush()
    donation.refunded_amount = refunded_total(donation)
    if donation.refunded_amount != charge.amount_refunded:
        log.warning(
            "donation %s: refunds add up to %s, Stripe says %s",
            donation.id,
            donation.refunded_amount,
            charge.amount_refunded,
        )
    db.session.flush()


def refunded_total(donation: Donation) -> int:
    """Money returned so far: every Stripe refund not failed or canceled."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.donation_id == donation.id,
            Refund.status.in_(list(MONEY_RETURNING_REFUNDS)),
        )
    )
    return int(total or 0)


def upsert_refund(
    donation: Donation, snapshot: RefundSnapshot, row: Refund | None = None
) -> Refund:
    """The refund row for this Stripe refund, brought in line with it.

    ``row`` is the staff request the refund answers, when there is one.
    The supporter is told once, when the refund first returns money.
    """
    status = RefundStatus(snapshot.status)
    if row is None:
        row, _ = insert_or_fetch(
            Refund,
            {"stripe_refund_id": snapshot.id},
            {
                "donation_id": donation.id,
                "amount": snapshot.amount.amount,
                "currency": snapshot.amount.currency,
                "status": status,
                "reason": snapshot.reason,
                "failure_reason": snapshot.failure_reason,
                "stripe_created_at": timestamp(snapshot.created),
            },
        )
    else:
        row.stripe_refund_id = snapshot.id
        row.stripe_created_at = timestamp(snapshot.created)
    row.amount = snapshot.amount.amount
    row.reason = snapshot.reason
    row.failure_reason = snapshot.failure_reason
    try:
        change_status(row, status)
    except InvalidTransition:
        log.info("refund %s: ignoring stale status %s after %s", row.id, status, row.status)
    if row.returns_money:
        _queue_refund_email(donation, row)
    return row


def _queue_refund_email(donation: Donation, refund: Refund) -> None:
    supporter = donation.supporter
    if supporter.erased_at is not None or refund.stripe_refund_id is None:
        return
    db.session.flush()
    refunded = refunded_total(donation)
    email_supporter(
        supporter,
        "refund",
        dedupe_key=f"refund:{refund.stripe_refund_id}",
        locale=donation.locale,
        context={
            "donation_id": donation.id,
            "amount": refund.amount,
            "currency": refund.currency,
            "charged": donation.charge_total.amount,
            "refunded_total": refunded,
            "fully_refunded": refunded >= donation.charge_total.amount,
            "frequency": str(donation.frequency),
            "reference": donation.stripe_payment_intent_id,
            "paid_at": (donation.succeeded_at or donation.created_at).isoformat(),
        },
    )


# -- refunds asked for by staff ---------------------------------------------------------


class RefundRefused(ValueError):
    """This refund cannot be made; the message says why (for staff)."""


def refundable(donation: Donation) -> Money:
    """What is left to refund of this donation (zero unless it succeeded)."""
    if donation.status is not DonationStatus.SUCCEEDED or not donation.stripe_payment_intent_id:
        return Money.zero(donation.currency)
    return donation.charge_total - Money(donation.refunded_amount, donation.currency)


def refund_donation(
    donation_id: int,
    amount: Money | None,
    *,
    staff_id: int,
    attempt_key: str,
    reason: str = "",
) -> Refund:
    """Refund all (``amount`` None) or part of a donation through the gateway.

    One confirmation form = one ``attempt_key`` = one refund row = one
    idempotency key at Stripe: posting the same confirmation twice returns
    the first request instead of refunding again. The request is written
    first (status ``requested``), then Stripe's answer is recorded on it the
    way a webhook records any refund, and the donation's refunded total is
    derived again from its refunds. A refusal by Stripe is kept on the row
    (status ``failed``, with the error); nothing is refunded then.
    """
    existing = db.session.scalar(select(Refund).where(Refund.attempt_key == attempt_key))
    if existing is not None:
        if existing.donation_id != donation_id:
            raise RefundRefused("That confirmation belongs to another donation.")
        return existing
    donation, wanted = _lock_for_refund(donation_id, amount)
    row = Refund(
        attempt_key=attempt_key,
        donation_id=donation.id,
        staff_id=staff_id,
        staff_reason=reason.strip()[:500],
        amount=wanted.amount,
        currency=wanted.currency,
        status=RefundStatus.REQUESTED,
        stripe_created_at=utcnow(),
    )
    db.session.add(row)
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
        change_status(row, RefundStatus.FAILED, error=str(exc)[:2000])
        return row
    upsert_refund(donation, snapshot, row)
    db.session.flush()
    donation.refunded_amount = refunded_total(donation)
    db.session.flush()
    return row


def _lock_for_refund(donation_id: int, amount: Money | None) -> tuple[Donation, Money]:
    """The donation, locked, and the amount to refund of it; RefundRefused if it cannot be.

    Row lock on PostgreSQL, so two refunds of one donation are decided one
    after the other against the up-to-date refunded amount (and a webhook
    for this refund waits for the request to commit).
    """
    donation = db.session.scalar(
        select(Donation).where(Donation.id == donation_id).with_for_update()
    )
    if donation is None:
        raise RefundRefused("There is no such donation.")
    left = refundable(donation)
    if left.amount <= 0:
        raise RefundRefused("Nothing is left to refund on this donation.")
    wanted = left if amount is None else amount
    if wanted.currency != donation.currency:
        raise RefundRefused(f"The refund must be in {donation.currency}.")
    if wanted.amount <= 0:
        raise RefundRefused("The refund must be more than zero.")
    if wanted.amount > left.amount:
        raise RefundRefused(f"At most {left.format()} can be refunded.")
    return donation, wanted


# -- disputes ----------------------------------------------------------------------------


def sync_dispute(dispute_id: str) -> Dispute | None:
    snapshot = gateway().retrieve_dispute(dispute_id)
    donation = donation_for(snapshot.payment_id, snapshot.charge_id)
    if donation is None:
        return None
    return apply_dispute(donation, snapshot)


def apply_dispute(donation: Donation, snapshot: DisputeSnapshot) -> Dispute:
    lock(donation)
    status = DisputeStatus(snapshot.status)
    row, _ = insert_or_fetch(
        Dispute,
        {"stripe_dispute_id": snapshot.id},
        {
            "donation_id": donation.id,
            "amount": snapshot.amount.amount,
            "currency": snapshot.amount.currency,
            "status": status,
            "reason": snapshot.reason,
            "stripe_created_at": timestamp(snapshot.created),
        },
    )
    try:
        change_status(row, status)
    except InvalidTransition:
        log.info("dispute %s: ignoring stale status %s after %s", row.id, status, row.status)
    else:
        # The balance transactions grow with the status (withdrawal, then
        # perhaps a reinstatement): take them with it, never from a stale read.
        row.amount, row.reason = snapshot.amount.amount, snapshot.reason
        row.fee, row.net = snapshot.fee, snapshot.net
    if row.is_closed and row.closed_at is None:
        row.closed_at = utcnow()
    db.session.flush()
    return row


# -- payouts -----------------------------------------------------------------------------


@dataclass
class PayoutLinks:
    """What a payout's balance transactions were matched to in the ledger."""

    donations: int = 0
    refunds: int = 0
    unmatched: list[str] = field(default_factory=list)


def sync_payout(payout_id: str) -> tuple[Payout, PayoutLinks]:
    return apply_payout(gateway().retrieve_payout(payout_id))


def apply_payout(snapshot: PayoutSnapshot) -> tuple[Payout, PayoutLinks]:
    """Record a payout and mark the donations and refunds it paid out.

    A failed or canceled payout returns its money to the balance: the rows
    it had are unmarked, to be claimed by the payout that settles them.
    """
    status = PayoutStatus(snapshot.status)
    row, _ = insert_or_fetch(
        Payout,
        {"stripe_payout_id": snapshot.id},
        {
            "amount": snapshot.amount.amount,
            "currency": snapshot.amount.currency,
            "status": status,
            "automatic": snapshot.automatic,
            "arrival_date": timestamp(snapshot.arrival_date),
            "stripe_created_at": timestamp(snapshot.created),
        },
    )
    try:
        change_status(row, status)
    except InvalidTransition:
        log.info("payout %s: ignoring stale status %s after %s", row.id, status, row.status)
    row.amount = snapshot.amount.amount
    row.arrival_date = timestamp(snapshot.arrival_date)
    row.failure_code, row.failure_message = snapshot.failure_code, snapshot.failure_message
    db.session.flush()
    if row.status in (PayoutStatus.FAILED, PayoutStatus.CANCELED):
        for model in (Donation, Refund):
            _set_payout(model, model.payout_id == row.id, None)
        return row, PayoutLinks()
    if not row.automatic:
        # Stripe can only list the transactions of automatic payouts.
        return row, PayoutLinks()
    return row, _link_payout_entries(row)


def _link_payout_entries(row: Payout) -> PayoutLinks:
    """Mark the donations and refunds in the payout's balance transactions as paid out in it."""
    links = PayoutLinks()
    # Charges before refunds: rows are locked in the order every sync takes
    # them (a donation, then its refunds), so concurrent syncs cannot deadlock.
    entries = sorted(
        gateway().list_payout_entries(row.stripe_payout_id),
        key=lambda e: e.type not in ("charge", "payment"),
    )
    for entry in entries:
        if entry.source_id is None or entry.type in ("payout", "payout_failure"):
            continue
        if entry.type in ("charge", "payment"):
            matched = _set_payout(Donation, Donation.stripe_charge_id == entry.source_id, row.id)
            links.donations += matched
        elif entry.type in ("refund", "payment_refund"):
            matched = _set_payout(Refund, Refund.stripe_refund_id == entry.source_id, row.id)
            links.refunds += matched
        else:
            # Dispute movements and fees belong to the payout but to no row.
            continue
        if not matched:
            links.unmatched.append(entry.source_id)
    if links.unmatched:
        log.warning(
            "payout %s: %d entries match no ledger row", row.stripe_payout_id, len(links.unmatched)
        )
    db.session.flush()
    return links


def _set_payout(
    model: type[Donation] | type[Refund], which: ColumnElement[bool], payout_id: int | None
) -> int:
    """Mark the rows ``which`` picks as paid out in ``payout_id`` (None: in none); how many."""
    result = db.session.execute(
        update(model)
        .where(which)
        .values(payout_id=payout_id)
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# -- helpers ---------------------------------------------------------------------------


def lock(donation: Donation) -> None:
    """Take the donation's row lock before touching its refunds or disputes.

    Every path then locks the donation first (record_payment's status update
    does too), so two syncs of one charge queue up instead of deadlocking
    over its refund rows. PostgreSQL only; SQLite serialises writers anyway.
    """
    db.session.execute(select(Donation.id).where(Donation.id == donation.id).with_for_update())
