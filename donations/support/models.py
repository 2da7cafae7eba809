"""Campaigns: what the ask is raising for, until when, and towards what goal."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Model, str_enum, utcnow


class GoalKind(StrEnum):
    AMOUNT = "amount"  # minor units of goal_currency
    SUPPORTERS = "supporters"  # people who gave


class Campaign(Model):
    """A time-boxed appeal with a goal; gifts name it by ``slug`` (``donations.campaign``)."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("goal > 0", name="goal_positive"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint(
            "(goal_kind = 'amount') = (goal_currency IS NOT NULL)", name="currency_for_amount"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    # The meter's caption per language, e.g. {"en": "Winter appeal", "ru": "..."}.
    title: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    goal_kind: Mapped[GoalKind] = mapped_column(str_enum(GoalKind, 20))
    goal: Mapped[int]
    goal_currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
