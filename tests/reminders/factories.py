"""Reminder rows written straight to the database (no confirmation email)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from donations.db import db, utcnow
from donations.mail.suppression import address_hash
from donations.reminders.models import Reminder, ReminderStatus
from donations.supporters.models import Frequency


def reminder(
    email: str = "reader@example.org",
    *,
    due_at: datetime | None = None,
    created_at: datetime | None = None,
    status: ReminderStatus = ReminderStatus.PENDING,
    locale: str = "en",
    frequency: Frequency | None = Frequency.MONTHLY,
    currency: str | None = "USD",
    amount: int | None = 1000,
    **extra: Any,
) -> Reminder:
    due_at = due_at or utcnow() - timedelta(minutes=1)
    row = Reminder(
        email=email,
        email_key=email.strip().lower(),
        address_hash=address_hash(email),
        locale=locale,
        frequency=frequency,
        currency=currency,
        amount=amount,
        months=1,
        due_at=due_at,
        period=f"{due_at:%Y-%m}",
        status=status,
        created_at=created_at or due_at - timedelta(days=30),
        **extra,
    )
    db.session.add(row)
    db.session.flush()
    return row
