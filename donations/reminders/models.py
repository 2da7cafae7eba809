"""A reminder: one email to one address, due at one time."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Model, str_enum, utcnow
from donations.status import InvalidTransition, RuledStatus, StatusRules, change_status
from donations.supporters.models import Frequency

log = logging.getLogger(__name__)


class ReminderStatus(StrEnum):
    PENDING = "pending"  # waiting for due_at
    SENT = "sent"  # handed to the outbox (email_message_id)
    SKIPPED = "skipped"  # due, but not sent (skip_reason)
    CANCELED = "canceled"  # withdrawn before it was due (unsubscribed)


class SkipReason(StrEnum):
    GAVE_SINCE = "gave_since"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    ERASED = "erased"


# Kept as a name for callers; the status helper raises it for every model.
InvalidReminderTransition = InvalidTransition


# The only place that says which status may follow which.
REMINDER_TRANSITIONS: dict[ReminderStatus, frozenset[ReminderStatus]] = {
    ReminderStatus.PENDING: frozenset(
        {ReminderStatus.SENT, ReminderStatus.SKIPPED, ReminderStatus.CANCELED}
    ),
    ReminderStatus.SENT: frozenset(),
    ReminderStatus.SKIPPED: frozenset(),
    ReminderStatus.CANCELED: frozenset(),
}
REMINDER_RULES = StatusRules("reminder", REMINDER_TRANSITIONS)


class Reminder(RuledStatus, Model):
    status_rules: ClassVar[StatusRules[ReminderStatus]] = REMINDER_RULES

    __tablename__ = "reminders"
    __table_args__ = (
        # At most one pending reminder per person and period (the due month).
        Index(
            "uq_reminders_pending_period",
            "email_key",
            "period",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        # The dispatcher's query: pending rows by due time.
        Index("ix_reminders_status_due_at", "status", "due_at"),
        CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The address as typed, and as compared; both are wiped on erasure.
    email: Mapped[str | None] = mapped_column(String(320))
    email_key: Mapped[str | None] = mapped_column(String(320))
    # The suppression list's key for this address (see mail.suppression.address_hash),
    # so an unsubscribe link, which carries only the hash, finds these rows.
    address_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    supporter_id: Mapped[int | None] = mapped_column(ForeignKey("supporters.id"), index=True)
    locale: Mapped[str] = mapped_column(String(10), default="en")
    # What the reader was looking at when they asked, to prefill the ask.
    frequency: Mapped[Frequency | None] = mapped_column(str_enum(Frequency, 10))
    currency: Mapped[str | None] = mapped_column(String(3))
    amount: Mapped[int | None]
    source: Mapped[str | None] = mapped_column(String(500))
    # Where the reader asked (donations.supporters.attribution), carried on by the email's link.
    article: Mapped[str | None] = mapped_column(String(300))
    campaign: Mapped[str | None] = mapped_column(String(100))
    variant: Mapped[str | None] = mapped_column(String(50))
    months: Mapped[int]
    due_at: Mapped[datetime]
    # "YYYY-MM" of due_at (UTC): the period of the one-pending rule.
    period: Mapped[str] = mapped_column(String(7))
    status: Mapped[ReminderStatus] = mapped_column(
        str_enum(ReminderStatus), default=ReminderStatus.PENDING
    )
    skip_reason: Mapped[SkipReason | None] = mapped_column(str_enum(SkipReason))
    email_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_messages.id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]

    def move_to(self, new: ReminderStatus, reason: SkipReason | None = None) -> bool:
        """Change status by the rules above (compare-and-set); True if it changed."""
        return change_status(self, new, skip_reason=reason)

    def __repr__(self) -> str:
        return f"<Reminder {self.id} {self.status} due {self.due_at:%Y-%m-%d}>"
