"""What a signed-in supporter sees: their plans, gifts, refunds, reminders, consents.

Everything is read from the ledger as it stands (what Stripe's events and
the reconciliation have recorded), never from what was asked for. Only
records the address has proven are shown: a checkout someone started with
the address but never paid (DESIGN.md 2.5) is not the supporter's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, or_, select

from donations.db import db
from donations.mail.models import SuppressionReason
from donations.mail.suppression import address_hash, suppression_for
from donations.payments.models import Refund
from donations.reminders.models import Reminder
from donations.staff.models import AuditEntry
from donations.supporters.models import (
    Consent,
    ConsentStatus,
    Donation,
    DonationStatus,
    PlanStatus,
    RecurringPlan,
    RefundState,
    Supporter,
)

# Donations the supporter made: paid, or paid and still settling (SEPA).
SHOWN_GIFTS = (DonationStatus.SUCCEEDED, DonationStatus.PROCESSING)
# Plans that never took a first payment with a subscription are abandoned
# checkouts, not the supporter's support.
HIDDEN_PLANS = (PlanStatus.INCOMPLETE_EXPIRED,)
ACTIVITY_LIMIT = 20


@dataclass(frozen=True)
class PlanView:
    plan: RecurringPlan
    card_brand: str | None
    card_last4: str | None

    @property
    def live(self) -> bool:
        return self.plan.status in (PlanStatus.ACTIVE, PlanStatus.PAST_DUE, PlanStatus.UNPAID)

    @property
    def next_payment_at(self) -> object:
        plan = self.plan
        # Paused, or ending at the period's end: no payment is due on that date.
        if plan.status is not PlanStatus.ACTIVE or plan.is_paused or plan.ends_at_period_end:
            return None
        return plan.next_renewal_at


@dataclass(frozen=True)
class GiftView:
    donation: Donation
    refunds: list[Refund]

    @property
    def refund_state(self) -> RefundState | None:
        return self.donation.refund_state

    @property
    def has_receipt(self) -> bool:
        return self.donation.is_paid


@dataclass(frozen=True)
class Overview:
    supporter: Supporter
    plans: list[PlanView]
    gifts: list[GiftView]
    reminders: list[Reminder]
    newsletter: bool
    # Reminder emails to this address: "allowed", "unsubscribed" or "bounced".
    reminders_state: str
    consents: list[Consent]
    activity: list[AuditEntry] = field(default_factory=list)


def supporter_plans(supporter: Supporter) -> list[RecurringPlan]:
    """The supporter's plans that ever were support: a subscription exists (or existed)."""
    return list(
        db.session.scalars(
            select(RecurringPlan)
            .where(
                RecurringPlan.supporter_id == supporter.id,
                RecurringPlan.status.not_in(HIDDEN_PLANS),
                RecurringPlan.stripe_subscription_id.is_not(None),
            )
            .order_by(RecurringPlan.id.desc())
        )
    )


def supporter_gifts(supporter: Supporter) -> list[Donation]:
    """Every paid (or settling) donation of the supporter, newest first."""
    return list(
        db.session.scalars(
            select(Donation)
            .where(Donation.supporter_id == supporter.id, Donation.status.in_(SHOWN_GIFTS))
            .order_by(Donation.created_at.desc(), Donation.id.desc())
        )
    )


def own_gift(supporter: Supporter, donation_id: int) -> Donation | None:
    """One of the supporter's gifts, or None (someone else's, or not a gift)."""
    donation = db.session.get(Donation, donation_id)
    if donation is None or donation.supporter_id != supporter.id:
        return None
    if donation.status not in SHOWN_GIFTS:
        return None
    return donation


def own_plan(supporter: Supporter, plan_id: int) -> RecurringPlan | None:
    plan = db.session.get(RecurringPlan, plan_id)
    if plan is None or plan.supporter_id != supporter.id:
        return None
    if plan.status in HIDDEN_PLANS or plan.stripe_subscription_id is None:
        return None
    return plan


def refunds_of(donation_ids: list[int]) -> dict[int, list[Refund]]:
    found: dict[int, list[Refund]] = {}
    if not donation_ids:
        return found
    for refund in db.session.scalars(
        select(Refund)
        .where(Refund.donation_id.in_(donation_ids), Refund.stripe_refund_id.is_not(None))
        .order_by(Refund.stripe_created_at, Refund.id)
    ):
        found.setdefault(refund.donation_id, []).append(refund)
    return found


def _plan_card(plan: RecurringPlan) -> tuple[str | None, str | None]:
    """The card the plan charges: the plan's own record of it (its last payment's, or
    the one Stripe confirmed as its default since), else its last payment's."""
    if plan.card_last4:
        return plan.card_brand, plan.card_last4
    latest = db.session.scalar(
        select(Donation)
        .where(Donation.recurring_plan_id == plan.id, Donation.card_last4.is_not(None))
        .order_by(Donation.created_at.desc(), Donation.id.desc())
        .limit(1)
    )
    if latest is None:
        return None, None
    return latest.card_brand, latest.card_last4


def _reminders_of(supporter: Supporter) -> ColumnElement[bool]:
    """The supporter's reminders: theirs by id, or asked for with their address."""
    return or_(Reminder.supporter_id == supporter.id, Reminder.email_key == supporter.email_key)


def supporter_reminders(supporter: Supporter) -> list[Reminder]:
    return list(
        db.session.scalars(
            select(Reminder)
            .where(_reminders_of(supporter))
            .order_by(Reminder.due_at.desc(), Reminder.id.desc())
        )
    )


def own_reminder(supporter: Supporter, reminder_id: int) -> Reminder | None:
    return db.session.scalar(
        select(Reminder).where(Reminder.id == reminder_id, _reminders_of(supporter))
    )


def reminders_state(supporter: Supporter) -> str:
    entry = suppression_for(address_hash(supporter.email))
    if entry is None:
        return "allowed"
    if entry.reason is SuppressionReason.UNSUBSCRIBED:
        return "unsubscribed"
    return "bounced"


def consent_history(supporter: Supporter) -> list[Consent]:
    """The supporter's choices as recorded, newest first (applied ones: in force or done)."""
    return list(
        db.session.scalars(
            select(Consent)
            .where(
                or_(
                    Consent.supporter_id == supporter.id,
                    Consent.address_hash == address_hash(supporter.email),
                ),
                Consent.status == ConsentStatus.APPLIED,
            )
            .order_by(Consent.applied_at.desc(), Consent.id.desc())
        )
    )


def activity(supporter: Supporter, limit: int = ACTIVITY_LIMIT) -> list[AuditEntry]:
    """What was done in /manage for the supporter, newest first (from the audit log)."""
    return list(
        db.session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.supporter_id == supporter.id,
                AuditEntry.action.startswith("manage.", autoescape=True),
            )
            .order_by(AuditEntry.id.desc())
            .limit(limit)
        )
    )


def overview(supporter: Supporter) -> Overview:
    plans = supporter_plans(supporter)
    gifts = supporter_gifts(supporter)
    refunds = refunds_of([d.id for d in gifts])
    return Overview(
        supporter=supporter,
        plans=[PlanView(plan, *_plan_card(plan)) for plan in plans],
        gifts=[GiftView(d, refunds.get(d.id, [])) for d in gifts],
        reminders=supporter_reminders(supporter),
        newsletter=supporter.newsletter_opt_in,
        reminders_state=reminders_state(supporter),
        consents=consent_history(supporter),
        activity=activity(supporter),
    )
