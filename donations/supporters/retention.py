"""Cancellations as supporters make them: the reason given and the offer taken.

One row per attempt to cancel a plan in /manage (donations.manage.pause):
the reason, the offers shown (each once per attempt), and how it ended --
saved by an offer, or cancelled (with or without a reminder instead). The
back office's retention report counts these rows.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from donations.db import Model, str_enum, utcnow
from donations.status import RuledStatus, StatusRules
from donations.supporters.models import RecurringPlan, Supporter


class AttemptStatus(StrEnum):
    OFFERED = "offered"  # a reason given; the offers are on the screen
    SAVED = "saved"  # an offer that keeps the plan was taken (a pause...)
    CANCELLED = "cancelled"  # Stripe confirmed the cancellation (now or at the period's end)


ATTEMPT_TRANSITIONS: dict[AttemptStatus, frozenset[AttemptStatus]] = {
    AttemptStatus.OFFERED: frozenset({AttemptStatus.SAVED, AttemptStatus.CANCELLED}),
    AttemptStatus.SAVED: frozenset(),
    AttemptStatus.CANCELLED: frozenset(),
}


class CancellationTiming(StrEnum):
    PERIOD_END = "period_end"
    NOW = "now"


class CancellationAttempt(RuledStatus, Model):
    __tablename__ = "cancellation_attempts"

    status_rules: ClassVar[StatusRules[AttemptStatus]] = StatusRules(
        "cancellation attempt", ATTEMPT_TRANSITIONS
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("recurring_plans.id"), index=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    # A key of the CANCEL_REASONS setting (kept as given, should the list change).
    reason: Mapped[str] = mapped_column(String(40))
    timing: Mapped[CancellationTiming] = mapped_column(str_enum(CancellationTiming, 20))
    # The offers shown, comma-separated (CANCEL_OFFERS at the time).
    offers_shown: Mapped[str] = mapped_column(String(100), default="")
    # The offer taken, if any: pause, reminder (lower_amount, annual once offered).
    offer_taken: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[AttemptStatus] = mapped_column(
        str_enum(AttemptStatus, 20), default=AttemptStatus.OFFERED
    )
    source: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]

    plan: Mapped[RecurringPlan] = relationship()
    supporter: Mapped[Supporter] = relationship()

    def __repr__(self) -> str:
        return f"<CancellationAttempt {self.id} {self.status}>"
