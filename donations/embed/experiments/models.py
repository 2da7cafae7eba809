"""Experiments on the ask and their variants (counts live in ``embed_counts`` and the ledger)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from donations.db import Model, str_enum, utcnow


class ExperimentStatus(StrEnum):
    DRAFT = "draft"  # defined, not served
    RUNNING = "running"  # served by the embed
    ENDED = "ended"  # no longer served; its results stay


# The only transitions there are (ExperimentError for any other).
EXPERIMENT_TRANSITIONS: dict[ExperimentStatus, frozenset[ExperimentStatus]] = {
    ExperimentStatus.DRAFT: frozenset({ExperimentStatus.RUNNING, ExperimentStatus.ENDED}),
    ExperimentStatus.RUNNING: frozenset({ExperimentStatus.ENDED}),
    ExperimentStatus.ENDED: frozenset(),
}


class Experiment(Model):
    """An A/B test of the ask; its design (rates in basis points) fixes the planned sample."""

    __tablename__ = "experiments"
    __table_args__ = (
        CheckConstraint("baseline_bps > 0 AND baseline_bps < 10000", name="baseline_range"),
        CheckConstraint("mde_bps > 0", name="mde_positive"),
        CheckConstraint("alpha_bps > 0 AND alpha_bps < 10000", name="alpha_range"),
        CheckConstraint("power_bps > 0 AND power_bps < 10000", name="power_range"),
        CheckConstraint(
            "guardrail_margin_bps > 0 AND guardrail_margin_bps < 10000", name="margin_range"
        ),
        CheckConstraint("guardrail_minimum > 0", name="guardrail_minimum_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Part of every variant's attribution value ("slug:key"), so at most 30 characters.
    slug: Mapped[str] = mapped_column(String(30), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[ExperimentStatus] = mapped_column(
        str_enum(ExperimentStatus, 20), default=ExperimentStatus.DRAFT
    )
    # Mixed into the reader's bucket, so each experiment splits readers afresh.
    seed: Mapped[str] = mapped_column(String(32))
    baseline_bps: Mapped[int]  # control's expected conversion rate, e.g. 200 = 2%
    mde_bps: Mapped[int]  # minimum detectable effect, relative: 2000 = +20%
    alpha_bps: Mapped[int] = mapped_column(default=500)
    power_bps: Mapped[int] = mapped_column(default=8000)
    guardrail_margin_bps: Mapped[int] = mapped_column(default=2000)  # relative to control
    guardrail_minimum: Mapped[int] = mapped_column(default=1000)  # impressions per variant
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]

    variants: Mapped[list[ExperimentVariant]] = relationship(
        back_populates="experiment",
        order_by="ExperimentVariant.position",
        cascade="all, delete-orphan",
    )

    @property
    def control(self) -> ExperimentVariant:
        return self.variants[0]


class ExperimentVariant(Model):
    """One arm: its share of readers (percent) and what it changes in the ask."""

    __tablename__ = "experiment_variants"
    __table_args__ = (
        UniqueConstraint("experiment_id", "key", name="uq_experiment_variants_key"),
        UniqueConstraint("experiment_id", "position", name="uq_experiment_variants_position"),
        CheckConstraint("share > 0 AND share < 100", name="share_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"))
    key: Mapped[str] = mapped_column(String(19))
    position: Mapped[int]  # 0 is control
    share: Mapped[int]  # percent of readers, the experiment's shares add up to 100
    # What this arm changes: headline/appeal per language, default_frequency,
    # presets per currency and frequency, upsell on or off (see services.VARIANT_KEYS).
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stopped_at: Mapped[datetime | None]
    stopped_reason: Mapped[str | None] = mapped_column(String(200))

    experiment: Mapped[Experiment] = relationship(back_populates="variants")

    @property
    def attribution(self) -> str:
        """What gifts, plans, reminders and counters record as their variant."""
        return f"{self.experiment.slug}:{self.key}"
