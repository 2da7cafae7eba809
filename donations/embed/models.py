"""What the embed counts: one row per day and event and placement, never per reader."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from sqlalchemy import CheckConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Model, str_enum


class EmbedEvent(StrEnum):
    IMPRESSION = "impression"  # the ask was shown
    DISMISSAL = "dismissal"  # the reader closed it
    CONTINUE = "continue"  # the reader went on to the checkout
    REMIND = "remind"  # the reader followed "Remind me later"
    # Upsell from once to monthly (when switched on): offered, and the reader's answer.
    UPSELL_OFFERED = "upsell_offered"
    UPSELL_ACCEPTED = "upsell_accepted"
    UPSELL_DECLINED = "upsell_declined"


class EmbedCount(Model):
    """A privacy-preserving counter: how often, per day, never who.

    No address, id, cookie or user agent is stored; a reader's events only add
    one to a shared total. Gifts and reminder sign-ups are counted from their
    own rows (which carry the same article, campaign and variant).
    """

    __tablename__ = "embed_counts"
    __table_args__ = (
        UniqueConstraint("day", "event", "article", "campaign", "variant"),
        CheckConstraint("count > 0", name="count_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date]
    event: Mapped[EmbedEvent] = mapped_column(str_enum(EmbedEvent, 20))
    # "" rather than NULL, so the unique constraint holds on every database.
    article: Mapped[str] = mapped_column(String(300), default="")
    campaign: Mapped[str] = mapped_column(String(100), default="")
    variant: Mapped[str] = mapped_column(String(50), default="")
    count: Mapped[int] = mapped_column(default=0)
