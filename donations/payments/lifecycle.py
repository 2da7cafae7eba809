"""A supporter's standing, derived from their records: status, gifts, totals, timeline.

Nothing here is stored: status and totals are computed from the ledger on
read, so they can never disagree with the donations, refunds, disputes and
plans they come from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select

from donations.db import db
from donations.mail.models import EmailMessage
from donations.money import Money
from donations.payments.models import Dispute, DisputeStatus, Payout, Refund
from donations.supporters.models import (
    Donation,
    DonationStatus,
    PlanStatus,
    RecurringPlan,
    Supporter,
)


class SupporterStatus(StrEnum):
    PROSPECT = "prospect"  # no gift (yet): a reminder, an abandoned checkout
    ONE_OFF_DONOR = "one_off_donor"  # gave, has no recurring plan
    ACTIVE_RECURRING = "active_recurring"
    PAST_DUE = "past_due"  # a renewal failed and Stripe is retrying
    LAPSED = "lapsed"  # the plan ended (or stopped) because payments failed
    CANCELLED = "cancelled"  # the plan was cancelled (by them or by staff)


# Stripe's cancellation_details.reason values that mean the money stopped,
# not the person: https://docs.stripe.com/api/subscriptions/object
INVOLUNTARY_CANCELLATIONS = frozenset({"payment_failed", "payment_disputed"})


def recurring_status(plans: Iterable[RecurringPlan]) -> SupporterStatus | None:
    """The status the person's plans imply, or None when no plan ever got going.

    A live plan wins (active, then past due); otherwise the plan that ended
    last decides between lapsed (payments failed) and cancelled.
    """
    plans = list(plans)
    statuses = {plan.status for plan in plans}
    if PlanStatus.ACTIVE in statuses:
        return SupporterStatus.ACTIVE_RECURRING
    if PlanStatus.PAST_DUE in statuses:
        return SupporterStatus.PAST_DUE
    if PlanStatus.UNPAID in statuses:
        return SupporterStatus.LAPSED
    ended = [plan for plan in plans if plan.status is PlanStatus.CANCELED]
    if not ended:
        # Only incomplete plans: the first payment was never made.
        return None
    last = max(ended, key=lambda plan: plan.canceled_at or plan.updated_at)
    if last.cancellation_reason in INVOLUNTARY_CANCELLATIONS:
        return SupporterStatus.LAPSED
    return SupporterStatus.CANCELLED


def supporter_status(supporter: Supporter) -> SupporterStatus:
    """Prospect, one-off donor, active recurring, past due, lapsed or cancelled."""
    recurring = recurring_status(supporter.plans)
    if recurring is not None:
        return recurring
    if gifts(supporter):
        return SupporterStatus.ONE_OFF_DONOR
    return SupporterStatus.PROSPECT


# -- gifts and totals -------------------------------------------------------------


def gifts(supporter: Supporter) -> list[Donation]:
    """Succeeded donations that still count: not fully refunded, no lost dispute."""
    lost = select(Dispute.donation_id).where(Dispute.status == DisputeStatus.LOST)
    rows = db.session.scalars(
        select(Donation)
        .where(
            Donation.supporter_id == supporter.id,
            Donation.status == DonationStatus.SUCCEEDED,
            Donation.refunded_amount < Donation.amount + Donation.fee_cover_amount,
            Donation.id.not_in(lost),
        )
        .order_by(Donation.succeeded_at, Donation.id)
    )
    return list(rows)


@dataclass(frozen=True)
class CurrencyTotals:
    """One currency's money from one supporter, in minor units."""

    currency: str
    gifts: int  # succeeded donations, refunded or not
    charged: int  # what Stripe charged for them (gift plus any fee cover)
    refunded: int
    disputed: int  # lost in disputes
    fees: int  # Stripe's fees, where known

    @property
    def given(self) -> int:
        """What the supporter gave and kept given."""
        return self.charged - self.refunded - self.disputed

    def money(self, amount: int) -> Money:
        return Money(amount, self.currency)


@dataclass(frozen=True)
class SupporterSummary:
    status: SupporterStatus
    first_gift_at: datetime | None
    last_gift_at: datetime | None
    totals: Sequence[CurrencyTotals]

    def total(self, currency: str) -> CurrencyTotals | None:
        return next((t for t in self.totals if t.currency == currency), None)


def totals_by_currency(supporter: Supporter) -> list[CurrencyTotals]:
    succeeded = db.session.scalars(
        select(Donation).where(
            Donation.supporter_id == supporter.id, Donation.status == DonationStatus.SUCCEEDED
        )
    ).all()
    lost = {
        row.donation_id: row.amount
        for row in db.session.scalars(
            select(Dispute).where(
                Dispute.donation_id.in_([d.id for d in succeeded]),
                Dispute.status == DisputeStatus.LOST,
            )
        )
    }
    by_currency: dict[str, list[Donation]] = {}
    for donation in succeeded:
        by_currency.setdefault(donation.currency, []).append(donation)
    return [
        CurrencyTotals(
            currency=currency,
            gifts=len(rows),
            charged=sum(d.amount + d.fee_cover_amount for d in rows),
            refunded=sum(d.refunded_amount for d in rows),
            disputed=sum(lost.get(d.id, 0) for d in rows),
            fees=sum(d.fee or 0 for d in rows),
        )
        for currency, rows in sorted(by_currency.items())
    ]


def supporter_summary(supporter: Supporter) -> SupporterSummary:
    """Status, first and last gift, and totals per currency."""
    counted = gifts(supporter)
    moments = [d.succeeded_at or d.created_at for d in counted]
    return SupporterSummary(
        status=supporter_status(supporter),
        first_gift_at=min(moments) if moments else None,
        last_gift_at=max(moments) if moments else None,
        totals=totals_by_currency(supporter),
    )


# -- the timeline -------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # gift, payment, refund, dispute, payout, plan, email
    text: str
    amount: Money | None = None
    status: str | None = None
    reference: str | None = None  # the Stripe id, or the email's template
    detail: str = ""  # a refund's reason, a note's text...


def timeline(supporter: Supporter) -> list[TimelineEntry]:
    """Every money movement and email of the supporter, newest first."""
    donations = db.session.scalars(
        select(Donation).where(Donation.supporter_id == supporter.id)
    ).all()
    by_id = {d.id: d for d in donations}
    entries = [
        *_donation_entries(donations),
        *_refund_entries(list(by_id)),
        *_dispute_entries(list(by_id)),
        *_payout_entries(by_id),
        *_plan_entries(supporter),
        *_email_entries(supporter),
    ]
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries


def _donation_entries(donations: Iterable[Donation]) -> Iterator[TimelineEntry]:
    for d in donations:
        if d.status is DonationStatus.SUCCEEDED:
            yield TimelineEntry(
                d.succeeded_at or d.created_at,
                "gift",
                f"{d.frequency} gift",
                d.charge_total,
                # Refunded, partially refunded, disputed... once it is.
                d.display_status,
                d.stripe_payment_intent_id,
            )
        else:
            yield TimelineEntry(
                d.created_at,
                "payment",
                f"{d.frequency} payment {d.status}",
                d.charge_total,
                str(d.status),
                d.stripe_payment_intent_id,
            )


def _refund_entries(donation_ids: list[int]) -> Iterator[TimelineEntry]:
    for refund in db.session.scalars(select(Refund).where(Refund.donation_id.in_(donation_ids))):
        yield TimelineEntry(
            refund.stripe_created_at,
            "refund",
            "refund",
            Money(refund.amount, refund.currency),
            str(refund.status),
            refund.stripe_refund_id,
            refund.staff_reason or refund.reason or refund.error or "",
        )


def _dispute_entries(donation_ids: list[int]) -> Iterator[TimelineEntry]:
    """Each dispute when it opened, and again when it closed."""
    disputes = db.session.scalars(select(Dispute).where(Dispute.donation_id.in_(donation_ids)))
    for dispute in disputes:
        amount = Money(dispute.amount, dispute.currency)
        yield TimelineEntry(
            dispute.stripe_created_at,
            "dispute",
            f"dispute opened ({dispute.reason})",
            amount,
            str(dispute.status),
            dispute.stripe_dispute_id,
        )
        if dispute.closed_at is not None:
            yield TimelineEntry(
                dispute.closed_at,
                "dispute",
                f"dispute {dispute.status}",
                amount,
                str(dispute.status),
                dispute.stripe_dispute_id,
            )


def _payout_entries(by_id: dict[int, Donation]) -> Iterator[TimelineEntry]:
    payouts = db.session.execute(
        select(Donation.id, Payout)
        .join(Payout, Donation.payout_id == Payout.id)
        .where(Donation.id.in_(list(by_id)))
    ).all()
    for donation_id, payout in payouts:
        yield TimelineEntry(
            payout.arrival_date,
            "payout",
            "paid out to the bank",
            by_id[donation_id].charge_total,
            str(payout.status),
            payout.stripe_payout_id,
        )


def _plan_entries(supporter: Supporter) -> Iterator[TimelineEntry]:
    """Each plan when it started (or was set up), and again when it ended."""
    for plan in supporter.plans:
        yield TimelineEntry(
            plan.started_at or plan.created_at,
            "plan",
            f"{plan.frequency} plan started"
            if plan.started_at
            else f"{plan.frequency} plan set up",
            plan.charge_total,
            str(plan.status),
            plan.stripe_subscription_id,
        )
        if plan.canceled_at is not None:
            yield TimelineEntry(
                plan.canceled_at,
                "plan",
                f"{plan.frequency} plan ended ({plan.cancellation_reason or 'cancelled'})",
                plan.charge_total,
                str(plan.status),
                plan.stripe_subscription_id,
            )


def _email_entries(supporter: Supporter) -> Iterator[TimelineEntry]:
    for message in db.session.scalars(
        select(EmailMessage).where(EmailMessage.supporter_id == supporter.id)
    ):
        yield TimelineEntry(
            message.sent_at or message.created_at,
            "email",
            f"email: {message.template}",
            None,
            str(message.status),
            message.template,
        )
