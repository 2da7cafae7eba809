"""The outbox: every email we intend to send, kept until it has gone."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Model, str_enum, utcnow


class EmailStatus(StrEnum):
    QUEUED = "queued"  # waiting to be sent (again, from next_attempt_at)
    SENDING = "sending"  # claimed by a sender since claimed_at
    SENT = "sent"
    FAILED = "failed"  # refused for good, or retries exhausted
    SUPPRESSED = "suppressed"  # not sent: the address is on the suppression list


class EmailMessage(Model):
    __tablename__ = "email_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    # At most one email per intent, e.g. "receipt:donation:42": a second
    # attempt to queue it hits the unique constraint and is a no-op.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    template: Mapped[str] = mapped_column(String(50))
    to_address: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(10), default="en")
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Extra headers for this message (List-Unsubscribe, ...), one line each.
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    # Mail the reader can opt out of (reminders) is checked against the
    # suppression list again right before it leaves; receipts are not.
    suppressible: Mapped[bool] = mapped_column(default=False, server_default=false())
    supporter_id: Mapped[int | None] = mapped_column(ForeignKey("supporters.id"), index=True)
    status: Mapped[EmailStatus] = mapped_column(
        str_enum(EmailStatus), default=EmailStatus.QUEUED, index=True
    )
    attempts: Mapped[int] = mapped_column(default=0)
    # When a QUEUED message may be tried again (after a temporary failure).
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    # When a sender claimed it; a SENDING row this old belongs to a dead worker.
    claimed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<EmailMessage {self.dedupe_key} {self.status}>"


class AttemptOutcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # temporary failure, tried again later
    GAVE_UP = "gave_up"  # temporary failure, but no tries left
    REFUSED = "refused"  # permanent failure (5xx)
    SUPPRESSED = "suppressed"  # not tried: the address is suppressed


class EmailAttempt(Model):
    """One try at handing a message to the mail server, whatever came of it."""

    __tablename__ = "email_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("email_messages.id"), index=True)
    number: Mapped[int]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    outcome: Mapped[AttemptOutcome] = mapped_column(str_enum(AttemptOutcome))
    smtp_code: Mapped[int | None]
    detail: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<EmailAttempt {self.message_id}#{self.number} {self.outcome}>"


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # the server said the mailbox does not exist (550)
    ERASED = "erased"  # the person's data was erased; never write again


class Suppression(Model):
    """An address we must not send optional mail to.

    Keyed by a hash of the normalised address, not the address itself, so
    the entry can outlive the erasure of everything else we knew about the
    person (see :func:`donations.mail.suppression.address_hash`).
    """

    __tablename__ = "email_suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(str_enum(SuppressionReason))
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<Suppression {self.address_hash[:12]} {self.reason}>"
