"""The work waiting in the database, for the operator's metrics (donations.observability).

Each queue is counted with the age of its oldest item: Stripe events stored
but not processed (and those parked for an admin), the mail outbox, and
reminders that are due but not handled yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from donations.db import db, utcnow
from donations.mail.models import EmailMessage, EmailStatus
from donations.payments.models import StripeEvent
from donations.reminders.models import Reminder, ReminderStatus


def backlog() -> dict[str, tuple[int, float]]:
    """Queue name -> (items waiting, seconds the oldest has waited; 0 when none)."""
    now = utcnow()
    queues: dict[str, tuple[Any, ...]] = {
        "webhook_events": (
            StripeEvent.received_at,
            StripeEvent.processed_at.is_(None),
            StripeEvent.parked_at.is_(None),
        ),
        "webhook_events_parked": (
            StripeEvent.parked_at,
            StripeEvent.processed_at.is_(None),
            StripeEvent.parked_at.is_not(None),
        ),
        "mail_outbox": (
            EmailMessage.created_at,
            EmailMessage.status.in_([EmailStatus.QUEUED, EmailStatus.SENDING]),
        ),
        "reminders_due": (
            Reminder.due_at,
            Reminder.status == ReminderStatus.PENDING,
            Reminder.due_at <= now,
        ),
    }
    found: dict[str, tuple[int, float]] = {}
    try:
        for name, (stamp, *where) in queues.items():
            count, oldest = db.session.execute(
                select(func.count(), func.min(stamp)).where(*where)
            ).one()
            found[name] = (int(count), _age(now, oldest))
    finally:
        db.session.remove()
    return found


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=now.tzinfo)
    return max((now - then).total_seconds(), 0.0)
