"""Background processing of stored Stripe events, and the nightly reconciliation."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from flask import current_app

from donations.db import commit, db, utcnow
from donations.observability import RECONCILE_DIFFERENCES
from donations.payments.abandoned import abandoned_checkouts, expire_checkout
from donations.payments.gateway import GatewayError
from donations.payments.notices import send_plan_notices
from donations.payments.reconcile import reconcile
from donations.payments.webhooks import process_event, process_new_events, process_pending_events
from donations.tasks import celery_app

log = logging.getLogger(__name__)

# Stripe may still change a payment days later (a SEPA debit settling, a
# refund failing): each night looks back this far.
RECONCILE_DAYS = 3


# A drain run hands over to a new one after this long, so that a steady
# stream of events does not hold one worker slot for ever.
DRAIN_SECONDS = 60.0


@celery_app.task(name="payments.drain_events", ignore_result=True)
def drain_stripe_events() -> None:
    """Process newly stored events, oldest first, until none is left.

    The webhook endpoint wakes it after storing a delivery
    (:meth:`~donations.tasks.DonationsTask.wake_on_commit`): one queued run
    for any number of deliveries, where a task per event would cost each
    delivery a Celery message. Events are claimed one by one
    (:func:`process_event`), so two runs at once never process one twice;
    one that fails is retried by the sweep with backoff.
    """
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        if process_new_events():
            drain_stripe_events.awake()
            if time.monotonic() > deadline:
                drain_stripe_events.delay()
                return
            continue
        drain_stripe_events.asleep()
        # Stored while this run was finishing, woken against the shut gate.
        if not process_new_events():
            return


@celery_app.task(name="payments.process_stripe_event", ignore_result=True)
def process_stripe_event(event_id: int) -> None:
    """One event: what releases before the drain queued; kept for their messages."""
    process_event(event_id)


@celery_app.task(name="payments.process_pending_events", ignore_result=True)
def process_pending_stripe_events() -> None:
    """Process stored deliveries whose task was lost or kept failing."""
    process_pending_events()


@celery_app.task(name="payments.reconcile_recent", ignore_result=True)
def reconcile_recent(days: int = RECONCILE_DAYS) -> None:
    """The nightly reconciliation: the last few days, so late changes are caught."""
    now = utcnow()
    report = reconcile(now - timedelta(days=days), now, dry_run=False)
    for line in report.lines():
        log.info("%s", line)
    RECONCILE_DIFFERENCES.set(len(report.remaining))
    if report.remaining:
        log.error("reconciliation left %d differences unrepaired", len(report.remaining))


def expire_abandoned(now: datetime | None = None) -> int:
    """Expire checkouts older than CHECKOUT_EXPIRY_HOURS; one commit per checkout.

    A checkout Stripe cannot be asked about now is left for the next run.
    """
    hours = current_app.config["SETTINGS"].checkout_expiry_hours
    expired = 0
    for checkout in abandoned_checkouts(now or utcnow(), timedelta(hours=hours)):
        try:
            expired += expire_checkout(checkout)
            commit()
        except GatewayError:
            db.session.rollback()
            log.warning("could not expire %r yet", checkout, exc_info=True)
    if expired:
        log.info("expired %d abandoned checkouts", expired)
    return expired


@celery_app.task(name="payments.expire_abandoned_checkouts", ignore_result=True)
def expire_abandoned_checkouts() -> None:
    """Periodic (beat, or the embedded scheduler): expire abandoned checkouts."""
    expire_abandoned()


@celery_app.task(name="payments.send_plan_notices", ignore_result=True)
def send_plan_notices_task() -> None:
    """Periodic: renewal reminders for annual plans and card-expiry notices, once each."""
    send_plan_notices()
    commit()
