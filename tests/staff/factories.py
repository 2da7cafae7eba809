"""Ledger rows for the back-office tests, written straight to the database."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from donations.db import db, utcnow
from donations.embed.experiments.models import Experiment
from donations.supporters.models import (
    Donation,
    DonationStatus,
    Frequency,
    PlanStatus,
    RecurringPlan,
    Supporter,
)


def supporter(email: str = "ada@example.org", name: str = "Ada Reader", **extra: Any) -> Supporter:
    row = Supporter(email=email, email_key=email.lower(), name=name, **extra)
    db.session.add(row)
    db.session.flush()
    return row


def donation(
    owner: Supporter,
    amount: int = 1000,
    currency: str = "USD",
    *,
    succeeded_at: datetime | None = None,
    status: DonationStatus = DonationStatus.SUCCEEDED,
    frequency: Frequency = Frequency.ONCE,
    **extra: Any,
) -> Donation:
    row = Donation(
        attempt_key=secrets.token_hex(16),
        public_token=secrets.token_urlsafe(16),
        supporter=owner,
        amount=amount,
        currency=currency,
        frequency=frequency,
        status=status,
        succeeded_at=(succeeded_at or utcnow()) if status is DonationStatus.SUCCEEDED else None,
        **extra,
    )
    db.session.add(row)
    db.session.flush()
    return row


def plan(
    owner: Supporter,
    amount: int = 500,
    currency: str = "USD",
    *,
    frequency: Frequency = Frequency.MONTHLY,
    status: PlanStatus = PlanStatus.ACTIVE,
    **extra: Any,
) -> RecurringPlan:
    row = RecurringPlan(
        attempt_key=secrets.token_hex(16),
        public_token=secrets.token_urlsafe(16),
        supporter=owner,
        amount=amount,
        currency=currency,
        frequency=frequency,
        status=status,
        **extra,
    )
    db.session.add(row)
    db.session.flush()
    return row


def experiment(slug: str = "copy-test", **design: Any) -> Experiment:
    """A draft A/B test with control and one challenger, half each."""
    from donations.ask.services import load_ask_config
    from donations.embed.experiments.services import create_experiment, parse_variants

    variants = [
        {"key": "control", "share": 50},
        {"key": "urgent", "share": 50, "headline": {"en": "We are short", "ru": "Не хватает"}},
    ]
    return create_experiment(
        slug=slug,
        title="Copy test",
        variants=parse_variants(variants, load_ask_config()),
        **{"baseline": 0.02, "mde": 0.2, **design},
    )
