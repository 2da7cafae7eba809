"""Recording what Stripe says about a payment in the ledger.

Every caller -- the thank-you page, a webhook, reconciliation -- hands over
an authoritative snapshot read from Stripe; these functions set absolute
state from it, so replays, duplicates and reordering end in the same place.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select

from donations.db import db, utcnow
from donations.payments.gateway import PaymentGateway, PaymentSnapshot
from donations.status import change_status
from donations.supporters.models import Donation, DonationStatus
from donations.supporters.services import apply_paid_checkout, email_supporter

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
        donation.card_exp_month = snapshot.card_exp_month
        donation.card_exp_year = snapshot.card_exp_year
        if donation.plan is not None and snapshot.card_exp_year:
            # What the plan's renewals charge: the card of its latest payment.
            plan = donation.plan
            plan.card_brand, plan.card_last4 = snapshot.card_brand, snapshot.card_last4
            plan.card_exp_month, plan.card_exp_year = (
                snapshot.card_exp_month,
                snapshot.card_exp_year,
            )
    new_status = status_from_snapshot(snapshot)
    if new_status is DonationStatus.FAILED or snapshot.failure_code:
        donation.failure_code = snapshot.decline_code or snapshot.failure_code
    # A compare-and-set: when the thank-you page and a webhook report the
    # same success at the same instant, exactly one of them sends the receipt.
    changed = new_status is not None and change_status(
        donation,
        new_status,
        **({"succeeded_at": utcnow()} if new_status is DonationStatus.SUCCEEDED else {}),
    )
    if changed and new_status is DonationStatus.SUCCEEDED:
        _on_succeeded(donation)
    db.session.flush()
    return donation


def _on_succeeded(donation: Donation) -> None:
    # The payment proves the address: what the checkout was given (name,
    # country, consents) becomes the supporter's now, and only now.
    apply_paid_checkout(donation)
    email_supporter(
        donation.supporter,
        "receipt",
        dedupe_key=f"receipt:donation:{donation.id}",
        locale=donation.locale,
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
