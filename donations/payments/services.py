"""Recording what Stripe says about a payment in the ledger.

Every caller -- the thank-you page, a webhook, reconciliation -- hands over
an authoritative snapshot read from Stripe; these functions set absolute
state from it, so replays, duplicates and reordering end in the same place.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select, update

from donations.db import db, utcnow
from donations.mail.services import queue_email
from donations.payments.gateway import PaymentGateway, PaymentSnapshot
from donations.supporters.models import (
    Donation,
    DonationStatus,
    InvalidTransition,
    can_transition,
)

log = logging.getLogger(__name__)


def gateway() -> PaymentGateway:
    gw: PaymentGateway = current_app.extensions["payment_gateway"]
    return gw


def status_from_snapshot(snapshot: PaymentSnapshot) -> DonationStatus | None:
    """The ledger status Stripe's PaymentIntent status implies (None: no news)."""
    match snapshot.status:
        case "succeeded":
            return DonationStatus.SUCCEEDED
        case "processing":
            return DonationStatus.PROCESSING
        case "canceled":
            return DonationStatus.CANCELED
        case "requires_payment_method" if snapshot.failure_code:
            return DonationStatus.FAILED
        case _:
            return None


def record_payment(snapshot: PaymentSnapshot) -> Donation | None:
    """Bring the donation for this payment in line with Stripe's snapshot."""
    donation = db.session.scalar(
        select(Donation).where(Donation.stripe_payment_intent_id == snapshot.id)
    )
    if donation is None:
        attempt = snapshot.metadata.get("donation_attempt")
        if attempt:
            donation = db.session.scalar(select(Donation).where(Donation.attempt_key == attempt))
    if donation is None:
        log.warning("payment %s matches no donation", snapshot.id)
        return None
    if donation.charge_total != snapshot.amount:
        log.error(
            "payment %s amount %s differs from donation %s (%s)",
            snapshot.id,
            snapshot.amount,
            donation.id,
            donation.charge_total,
        )
    donation.stripe_payment_intent_id = snapshot.id
    if snapshot.charge_id:
        donation.stripe_charge_id = snapshot.charge_id
    if snapshot.fee is not None and snapshot.net is not None:
        # From the charge's balance transaction, once the money has settled.
        donation.fee, donation.net = snapshot.fee, snapshot.net
    if snapshot.method_type:
        donation.method = snapshot.method_type
        donation.card_brand = snapshot.card_brand
        donation.card_last4 = snapshot.card_last4
    new_status = status_from_snapshot(snapshot)
    if new_status is DonationStatus.FAILED or snapshot.failure_code:
        donation.failure_code = snapshot.decline_code or snapshot.failure_code
    changed = new_status is not None and set_status(donation, new_status)
    if changed and new_status is DonationStatus.SUCCEEDED:
        _on_succeeded(donation)
    db.session.flush()
    return donation


def set_status(donation: Donation, new: DonationStatus) -> bool:
    """Move ``donation`` to ``new``; True if this call made the change.

    A compare-and-set on the current status, so when the thank-you page and
    a webhook report the same success at the same instant exactly one of
    them wins and sends the receipt.
    """
    db.session.flush()
    for _ in range(3):
        current = donation.status
        if current is new:
            log.info("donation %s already %s", donation.id, new)
            return False
        if not can_transition(current, new):
            raise InvalidTransition(f"donation {donation.id}: {current} -> {new}")
        values: dict[str, object] = {"status": new, "updated_at": utcnow()}
        if new is DonationStatus.SUCCEEDED:
            values["succeeded_at"] = utcnow()
        result = db.session.execute(
            update(Donation)
            .where(Donation.id == donation.id, Donation.status == current)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            db.session.refresh(donation)
            return True
        db.session.refresh(donation)
    return False


def _on_succeeded(donation: Donation) -> None:
    supporter = donation.supporter
    queue_email(
        "receipt",
        dedupe_key=f"receipt:donation:{donation.id}",
        to_address=supporter.email,
        to_name=supporter.name,
        locale=donation.locale,
        supporter_id=supporter.id,
        context={
            "donation_id": donation.id,
            "amount": donation.amount,
            "fee_cover_amount": donation.fee_cover_amount,
            "currency": donation.currency,
            "frequency": str(donation.frequency),
            "card_brand": donation.card_brand,
            "last4": donation.card_last4,
            "method": donation.method,
            "reference": donation.stripe_payment_intent_id,
            "succeeded_at": (donation.succeeded_at or utcnow()).isoformat(),
        },
    )
