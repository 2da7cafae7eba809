"""Background processing of stored Stripe events."""

from __future__ import annotations

from donations.payments.webhooks import process_event
from donations.tasks import celery_app


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
