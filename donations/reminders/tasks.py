"""Sending due reminders: Celery beat runs this every minute (or the embedded scheduler)."""

from __future__ import annotations

import logging
from datetime import datetime

from donations.db import commit, db, utcnow
from donations.reminders.services import DispatchResult, claim_due_reminders, dispatch_reminders
from donations.tasks import celery_app

log = logging.getLogger(__name__)

BATCH_SIZE = 200
# One run handles at most this many batches; the next run (a minute later,
# or another worker at the same time) takes the rest.
MAX_BATCHES = 100


def send_due_reminders(
    now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES
) -> DispatchResult:
    """Claim, check and hand over every reminder due at ``now``, batch by batch.

    Each batch is one transaction: claim, decide, queue the emails, commit.
    The emails of a batch then go out together over one SMTP connection
    (inline in the embedded default, on a worker with Celery). Safe to run
    in several processes at once.
    """
    from donations.mail.tasks import send_emails

    total = DispatchResult()
    for _ in range(max_batches):
        moment = now or utcnow()
        batch = claim_due_reminders(moment, batch_size)
        if not batch:
            db.session.rollback()
            break
        result = dispatch_reminders(batch, moment)
        if result.message_ids:
            send_emails.delay_on_commit(list(result.message_ids))
        commit()
        total.add(result)
        if len(batch) < batch_size:
            break
    if total.claimed:
        log.info(
            "reminders: %s due, %s sent, skipped %s",
            total.claimed,
            total.sent,
            dict(total.skipped) or "none",
        )
    return total


@celery_app.task(name="reminders.send_due", ignore_result=True)
def send_due() -> None:
    """Periodic (beat, every minute): send the reminders that are due."""
    send_due_reminders()
