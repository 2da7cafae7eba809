"""Every Stripe webhook delivery, stored before it is processed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Model, utcnow


class StripeEvent(Model):
    __tablename__ = "stripe_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    livemode: Mapped[bool]
    object_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # The verified raw body, byte for byte as Stripe signed it.
    payload: Mapped[str] = mapped_column(Text)
    stripe_created_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    deliveries: Mapped[int] = mapped_column(default=1)
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<StripeEvent {self.stripe_event_id} {self.type}>"
