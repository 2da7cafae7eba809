"""Background processing of stored Stripe events, and the nightly reconciliation."""

from __future__ import annotations

import logging
from datetime import timedelta

from donations.db import utcnow
from donations.payments.reconcile import reconcile
from donations.payments.webhooks import process_event, process_pending_events
from donations.tasks import celery_app

log = logging.getLogger(__name__)

# Stripe may still change a payment days later (a SEPA debit settling, a
# refund failing): each night looks back this far.
RECONCILE_DAYS = 3


@celery_app.task(
    name="payments.process_stripe_event",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=10,
)
def process_stripe_event(event_id: int) -> None:
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
    if report.remaining:
        log.error("reconciliation left %d differences unrepaired", len(report.remaining))
