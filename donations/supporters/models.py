"""The ledger: supporters and every money movement attempt."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from donations.db import Model, str_enum, utcnow
from donations.money import Money

log = logging.getLogger(__name__)


class Frequency(StrEnum):
    ONCE = "once"
    MONTHLY = "monthly"
    ANNUAL = "annual"


class DonationStatus(StrEnum):
    PENDING = "pending"  # created, waiting for the reader to pay
    PROCESSING = "processing"  # Stripe accepted it, settlement pending (e.g. SEPA)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the last try was declined; the reader may retry
    CANCELED = "canceled"


class PlanStatus(StrEnum):
    """A recurring plan's status, following its Stripe subscription."""

    INCOMPLETE = "incomplete"  # created, first payment not yet made
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a renewal failed; Stripe is retrying
    UNPAID = "unpaid"  # retries exhausted, subscription kept
    CANCELED = "canceled"
    INCOMPLETE_EXPIRED = "incomplete_expired"


PLAN_TRANSITIONS: dict[PlanStatus, frozenset[PlanStatus]] = {
    PlanStatus.INCOMPLETE: frozenset(
        {PlanStatus.ACTIVE, PlanStatus.CANCELED, PlanStatus.INCOMPLETE_EXPIRED, PlanStatus.PAST_DUE}
    ),
    PlanStatus.ACTIVE: frozenset({PlanStatus.PAST_DUE, PlanStatus.UNPAID, PlanStatus.CANCELED}),
    PlanStatus.PAST_DUE: frozenset({PlanStatus.ACTIVE, PlanStatus.UNPAID, PlanStatus.CANCELED}),
    PlanStatus.UNPAID: frozenset({PlanStatus.ACTIVE, PlanStatus.CANCELED}),
    PlanStatus.CANCELED: frozenset(),
    PlanStatus.INCOMPLETE_EXPIRED: frozenset(),
}


class InvalidTransition(RuntimeError):
    """A status change that the ledger's rules forbid."""


# The only place that says which status may follow which. A repeated status
# is a no-op (webhooks and the thank-you page report the same outcome).
DONATION_TRANSITIONS: dict[DonationStatus, frozenset[DonationStatus]] = {
    DonationStatus.PENDING: frozenset(
        {
            DonationStatus.PROCESSING,
            DonationStatus.SUCCEEDED,
            DonationStatus.FAILED,
            DonationStatus.CANCELED,
        }
    ),
    DonationStatus.PROCESSING: frozenset(
        {DonationStatus.SUCCEEDED, DonationStatus.FAILED, DonationStatus.CANCELED}
    ),
    DonationStatus.FAILED: frozenset(
        {
            DonationStatus.PENDING,
            DonationStatus.PROCESSING,
            DonationStatus.SUCCEEDED,
            DonationStatus.CANCELED,
        }
    ),
    DonationStatus.SUCCEEDED: frozenset(),
    DonationStatus.CANCELED: frozenset(),
}


def can_transition(current: DonationStatus, new: DonationStatus) -> bool:
    return new in DONATION_TRANSITIONS[current]


class Supporter(Model):
    __tablename__ = "supporters"

    id: Mapped[int] = mapped_column(primary_key=True)
    # One supporter per address regardless of case: email_key is the
    # lower-cased address and carries the unique constraint.
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    country: Mapped[str | None] = mapped_column(String(2))
    locale: Mapped[str] = mapped_column(String(10), default="en")
    newsletter_opt_in: Mapped[bool] = mapped_column(default=False)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Set when the person's data was erased: the row stays for the ledger.
    erased_at: Mapped[datetime | None]

    donations: Mapped[list[Donation]] = relationship(back_populates="supporter")
    plans: Mapped[list[RecurringPlan]] = relationship(back_populates="supporter")

    def __repr__(self) -> str:
        return f"<Supporter {self.id}>"


class RecurringPlan(Model):
    """One monthly or annual commitment: one Stripe subscription."""

    __tablename__ = "recurring_plans"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("fee_cover_amount >= 0", name="fee_cover_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_key: Mapped[str] = mapped_column(String(64), unique=True)
    public_token: Mapped[str] = mapped_column(String(64), unique=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    amount: Mapped[int]
    fee_cover_amount: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3))
    frequency: Mapped[Frequency] = mapped_column(str_enum(Frequency, 10))
    status: Mapped[PlanStatus] = mapped_column(str_enum(PlanStatus), default=PlanStatus.INCOMPLETE)
    method: Mapped[str | None] = mapped_column(String(30))
    locale: Mapped[str] = mapped_column(String(10), default="en")
    campaign: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(500))
    # The "Remind me later" email this plan was started from, if any (conversion).
    reminder_id: Mapped[int | None] = mapped_column(ForeignKey("reminders.id"), index=True)
    stripe_setup_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    next_renewal_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    cancellation_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    supporter: Mapped[Supporter] = relationship(back_populates="plans")
    donations: Mapped[list[Donation]] = relationship(back_populates="plan")

    @property
    def charge_total(self) -> Money:
        return Money(self.amount + self.fee_cover_amount, self.currency)

    @property
    def gift(self) -> Money:
        return Money(self.amount, self.currency)

    def __repr__(self) -> str:
        return f"<RecurringPlan {self.id} {self.status}>"


class Donation(Model):
    """One money movement attempt: a one-off payment (or, later, a renewal)."""

    __tablename__ = "donations"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("fee_cover_amount >= 0", name="fee_cover_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The checkout attempt this row stands for: one attempt, one idempotency
    # key, one PaymentIntent, however often the form is posted.
    attempt_key: Mapped[str] = mapped_column(String(64), unique=True)
    # Unguessable handle for the reader's own payment and thank-you pages.
    public_token: Mapped[str] = mapped_column(String(64), unique=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    # What the reader chose to give, and (separately) what they added to
    # cover the processing fee; Stripe is asked for the sum.
    amount: Mapped[int]
    fee_cover_amount: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3))
    frequency: Mapped[Frequency] = mapped_column(str_enum(Frequency, 10))
    status: Mapped[DonationStatus] = mapped_column(
        str_enum(DonationStatus), default=DonationStatus.PENDING
    )
    method: Mapped[str | None] = mapped_column(String(30))
    # Filled from Stripe's balance transaction once settled.
    fee: Mapped[int | None]
    net: Mapped[int | None]
    # Returned to the supporter so far, in minor units (staff refunds).
    refunded_amount: Mapped[int] = mapped_column(default=0, server_default="0")
    # The Stripe payout that took this donation's money to the bank.
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"), index=True)
    campaign: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(500))
    # The "Remind me later" email this gift came through, if any (conversion).
    reminder_id: Mapped[int | None] = mapped_column(ForeignKey("reminders.id"), index=True)
    locale: Mapped[str] = mapped_column(String(10), default="en")
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Renewals (and first payments) of a plan: one donation per invoice.
    recurring_plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("recurring_plans.id"), index=True
    )
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    card_brand: Mapped[str | None] = mapped_column(String(30))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    succeeded_at: Mapped[datetime | None]

    supporter: Mapped[Supporter] = relationship(back_populates="donations")
    plan: Mapped[RecurringPlan | None] = relationship(back_populates="donations")

    @property
    def charge_total(self) -> Money:
        """What Stripe is asked to charge: the gift plus any fee cover."""
        return Money(self.amount + self.fee_cover_amount, self.currency)

    @property
    def gift(self) -> Money:
        return Money(self.amount, self.currency)

    def __repr__(self) -> str:
        return f"<Donation {self.id} {self.status}>"
