"""Starting a checkout: the supporter, the donation and its PaymentIntent."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import g
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from donations.db import db
from donations.money import Money
from donations.payments.gateway import PaymentSnapshot
from donations.payments.services import gateway, record_payment
from donations.support.ask import DEMO_ASK, AskConfig
from donations.support.models import Setting
from donations.supporters.models import Donation, Frequency
from donations.supporters.services import email_key, get_or_create_supporter

log = logging.getLogger(__name__)

ASK_SETTING = "ask"


class CheckoutConflict(Exception):
    """The attempt key was already used for a different checkout."""


def load_ask_config() -> AskConfig:
    """The ask's configuration, read once per request."""
    if "ask_config" not in g:
        data = db.session.scalar(select(Setting.value).where(Setting.key == ASK_SETTING))
        g.ask_config = AskConfig.from_data(data or DEMO_ASK)
    config: AskConfig = g.ask_config
    return config


def save_ask_config(data: dict[str, Any]) -> None:
    AskConfig.from_data(data)  # refuse what would not load
    setting = db.session.get(Setting, ASK_SETTING)
    if setting is None:
        db.session.add(Setting(key=ASK_SETTING, value=data))
    else:
        setting.value = data
    db.session.flush()
    g.pop("ask_config", None)


def method_types(currency: str, frequency: Frequency) -> list[str]:
    """Payment methods offered for this gift (card everywhere, for now)."""
    return ["card"]


def start_checkout(
    *,
    gift: Money,
    frequency: Frequency,
    attempt_key: str,
    email: str,
    name: str,
    country: str | None,
    newsletter_opt_in: bool,
    locale: str,
    campaign: str | None = None,
    source: str | None = None,
) -> Donation:
    """Create (or find again) the donation and PaymentIntent for one attempt.

    Posting the same attempt twice -- a double click, a refresh, the back
    button -- returns the same donation and the same PaymentIntent: both
    Stripe calls carry idempotency keys derived from the attempt.
    """
    donation = db.session.scalar(select(Donation).where(Donation.attempt_key == attempt_key))
    if donation is not None:
        if donation.supporter.email_key != email_key(email) or donation.gift != gift:
            raise CheckoutConflict(attempt_key)
    else:
        supporter = get_or_create_supporter(
            email=email,
            name=name,
            country=country,
            locale=locale,
            newsletter_opt_in=newsletter_opt_in,
        )
        try:
            with db.session.begin_nested():
                donation = Donation(
                    attempt_key=attempt_key,
                    public_token=secrets.token_urlsafe(24),
                    supporter=supporter,
                    amount=gift.amount,
                    currency=gift.currency,
                    frequency=frequency,
                    locale=locale,
                    campaign=campaign,
                    source=source,
                )
                db.session.add(donation)
        except IntegrityError:
            # A double click posted this attempt twice at once and the other
            # request created it first: resume that donation and its payment.
            donation = db.session.scalar(
                select(Donation).where(Donation.attempt_key == attempt_key)
            )
            if donation is None:  # pragma: no cover - the winner rolled back
                raise
            if donation.supporter.email_key != email_key(email) or donation.gift != gift:
                raise CheckoutConflict(attempt_key) from None

    if donation.stripe_payment_intent_id is None:
        supporter = donation.supporter
        if supporter.stripe_customer_id is None:
            supporter.stripe_customer_id = gateway().ensure_customer(
                email=supporter.email,
                name=supporter.name,
                idempotency_key=f"checkout-{attempt_key}-customer",
            )
        snapshot = gateway().create_payment(
            amount=donation.charge_total,
            customer_id=supporter.stripe_customer_id,
            method_types=method_types(gift.currency, frequency),
            metadata={
                "donation_attempt": attempt_key,
                "frequency": str(frequency),
                "gift_amount": str(donation.amount),
                "fee_cover_amount": str(donation.fee_cover_amount),
                "campaign": campaign or "",
            },
            idempotency_key=f"checkout-{attempt_key}-payment-intent",
        )
        donation.stripe_payment_intent_id = snapshot.id
        db.session.flush()
    return donation


def find_donation(public_token: str) -> Donation | None:
    if not public_token or len(public_token) > 64:
        return None
    return db.session.scalar(select(Donation).where(Donation.public_token == public_token))


def sync_donation(donation: Donation) -> PaymentSnapshot | None:
    """Ask Stripe how this donation's payment stands, record it, return Stripe's view."""
    if not donation.stripe_payment_intent_id:
        return None
    snapshot = gateway().retrieve_payment(donation.stripe_payment_intent_id)
    record_payment(snapshot)
    return snapshot
