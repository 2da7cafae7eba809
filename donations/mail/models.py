"""The outbox: every email we intend to send, kept until it has gone."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Model, str_enum, utcnow


class EmailStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


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
    supporter_id: Mapped[int | None] = mapped_column(ForeignKey("supporters.id"), index=True)
    status: Mapped[EmailStatus] = mapped_column(
        str_enum(EmailStatus), default=EmailStatus.QUEUED, index=True
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<EmailMessage {self.dedupe_key} {self.status}>"
