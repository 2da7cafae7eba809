"""Stripe webhook deliveries: store every one, process each event idempotently.

The view only verifies and stores; :func:`handle_event` dispatches by type to
one small function per event, each of which re-reads the authoritative object
from Stripe and sets absolute state, so duplicates and out-of-order deliveries
converge on the same ledger.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Executable, Table, and_, bindparam, or_, select, update

from donations.db import commit, db, insert_ignoring_conflicts, utcnow
from donations.observability import webhook_event
from donations.payments import ledger, notices, recurring
from donations.payments.gateway import WebhookEvent
from donations.payments.models import StripeEvent
from donations.payments.services import gateway

log = logging.getLogger(__name__)


class MissingParent(Exception):
    """The event refers to something we cannot place yet; Stripe will deliver again."""


SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
)
# invoice.payment_succeeded is the older name some senders still use.
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed"})
# Sent some days before a subscription renews (Stripe's "upcoming renewal
# events" setting): https://docs.stripe.com/api/events/types#event_types-invoice.upcoming
UPCOMING_INVOICE_EVENT = "invoice.upcoming"

PAYMENT_INTENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.processing",
        "payment_intent.canceled",
    }
)
# Settlement and refunds: each re-reads the whole charge.
CHARGE_EVENTS = frozenset({"charge.succeeded", "charge.updated", "charge.refunded"})
REFUND_EVENTS = frozenset(
    {"charge.refund.updated", "refund.created", "refund.updated", "refund.failed"}
)
DISPUTE_EVENTS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
PAYOUT_EVENTS = frozenset(
    {
        "payout.created",
        "payout.updated",
        "payout.paid",
        "payout.failed",
        "payout.canceled",
        "payout.reconciliation_completed",
    }
)


@dataclass(frozen=True)
class StoredDelivery:
    """What the endpoint needs to know about the stored event."""

    id: int
    processed_at: datetime | None
    deliveries: int


def store_event(event: WebhookEvent, raw_body: str) -> StoredDelivery:
    """Record a verified delivery; a repeat delivery only bumps its counter.

    One statement either way -- INSERT ... ON CONFLICT DO NOTHING, then for a
    repeat an UPDATE -- so concurrent deliveries of one event never race to a
    unique-constraint error, and ingestion costs one round trip. The INSERT
    is built once per database with bound parameters: building it per
    delivery (and its cache key) cost more than sending it.
    """
    stored = db.session.execute(
        _store_statement(db.session.get_bind().dialect.name),
        {
            "stripe_event_id": event.id,
            "type": event.type,
            "livemode": event.livemode,
            "object_id": event.object_id,
            "payload": raw_body,
            "stripe_created_at": datetime.fromtimestamp(event.created, UTC),
            "received_at": utcnow(),
        },
    ).first()
    if stored is None:
        # Another delivery of the same event stored it first.
        stored = db.session.execute(
            update(StripeEvent)
            .where(StripeEvent.stripe_event_id == event.id)
            .values(deliveries=StripeEvent.deliveries + 1)
            .returning(StripeEvent.id, StripeEvent.processed_at, StripeEvent.deliveries)
            .execution_options(synchronize_session=False)
        ).one()
    return StoredDelivery(*stored)


@functools.cache
def _store_statement(dialect: str) -> Executable:
    table = StripeEvent.__table__
    assert isinstance(table, Table)
    given = ("stripe_event_id", "type", "livemode", "object_id", "payload")
    values: dict[str, Any] = {
        name: bindparam(name) for name in (*given, "stripe_created_at", "received_at")
    }
    values |= {"deliveries": 1, "attempts": 0}
    return insert_ignoring_conflicts(table, values, ["stripe_event_id"], dialect).returning(
        table.c.id, table.c.processed_at, table.c.deliveries
    )


# The sweep waits 1, 2, 4 ... minutes between tries, at most 6 hours.
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=6)


def max_attempts() -> int:
    """The failed attempt that parks an event (``WEBHOOK_MAX_ATTEMPTS``): no longer
    retried on its own, shown to admins with its error."""
    return int(current_app.config["SETTINGS"].webhook_max_attempts)


def retry_delay(attempts: int) -> timedelta:
    """How long the sweep waits after the ``attempts``-th failure."""
    return min(FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 20), LONGEST_RETRY)


def process_event(event_id: int) -> None:
    """Process one stored event (safe to call again, or from two workers at once; it commits).

    The event is claimed first with an UPDATE guarded by ``processed_at IS
    NULL``: that write holds the row's lock (PostgreSQL) or the database's
    write lock (SQLite) until the commit, so a concurrent delivery or worker
    waits, then finds the event processed and does nothing. A worker killed
    after the commit leaves a processed event: its redelivery is a no-op.

    A failure records its error and when to try again; the attempt that
    reaches :func:`max_attempts` parks the event instead. A parked event is
    not processed (a redelivery of it answers 2xx, so Stripe stops too) until
    an admin retries it (:func:`retry_parked_event`).
    """
    claimed = db.session.execute(
        update(StripeEvent)
        .where(
            StripeEvent.id == event_id,
            StripeEvent.processed_at.is_(None),
            StripeEvent.parked_at.is_(None),
        )
        .values(attempts=StripeEvent.attempts + 1)
        .returning(StripeEvent.attempts)
        .execution_options(synchronize_session=False)
    ).scalar()
    if claimed is None:
        db.session.rollback()
        return
    attempts = int(claimed)
    row = db.session.get(StripeEvent, event_id, populate_existing=True)
    assert row is not None
    event_type = row.type
    try:
        handle_event(row)
    except Exception as exc:
        db.session.rollback()
        _record_failure(event_id, attempts, exc)
        webhook_event(event_type, "parked" if attempts >= max_attempts() else "failed")
        raise
    webhook_event(event_type, "processed")
    row.processed_at = utcnow()
    row.last_error = None
    row.next_attempt_at = None
    commit()


def _record_failure(event_id: int, attempts: int, exc: Exception) -> None:
    now = utcnow()
    parked = attempts >= max_attempts()
    db.session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == event_id)
        .values(
            attempts=attempts,
            last_error=repr(exc)[:2000],
            next_attempt_at=None if parked else now + retry_delay(attempts),
            parked_at=now if parked else None,
        )
    )
    commit()
    if parked:
        log.error("Stripe event %s failed %d times and is parked: %r", event_id, attempts, exc)


def process_pending_events(older_than: timedelta = timedelta(minutes=5), limit: int = 200) -> int:
    """Process stored events left unprocessed (a lost task, a failing handler); returns how many.

    The safety net behind the Celery path: a delivery that was stored and
    answered 2xx but whose task never ran is not delivered again by Stripe.
    An event that failed waits for its ``next_attempt_at``; parked ones are left.
    """
    now = utcnow()
    cutoff = now - older_than
    ids = db.session.scalars(
        select(StripeEvent.id)
        .where(
            StripeEvent.processed_at.is_(None),
            StripeEvent.parked_at.is_(None),
            or_(
                StripeEvent.next_attempt_at <= now,
                and_(StripeEvent.next_attempt_at.is_(None), StripeEvent.received_at < cutoff),
            ),
        )
        .order_by(StripeEvent.stripe_created_at, StripeEvent.id)
        .limit(limit)
    ).all()
    db.session.rollback()
    return _process_each(ids)


def process_new_events(limit: int = 100) -> int:
    """Process stored events that were never tried, in the order they arrived.

    What the drain task does over and over until it returns 0. Returns how
    many it tried: an event that fails gets a ``next_attempt_at`` and is the
    sweep's from then on, so it is not tried here again.
    """
    ids = db.session.scalars(
        select(StripeEvent.id)
        .where(
            StripeEvent.processed_at.is_(None),
            StripeEvent.parked_at.is_(None),
            StripeEvent.next_attempt_at.is_(None),
        )
        .order_by(StripeEvent.id)
        .limit(limit)
    ).all()
    db.session.rollback()
    _process_each(ids)
    return len(ids)


def _process_each(ids: Sequence[int]) -> int:
    """Process each event (a failure is recorded on it and logged); how many succeeded."""
    done = 0
    for event_id in ids:
        try:
            process_event(event_id)
        except Exception:
            log.exception("stored Stripe event %s failed", event_id)
            continue
        done += 1
    return done


def parked_events(limit: int = 200) -> list[StripeEvent]:
    """Events that kept failing and wait for an admin, newest first."""
    return list(
        db.session.scalars(
            select(StripeEvent)
            .where(StripeEvent.parked_at.is_not(None), StripeEvent.processed_at.is_(None))
            .order_by(StripeEvent.parked_at.desc(), StripeEvent.id.desc())
            .limit(limit)
        )
    )


def retry_parked_event(event_id: int) -> bool:
    """Take a parked event back and process it now; True when it went through.

    It gets one more attempt: a failure parks it again, with the new error.
    """
    unparked = db.session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == event_id, StripeEvent.parked_at.is_not(None))
        .values(parked_at=None, attempts=max_attempts() - 1, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    commit()
    if not unparked:
        return False
    try:
        process_event(event_id)
    except Exception:
        log.warning("parked Stripe event %s failed again", event_id, exc_info=True)
        return False
    return True


def handle_event(event: StripeEvent) -> None:
    match event.type:
        case t if t in PAYMENT_INTENT_EVENTS:
            _sync_payment_intent(event)
        case t if t in SUBSCRIPTION_EVENTS:
            _sync_subscription(event)
        case t if t in INVOICE_EVENTS:
            _sync_invoice(event)
        case t if t == UPCOMING_INVOICE_EVENT:
            _upcoming_invoice(event)
        case t if t in CHARGE_EVENTS:
            _sync_named(event, ledger.sync_charge)
        case t if t in REFUND_EVENTS:
            _sync_named(event, ledger.sync_refund)
        case t if t in DISPUTE_EVENTS:
            _sync_named(event, ledger.sync_dispute)
        case t if t in PAYOUT_EVENTS:
            _sync_named(event, ledger.sync_payout)
        case _:
            log.info("ignoring Stripe event %s of type %s", event.stripe_event_id, event.type)


def _sync_subscription(event: StripeEvent) -> None:
    if not event.object_id:
        return
    snapshot = gateway().retrieve_subscription(event.object_id)
    if recurring.sync_subscription(snapshot) is None:
        # A subscription we have no plan for yet (our own checkout has not
        # committed, or this is another system's): retried by Stripe.
        raise MissingParent(f"no plan for subscription {snapshot.id}")


def _sync_invoice(event: StripeEvent) -> None:
    if not event.object_id:
        return
    invoice = gateway().retrieve_invoice(event.object_id)
    if invoice.subscription_id is None:
        return
    # The subscription's state (past due, active again) comes with the invoice.
    plan = recurring.sync_subscription(gateway().retrieve_subscription(invoice.subscription_id))
    if plan is None:
        raise MissingParent(f"no plan for invoice {invoice.id}")
    recurring.record_invoice(invoice, plan)
    if event.type == "invoice.payment_failed" and invoice.billing_reason == "subscription_cycle":
        recurring.queue_dunning(plan, invoice)


def _upcoming_invoice(event: StripeEvent) -> None:
    """A renewal is coming: bring the plan up to date, then queue its notices.

    The upcoming invoice is a preview without an id, so the subscription it
    names is re-read instead; the notices are the sweep's own, keyed per plan
    and period, so a repeated delivery (or the sweep) adds none.
    """
    subscription_id = gateway().upcoming_invoice_subscription(event.payload)
    if subscription_id is None:
        return
    plan = recurring.sync_subscription(gateway().retrieve_subscription(subscription_id))
    if plan is None:
        raise MissingParent(f"no plan for subscription {subscription_id}")
    notices.queue_plan_notices(plan)


def _sync_payment_intent(event: StripeEvent) -> None:
    if not event.object_id:
        return
    # The event's copy may be stale or in an older API shape; the
    # PaymentIntent as Stripe has it now is what counts.
    snapshot = gateway().retrieve_payment(event.object_id)
    ledger.sync_payment(snapshot)


def _sync_named(event: StripeEvent, sync: Callable[[str], object]) -> None:
    """Record the object the event names as Stripe has it now (``sync`` re-reads it)."""
    if event.object_id:
        sync(event.object_id)
