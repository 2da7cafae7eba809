"""The ledger: supporters and every money movement attempt."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, ForeignKey, SmallInteger, String, Text, false
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from donations.db import Model, str_enum, utcnow
from donations.money import Money
from donations.status import InvalidTransition, RuledStatus, StatusRules

__all__ = ["InvalidTransition"]  # raised by the status rules below, imported from here

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
PLAN_RULES = StatusRules("plan", PLAN_TRANSITIONS)


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
DONATION_RULES = StatusRules("donation", DONATION_TRANSITIONS)


class RefundState(StrEnum):
    """What refunds and disputes have done to a succeeded donation's money."""

    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"  # a chargeback or inquiry is open
    DISPUTE_LOST = "dispute_lost"  # the bank took the money back for good


# Dispute statuses (payments.models.DisputeStatus) that leave a donation disputed.
OPEN_DISPUTE_STATUSES = frozenset(
    {"warning_needs_response", "warning_under_review", "needs_response", "under_review"}
)


def refund_state_of(charged: int, refunded: int, dispute_statuses: list[str]) -> RefundState | None:
    """The one rule for a donation's refund state (reports compute it the same way in SQL)."""
    if "lost" in dispute_statuses:
        return RefundState.DISPUTE_LOST
    if any(s in OPEN_DISPUTE_STATUSES for s in dispute_statuses):
        return RefundState.DISPUTED
    if refunded > 0 and refunded >= charged:
        return RefundState.REFUNDED
    if refunded > 0:
        return RefundState.PARTIALLY_REFUNDED
    return None


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


class Checkout:
    """The columns a donation and a recurring plan share: what a checkout asked for and gave.

    A one-off donation and a plan are each a checkout (its own table with
    these columns); a renewal's donation copies them from its plan.
    :func:`donations.supporters.services.apply_paid_checkout` makes what was
    typed the supporter's once a payment succeeds.
    """

    @declared_attr.directive
    def __table_args__(cls) -> tuple[CheckConstraint, ...]:
        return (
            CheckConstraint("amount > 0", name="amount_positive"),
            CheckConstraint("fee_cover_amount >= 0", name="fee_cover_not_negative"),
        )

    # The checkout attempt this row stands for: one attempt, one idempotency
    # key, one PaymentIntent (or SetupIntent), however often the form is posted.
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
    method: Mapped[str | None] = mapped_column(String(30))
    locale: Mapped[str] = mapped_column(String(10), default="en")
    campaign: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(500))
    # Where the reader was asked (donations.supporters.attribution): the article and the variant.
    article: Mapped[str | None] = mapped_column(String(300))
    variant: Mapped[str | None] = mapped_column(String(50))
    # The embed's once-to-monthly offer, when it was made: "accepted" or "declined".
    upsell: Mapped[str | None] = mapped_column(String(10))
    # The "Remind me later" email the checkout came through, if any (conversion).
    reminder_id: Mapped[int | None] = mapped_column(ForeignKey("reminders.id"), index=True)
    # What the reader typed on the checkout form (DESIGN.md 2.5): shown back
    # to them on the payment and thank-you pages, and copied onto the
    # supporter only when a payment succeeds (details_applied_at).
    donor_email: Mapped[str | None] = mapped_column(String(320))
    donor_name: Mapped[str | None] = mapped_column(String(200))
    donor_country: Mapped[str | None] = mapped_column(String(2))
    details_applied_at: Mapped[datetime | None]
    # The card (expiry: month 1-12, four-digit year) as Stripe reported it
    # with a donation's payment. On a plan, the card its next renewal
    # charges, as Stripe last told us: its latest card payment, or the
    # subscription's default card read before a notice about its expiry (a
    # card replaced since is then seen).
    card_brand: Mapped[str | None] = mapped_column(String(30))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    card_exp_month: Mapped[int | None] = mapped_column(SmallInteger)
    card_exp_year: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def charge_total(self) -> Money:
        """What Stripe is asked to charge: the gift plus any fee cover."""
        return Money(self.amount + self.fee_cover_amount, self.currency)

    @property
    def gift(self) -> Money:
        return Money(self.amount, self.currency)


class RecurringPlan(RuledStatus, Checkout, Model):
    """One monthly or annual commitment: one Stripe subscription."""

    status_rules: ClassVar[StatusRules[PlanStatus]] = PLAN_RULES

    __tablename__ = "recurring_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[PlanStatus] = mapped_column(str_enum(PlanStatus), default=PlanStatus.INCOMPLETE)
    stripe_setup_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    next_renewal_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    cancellation_reason: Mapped[str | None] = mapped_column(String(200))
    # What Stripe last reported (payments.recurring.sync_subscription), never
    # what was asked for: the subscription ends when its period does (at
    # cancel_at), and its collection is paused (pause_collection) until
    # paused_until. A pause is not a status: the plan stays active.
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False, server_default=false())
    cancel_at: Mapped[datetime | None]
    pause_behavior: Mapped[str | None] = mapped_column(String(20))
    paused_until: Mapped[datetime | None]

    supporter: Mapped[Supporter] = relationship(back_populates="plans")
    donations: Mapped[list[Donation]] = relationship(back_populates="plan")

    @property
    def can_cancel(self) -> bool:
        return self.can_become(PlanStatus.CANCELED)

    @property
    def is_paused(self) -> bool:
        """Stripe collects nothing for now (pause_collection is set)."""
        return self.pause_behavior is not None and self.status is not PlanStatus.CANCELED

    @property
    def ends_at_period_end(self) -> bool:
        """Stripe will cancel the subscription when the current period ends."""
        return self.cancel_at_period_end and self.status is not PlanStatus.CANCELED

    def __repr__(self) -> str:
        return f"<RecurringPlan {self.id} {self.status}>"


class Donation(RuledStatus, Checkout, Model):
    """One money movement attempt: a one-off payment (or, later, a renewal)."""

    status_rules: ClassVar[StatusRules[DonationStatus]] = DONATION_RULES

    __tablename__ = "donations"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[DonationStatus] = mapped_column(
        str_enum(DonationStatus), default=DonationStatus.PENDING
    )
    # Filled from Stripe's balance transaction once settled.
    fee: Mapped[int | None]
    net: Mapped[int | None]
    # Returned to the supporter so far, in minor units: derived from the
    # donation's refunds (payments.ledger.refunded_total), never added to.
    refunded_amount: Mapped[int] = mapped_column(default=0, server_default="0")
    # The Stripe payout that took this donation's money to the bank.
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"), index=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Renewals (and first payments) of a plan: one donation per invoice.
    recurring_plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("recurring_plans.id"), index=True
    )
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_code: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    succeeded_at: Mapped[datetime | None]

    supporter: Mapped[Supporter] = relationship(back_populates="donations")
    plan: Mapped[RecurringPlan | None] = relationship(back_populates="donations")
    # payments.models.Dispute, named (not imported): supporters sits below payments.
    disputes: Mapped[list[Any]] = relationship("Dispute", viewonly=True)

    @property
    def refund_state(self) -> RefundState | None:
        """Refunded, partially refunded, disputed, dispute lost -- or None."""
        return refund_state_of(
            self.charge_total.amount, self.refunded_amount, [str(d.status) for d in self.disputes]
        )

    @property
    def display_status(self) -> str:
        """The status to show: the refund state once there is one."""
        state = self.refund_state
        return str(state) if state is not None else str(self.status)

    @property
    def is_paid(self) -> bool:
        """The payment succeeded: the thank-you page says so and a receipt went out."""
        return self.status is DonationStatus.SUCCEEDED

    def __repr__(self) -> str:
        return f"<Donation {self.id} {self.status}>"


class ConsentTopic(StrEnum):
    NEWSLETTER = "newsletter"
    REMINDERS = "reminders"  # "Remind me later" emails, after an unsubscribe


class ConsentStatus(StrEnum):
    PENDING = "pending"  # asked for; waiting for a payment or the owner's click
    APPLIED = "applied"  # in force (a grant) or done (a withdrawal)
    EXPIRED = "expired"  # never proven: the checkout was abandoned, the link unused


CONSENT_TRANSITIONS: dict[ConsentStatus, frozenset[ConsentStatus]] = {
    ConsentStatus.PENDING: frozenset({ConsentStatus.APPLIED, ConsentStatus.EXPIRED}),
    ConsentStatus.APPLIED: frozenset(),
    ConsentStatus.EXPIRED: frozenset(),
}


class Consent(Model):
    """One consent given or withdrawn: what, how, with which wording, when.

    A grant typed into a public form stays pending until the address is
    proven -- a payment with it succeeds, or its owner clicks a signed link
    we sent -- and only then changes the supporter (DESIGN.md 2.5). Rows are
    never deleted: together they are the history of the person's choices.
    """

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int | None] = mapped_column(ForeignKey("supporters.id"), index=True)
    # mail.suppression.address_hash of the address, for consents kept by
    # address rather than by supporter (reminders follow the suppression list).
    address_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    topic: Mapped[ConsentTopic] = mapped_column(str_enum(ConsentTopic, 20))
    granted: Mapped[bool]  # False: a withdrawal
    # Where it came from: checkout, reminder_form, unsubscribe_link, erasure, legacy.
    source: Mapped[str] = mapped_column(String(30))
    # Which wording the person saw (supporters.consents.wording_version).
    wording_version: Mapped[str] = mapped_column(String(60))
    locale: Mapped[str] = mapped_column(String(10), default="en")
    status: Mapped[ConsentStatus] = mapped_column(
        str_enum(ConsentStatus, 20), default=ConsentStatus.PENDING
    )
    # What proved the address when it was applied: payment, email_link, operator, legacy.
    proof: Mapped[str | None] = mapped_column(String(20))
    donation_id: Mapped[int | None] = mapped_column(ForeignKey("donations.id"), index=True)
    recurring_plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("recurring_plans.id"), index=True
    )
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None]

    def move_to(self, new: ConsentStatus) -> bool:
        if self.status is new:
            return False
        if new not in CONSENT_TRANSITIONS[self.status]:
            raise InvalidTransition(f"consent {self.id}: {self.status} -> {new}")
        self.status = new
        return True

    def __repr__(self) -> str:
        return f"<Consent {self.id} {self.topic} {self.granted} {self.status}>"
