"""Consents: asked for in public forms, applied only once the address is proven.

An address typed into a form is a claim (DESIGN.md 2.5). A consent asked for
with it is recorded at once -- topic, source, the wording's version, the
time -- but stays pending until a payment made with that address succeeds
or the address's owner clicks a signed link we sent to it; only then does
it change anything. Withdrawals come from links we sent (unsubscribe) or
from the operator (erasure), so they apply at once. Functions flush, never
commit.
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import select

from donations.db import db, utcnow
from donations.mail.models import SuppressionReason
from donations.mail.suppression import lift_suppression, suppression_for
from donations.supporters.models import (
    Consent,
    ConsentStatus,
    ConsentTopic,
    Donation,
    RecurringPlan,
    Supporter,
)

log = logging.getLogger(__name__)

# The English wording each consent is given with; its version is derived from
# the text, so changing the words changes the version recorded from then on.
# They must stay equal to the msgids the forms show (tests/support/test_claims.py).
WORDINGS = {
    ConsentTopic.NEWSLETTER: "Send me the newsletter",
    ConsentTopic.REMINDERS: "Yes, send me reminders again",
}


def wording_version(topic: ConsentTopic) -> str:
    digest = hashlib.sha256(WORDINGS[topic].encode("utf-8")).hexdigest()[:12]
    return f"{topic.value}-{digest}"


def request_consent(
    topic: ConsentTopic,
    *,
    source: str,
    locale: str,
    granted: bool = True,
    supporter: Supporter | None = None,
    address_hash: str | None = None,
    checkout: Donation | RecurringPlan | None = None,
) -> Consent:
    """Record a consent asked for with an unproven address; it changes nothing yet."""
    consent = Consent(
        topic=topic,
        granted=granted,
        source=source,
        wording_version=wording_version(topic),
        locale=locale,
        supporter_id=supporter.id if supporter is not None else None,
        address_hash=address_hash,
        donation_id=checkout.id if isinstance(checkout, Donation) else None,
        recurring_plan_id=checkout.id if isinstance(checkout, RecurringPlan) else None,
        status=ConsentStatus.PENDING,
    )
    db.session.add(consent)
    db.session.flush()
    return consent


def apply_consent(consent: Consent, *, proof: str) -> bool:
    """Put a pending consent into force, the address being proven by ``proof``.

    Idempotent: True only for the call that applied it. A newsletter consent
    sets the supporter's opt-in; a reminders consent lifts an unsubscribe
    (never an erasure or a bounce, which no one can lift from outside).
    """
    if consent.status is not ConsentStatus.PENDING:
        return False
    consent.move_to(ConsentStatus.APPLIED)
    consent.proof = proof
    consent.applied_at = utcnow()
    match consent.topic:
        case ConsentTopic.NEWSLETTER:
            supporter = db.session.get(Supporter, consent.supporter_id or 0)
            if supporter is not None and supporter.erased_at is None:
                supporter.newsletter_opt_in = consent.granted
        case ConsentTopic.REMINDERS:
            if consent.granted and consent.address_hash:
                entry = suppression_for(consent.address_hash)
                if entry is not None and entry.reason is SuppressionReason.UNSUBSCRIBED:
                    lift_suppression(consent.address_hash)
    db.session.flush()
    log.info("consent %s applied (%s, proven by %s)", consent.id, consent.topic, proof)
    return True


def record_withdrawal(
    topic: ConsentTopic,
    *,
    source: str,
    proof: str,
    locale: str = "en",
    supporter: Supporter | None = None,
    address_hash: str | None = None,
) -> Consent:
    """A withdrawal that came through a link we sent (or the operator): applied at once."""
    withdrawal = request_consent(
        topic,
        source=source,
        locale=locale,
        granted=False,
        supporter=supporter,
        address_hash=address_hash,
    )
    apply_consent(withdrawal, proof=proof)
    # A grant still waiting for its proof is overtaken by the withdrawal.
    pending = select(Consent).where(
        Consent.topic == topic,
        Consent.status == ConsentStatus.PENDING,
        Consent.granted.is_(True),
    )
    if supporter is not None:
        pending = pending.where(Consent.supporter_id == supporter.id)
    elif address_hash is not None:
        pending = pending.where(Consent.address_hash == address_hash)
    else:  # pragma: no cover - callers name one
        return withdrawal
    for grant in db.session.scalars(pending):
        grant.move_to(ConsentStatus.EXPIRED)
    db.session.flush()
    return withdrawal


def checkout_consents(checkout: Donation | RecurringPlan) -> list[Consent]:
    column = Consent.donation_id if isinstance(checkout, Donation) else Consent.recurring_plan_id
    return list(
        db.session.scalars(
            select(Consent)
            .where(column == checkout.id, Consent.status == ConsentStatus.PENDING)
            .order_by(Consent.id)
        )
    )


def apply_checkout_consents(checkout: Donation | RecurringPlan) -> int:
    """The consents asked for with this checkout, now that it is paid."""
    return sum(apply_consent(c, proof="payment") for c in checkout_consents(checkout))


def expire_checkout_consents(checkout: Donation | RecurringPlan) -> int:
    """The consents of an abandoned checkout: never proven, never applied."""
    expired = 0
    for consent in checkout_consents(checkout):
        expired += consent.move_to(ConsentStatus.EXPIRED)
    db.session.flush()
    return expired
