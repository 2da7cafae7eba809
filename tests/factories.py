"""Test data: rows written straight to the database, flushed, never committed.

The one place the suite builds supporters, gifts, plans, refunds, disputes,
payouts, reminders and experiments; a test names only what it is about.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from donations.db import db, utcnow
from donations.embed.experiments.models import Experiment
from donations.mail.addresses import normalise_address
from donations.mail.suppression import address_hash as hash_of_address
from donations.payments.models import (
    Dispute,
    DisputeStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundStatus,
)
from donations.reminders.models import Reminder, ReminderStatus
from donations.staff.models import ExportStatus, ReportExport
from donations.supporters.models import (
    Donation,
    DonationStatus,
    Frequency,
    PlanStatus,
    RecurringPlan,
    Supporter,
)


def supporter(email: str = "ada@example.org", name: str = "Ada Reader", **extra: Any) -> Supporter:
    row = Supporter(email=email, email_key=normalise_address(email), name=name, **extra)
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


def refund(
    gift: Donation,
    amount: int,
    status: RefundStatus = RefundStatus.SUCCEEDED,
    *,
    stripe_created_at: datetime | None = None,
    **extra: Any,
) -> Refund:
    """A refund row only: the gift's ``refunded_amount`` is left as it is."""
    values: dict[str, Any] = {"stripe_refund_id": "re_" + secrets.token_hex(8), **extra}
    row = Refund(
        donation_id=gift.id,
        amount=amount,
        currency=gift.currency,
        status=status,
        stripe_created_at=stripe_created_at or utcnow(),
        **values,
    )
    db.session.add(row)
    db.session.flush()
    return row


def dispute(
    gift: Donation,
    status: DisputeStatus = DisputeStatus.NEEDS_RESPONSE,
    *,
    stripe_created_at: datetime | None = None,
    **extra: Any,
) -> Dispute:
    """A dispute of the whole gift, for fraud."""
    values: dict[str, Any] = {
        "stripe_dispute_id": "du_" + secrets.token_hex(8),
        "amount": gift.amount,
        "currency": gift.currency,
        "reason": "fraudulent",
        **extra,
    }
    row = Dispute(
        donation_id=gift.id,
        status=status,
        stripe_created_at=stripe_created_at or utcnow(),
        **values,
    )
    db.session.add(row)
    db.session.flush()
    return row


def payout(
    amount: int = 1000,
    currency: str = "USD",
    status: PayoutStatus = PayoutStatus.PAID,
    *,
    arrival_date: datetime | None = None,
    stripe_created_at: datetime | None = None,
    **extra: Any,
) -> Payout:
    values: dict[str, Any] = {"stripe_payout_id": "po_" + secrets.token_hex(8), **extra}
    row = Payout(
        amount=amount,
        currency=currency,
        status=status,
        arrival_date=arrival_date or utcnow(),
        stripe_created_at=stripe_created_at or utcnow(),
        **values,
    )
    db.session.add(row)
    db.session.flush()
    return row


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
    address_hash: str | None = None,
    **extra: Any,
) -> Reminder:
    """A reminder as signed up (no confirmation email), due a minute ago unless told."""
    due_at = due_at or utcnow() - timedelta(minutes=1)
    row = Reminder(
        email=email,
        email_key=email.strip().lower(),
        address_hash=address_hash or hash_of_address(email),
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


def report_export(
    staff_id: int, status: ExportStatus = ExportStatus.QUEUED, **extra: Any
) -> ReportExport:
    """A whole-ledger CSV export asked for by ``staff_id``, queued unless told."""
    values: dict[str, Any] = {
        "report": "ledger",
        "format": "csv",
        "params": {},
        "time_zone": "UTC",
        "file_name": "ledger.csv",
        **extra,
    }
    row = ReportExport(staff_id=staff_id, status=status, **values)
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
