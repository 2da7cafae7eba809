"""Every Stripe webhook delivery, stored before it is processed; refunds, disputes, payouts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Select,
    String,
    Text,
    and_,
    case,
    func,
    select,
    text,
    type_coerce,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from donations.db import Model, str_enum, utcnow
from donations.status import RuledStatus, StatusRules
from donations.supporters.models import OPEN_DISPUTE_STATUSES, Donation, RefundState


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
    # After a failure: when the sweep tries again (backoff), or, once the
    # attempts reach the cap, when it was parked for an admin to look at.
    next_attempt_at: Mapped[datetime | None]
    parked_at: Mapped[datetime | None] = mapped_column(index=True)

    # What the drain and the sweep look for: the few events not yet processed,
    # found without reading the many that were.
    __table_args__ = (
        Index(
            "ix_stripe_events_unprocessed",
            "id",
            postgresql_where=text("processed_at IS NULL AND parked_at IS NULL"),
            sqlite_where=text("processed_at IS NULL AND parked_at IS NULL"),
        ),
    )

    def __repr__(self) -> str:
        return f"<StripeEvent {self.stripe_event_id} {self.type}>"


# -- the ledger's other money movements, mirrored from Stripe -------------------
#
# Each row copies the state of one Stripe object (refund, dispute, payout),
# written from a fresh read of that object. Stripe is the authority, so a
# status that may not follow the stored one is a stale read (two reads racing):
# ``donations.status.change_status`` refuses it and the sync skips it.


class RefundStatus(StrEnum):
    # Ours: a staff member asked for it and Stripe has not answered yet.
    REQUESTED = "requested"
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class DisputeStatus(StrEnum):
    WARNING_NEEDS_RESPONSE = "warning_needs_response"  # an inquiry, no money moved yet
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"  # a chargeback: the amount and fee are withdrawn
    UNDER_REVIEW = "under_review"
    WON = "won"  # the amount is reinstated
    LOST = "lost"
    PREVENTED = "prevented"


class PayoutStatus(StrEnum):
    PENDING = "pending"
    IN_TRANSIT = "in_transit"
    PAID = "paid"
    FAILED = "failed"  # the money came back to the Stripe balance
    CANCELED = "canceled"


_D = DisputeStatus
_CLOSED_DISPUTE = frozenset({_D.WON, _D.LOST, _D.PREVENTED, _D.WARNING_CLOSED})

# Which Stripe status may follow which (https://docs.stripe.com/api/refunds/object,
# /disputes/object, /payouts/object). A succeeded refund and a paid payout can
# still fail later; an inquiry can escalate into a chargeback.
REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.REQUESTED: frozenset(set(RefundStatus) - {RefundStatus.REQUESTED}),
    RefundStatus.PENDING: frozenset(
        {
            RefundStatus.REQUIRES_ACTION,
            RefundStatus.SUCCEEDED,
            RefundStatus.FAILED,
            RefundStatus.CANCELED,
        }
    ),
    RefundStatus.REQUIRES_ACTION: frozenset(
        {RefundStatus.PENDING, RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED}
    ),
    RefundStatus.SUCCEEDED: frozenset({RefundStatus.FAILED}),
    RefundStatus.FAILED: frozenset(),
    RefundStatus.CANCELED: frozenset(),
}
DISPUTE_TRANSITIONS: dict[DisputeStatus, frozenset[DisputeStatus]] = {
    _D.WARNING_NEEDS_RESPONSE: frozenset(set(_D) - {_D.WARNING_NEEDS_RESPONSE}),
    _D.WARNING_UNDER_REVIEW: frozenset(
        {_D.WARNING_CLOSED, _D.NEEDS_RESPONSE, _D.UNDER_REVIEW, _D.WON, _D.LOST}
    ),
    _D.WARNING_CLOSED: frozenset({_D.NEEDS_RESPONSE, _D.UNDER_REVIEW}),
    _D.NEEDS_RESPONSE: frozenset({_D.UNDER_REVIEW, _D.WON, _D.LOST}),
    _D.UNDER_REVIEW: frozenset({_D.NEEDS_RESPONSE, _D.WON, _D.LOST}),
    _D.WON: frozenset(),
    _D.LOST: frozenset(),
    _D.PREVENTED: frozenset(),
}
PAYOUT_TRANSITIONS: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    PayoutStatus.PENDING: frozenset(
        {PayoutStatus.IN_TRANSIT, PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.CANCELED}
    ),
    PayoutStatus.IN_TRANSIT: frozenset(
        {PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.CANCELED}
    ),
    PayoutStatus.PAID: frozenset({PayoutStatus.FAILED}),
    PayoutStatus.FAILED: frozenset(),
    PayoutStatus.CANCELED: frozenset(),
}


REFUND_RULES = StatusRules("refund", REFUND_TRANSITIONS)
DISPUTE_RULES = StatusRules("dispute", DISPUTE_TRANSITIONS)
PAYOUT_RULES = StatusRules("payout", PAYOUT_TRANSITIONS)


# Refund statuses that count towards a donation's refunded total, as Stripe's
# charge.amount_refunded does.
MONEY_RETURNING_REFUNDS = frozenset(
    {RefundStatus.PENDING, RefundStatus.REQUIRES_ACTION, RefundStatus.SUCCEEDED}
)


class Refund(RuledStatus, Model):
    """One refund of a donation's charge: the only record of refunds.

    Each row mirrors one Stripe refund. A refund a staff member asked for
    also keeps who asked, why, and the confirmation's attempt key (the
    idempotency key at Stripe, so a double-clicked confirmation finds this
    row instead of refunding twice); Stripe's answer fills in the rest. A
    request Stripe refused has no Stripe id and the error instead.
    """

    status_rules: ClassVar[StatusRules[RefundStatus]] = REFUND_RULES

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    donation_id: Mapped[int] = mapped_column(ForeignKey("donations.id"), index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[RefundStatus] = mapped_column(str_enum(RefundStatus))
    # Stripe's reason code (requested_by_customer, duplicate, fraudulent).
    reason: Mapped[str | None] = mapped_column(String(50))
    failure_reason: Mapped[str | None] = mapped_column(String(100))
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"), index=True)
    # Set when a staff member asked for the refund in the back office
    # (staff_users.id: staff sits above payments, so no relationship here).
    attempt_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    staff_reason: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(Text)
    stripe_created_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    donation: Mapped[Donation] = relationship()

    @property
    def returns_money(self) -> bool:
        """Counts towards the donation's refunded total, as Stripe's amount_refunded does."""
        return self.status in MONEY_RETURNING_REFUNDS

    def __repr__(self) -> str:
        return f"<Refund {self.stripe_refund_id} {self.status}>"


class Dispute(RuledStatus, Model):
    """One dispute (chargeback or inquiry) of a donation's charge."""

    status_rules: ClassVar[StatusRules[DisputeStatus]] = DISPUTE_RULES

    __tablename__ = "disputes"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(255), unique=True)
    donation_id: Mapped[int] = mapped_column(ForeignKey("donations.id"), index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[DisputeStatus] = mapped_column(str_enum(DisputeStatus, 30))
    reason: Mapped[str] = mapped_column(String(50))
    # Over the dispute's balance transactions: fees charged (positive) and
    # the net change to the balance (negative while the money is withdrawn).
    fee: Mapped[int] = mapped_column(default=0)
    net: Mapped[int] = mapped_column(default=0)
    stripe_created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    donation: Mapped[Donation] = relationship()

    @property
    def is_closed(self) -> bool:
        return self.status in _CLOSED_DISPUTE

    def __repr__(self) -> str:
        return f"<Dispute {self.stripe_dispute_id} {self.status}>"


class Payout(RuledStatus, Model):
    """One transfer of the Stripe balance to the newsroom's bank account."""

    status_rules: ClassVar[StatusRules[PayoutStatus]] = PAYOUT_RULES

    __tablename__ = "payouts"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_payout_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PayoutStatus] = mapped_column(str_enum(PayoutStatus))
    automatic: Mapped[bool] = mapped_column(default=True)
    arrival_date: Mapped[datetime]
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    stripe_created_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<Payout {self.stripe_payout_id} {self.status}>"


_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])

_status = type_coerce(Dispute.status, String)
# Per disputed donation: whether a dispute was lost, whether one is open (1 or 0).
DISPUTE_OUTCOMES = (
    select(
        Dispute.donation_id,
        func.max(case((_status == DisputeStatus.LOST.value, 1), else_=0)).label("lost"),
        func.max(case((_status.in_(sorted(OPEN_DISPUTE_STATUSES)), 1), else_=0)).label("open"),
    )
    .group_by(Dispute.donation_id)
    .subquery("dispute_outcomes")
)


def with_dispute_outcomes(statement: _S) -> _S:
    """``statement`` (from donations) joined to DISPUTE_OUTCOMES, as refund_state_sql needs.

    One outer join, not a subquery per row: PostgreSQL runs a correlated
    subquery in the leader process only (it is parallel-restricted), which
    would hold a report's every cell there, one donation at a time.
    """
    return statement.outerjoin(DISPUTE_OUTCOMES, DISPUTE_OUTCOMES.c.donation_id == Donation.id)


def refund_state_sql() -> ColumnElement[str | None]:
    """A donation's refund state in SQL, for reports, in a query made by
    :func:`with_dispute_outcomes`: the same rule as
    :func:`donations.supporters.models.refund_state_of` (a test holds them together)."""
    refunded = Donation.refunded_amount
    charged = Donation.amount + Donation.fee_cover_amount
    return case(
        (DISPUTE_OUTCOMES.c.lost == 1, RefundState.DISPUTE_LOST.value),
        (DISPUTE_OUTCOMES.c.open == 1, RefundState.DISPUTED.value),
        (and_(refunded > 0, refunded >= charged), RefundState.REFUNDED.value),
        (refunded > 0, RefundState.PARTIALLY_REFUNDED.value),
        else_=None,
    )
