"""Stripe webhook deliveries: store every one, process each event idempotently.

The view only verifies and stores; :func:`handle_event` dispatches by type to
one small function per event, each of which re-reads the authoritative object
from Stripe and sets absolute state, so duplicates and out-of-order deliveries
converge on the same ledger.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from donations.db import commit, db, utcnow
from donations.payments.gateway import WebhookEvent
from donations.payments.models import StripeEvent
from donations.payments.services import gateway, record_payment

log = logging.getLogger(__name__)

PAYMENT_INTENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.processing",
        "payment_intent.canceled",
    }
)


def store_event(event: WebhookEvent, raw_body: str) -> StripeEvent:
    """Record a verified delivery; a repeat delivery only bumps its counter."""
    existing = db.session.scalar(select(StripeEvent).where(StripeEvent.stripe_event_id == event.id))
    if existing is None:
        row = StripeEvent(
            stripe_event_id=event.id,
            type=event.type,
            livemode=event.livemode,
            object_id=event.object_id,
            payload=raw_body,
            stripe_created_at=datetime.fromtimestamp(event.created, UTC),
        )
        try:
            with db.session.begin_nested():
                db.session.add(row)
            return row
        except IntegrityError:
            # Another delivery of the same event won the insert.
            existing = db.session.scalar(
                select(StripeEvent).where(StripeEvent.stripe_event_id == event.id)
            )
            assert existing is not None
    db.session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == existing.id)
        .values(deliveries=StripeEvent.deliveries + 1)
    )
    return existing


def process_event(event_id: int) -> None:
    """Process one stored event (safe to call again; it commits)."""
    row = db.session.get(StripeEvent, event_id)
    if row is None or row.processed_at is not None:
        return
    try:
        handle_event(row)
    except Exception as exc:
        db.session.rollback()
        db.session.execute(
            update(StripeEvent)
            .where(StripeEvent.id == event_id)
            .values(attempts=StripeEvent.attempts + 1, last_error=repr(exc)[:2000])
        )
        db.session.commit()
        raise
    row.attempts += 1
    row.processed_at = utcnow()
    row.last_error = None
    commit()


def handle_event(event: StripeEvent) -> None:
    match event.type:
        case t if t in PAYMENT_INTENT_EVENTS:
            _sync_payment_intent(event)
        case _:
            log.info("ignoring Stripe event %s of type %s", event.stripe_event_id, event.type)


def _sync_payment_intent(event: StripeEvent) -> None:
    if not event.object_id:
        return
    # The event's copy may be stale or in an older API shape; the
    # PaymentIntent as Stripe has it now is what counts.
    snapshot = gateway().retrieve_payment(event.object_id)
    record_payment(snapshot)
