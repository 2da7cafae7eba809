"""Notices before a plan charges: the annual renewal reminder, and the card that expires first.

Two ways lead here and end the same: Stripe's ``invoice.upcoming`` event (the
webhook re-reads the subscription, then asks for the plan's notices) and the
periodic sweep (:func:`send_plan_notices`), which finds every plan renewing
within ``RENEWAL_NOTICE_DAYS``. Each notice is one outbox row with a key
derived from the plan and the renewal (or the card), so however often the
event is delivered and the sweep runs, a plan gets one notice per period.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select

from donations.db import db, utcnow
from donations.mail.models import EmailMessage
from donations.payments.gateway import GatewayError
from donations.payments.recurring import plan_link_token
from donations.payments.services import gateway
from donations.supporters.models import Frequency, PlanStatus, RecurringPlan
from donations.supporters.services import email_supporter

log = logging.getLogger(__name__)

RENEWAL_NOTICE = "renewal_notice"
CARD_EXPIRING = "card_expiring"


def notice_window() -> timedelta:
    """How long before a renewal its notices go out (``RENEWAL_NOTICE_DAYS``)."""
    return timedelta(days=int(current_app.config["SETTINGS"].renewal_notice_days))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def renews_within_window(plan: RecurringPlan, now: datetime) -> bool:
    """The plan will charge again, and soon: active, neither ending nor paused then,
    next renewal in ``(now, now + window]``."""
    if plan.status is not PlanStatus.ACTIVE or plan.next_renewal_at is None:
        return False
    renewal = _aware(plan.next_renewal_at)
    if plan.cancel_at_period_end or (
        plan.cancel_at is not None and _aware(plan.cancel_at) <= renewal
    ):
        return False  # Stripe ends it first: there is no renewal to announce
    if plan.pause_behavior is not None and (
        plan.paused_until is None or _aware(plan.paused_until) >= renewal
    ):
        return False  # paused: Stripe collects nothing on that day
    return now < renewal <= now + notice_window()


def card_valid_until(month: int, year: int) -> datetime:
    """The instant a card stops working: it is valid to the end of its expiry month."""
    if month == 12:
        return datetime(year + 1, 1, 1, tzinfo=UTC)
    return datetime(year, month + 1, 1, tzinfo=UTC)


def expires_before(plan: RecurringPlan, moment: datetime) -> bool:
    """The card the plan's next renewal charges (as last recorded) expires before ``moment``."""
    month, year = plan.card_exp_month, plan.card_exp_year
    if not month or not year or not 1 <= month <= 12:
        return False
    return card_valid_until(month, year) <= _aware(moment)


def _card_key(plan: RecurringPlan) -> str:
    # One per plan and card: a new card (another last4 or expiry) is news again.
    expiry = f"{plan.card_exp_year or 0:04d}-{plan.card_exp_month or 0:02d}"
    return f"{CARD_EXPIRING}:plan:{plan.id}:{plan.card_last4}:{expiry}"


def refresh_plan_card(plan: RecurringPlan) -> None:
    """Record the card Stripe will charge next: the subscription's default payment method.

    The ledger knows the card of the plan's last payment; the supporter may
    have given another since (from /manage or a failed-payment email). Asked
    only before a card notice would go out, so rarely.
    """
    assert plan.stripe_subscription_id is not None
    subscription = gateway().retrieve_subscription(plan.stripe_subscription_id)
    if subscription.default_payment_method_id is None:
        return  # charged to the customer's default: the last payment's card is what we know
    card = gateway().retrieve_card(subscription.default_payment_method_id)
    if card is None:
        # Not a card any more (a SEPA mandate, say): nothing can expire.
        plan.card_exp_month = plan.card_exp_year = None
        return
    plan.card_brand, plan.card_last4 = card.brand, card.last4
    plan.card_exp_month, plan.card_exp_year = card.exp_month, card.exp_year
    db.session.flush()


def queue_plan_notices(plan: RecurringPlan, now: datetime | None = None) -> list[str]:
    """Queue the notices this plan is due before its next renewal; the templates queued.

    An annual plan renewing within the window gets the renewal notice (amount,
    date, the manage link); any plan whose card expires before that renewal gets
    the card notice with the link to give another. Each at most once (the
    outbox's key), so calling this again, from the webhook or the sweep, adds
    nothing.
    """
    now = now or utcnow()
    if not renews_within_window(plan, now) or plan.supporter.erased_at is not None:
        return []
    assert plan.next_renewal_at is not None
    renewal = _aware(plan.next_renewal_at)
    queued = []
    if plan.frequency is Frequency.ANNUAL and _queue_renewal_notice(plan, renewal):
        queued.append(RENEWAL_NOTICE)
    if expires_before(plan, renewal) and _queue_card_notice(plan, renewal):
        queued.append(CARD_EXPIRING)
    return queued


def _common_context(plan: RecurringPlan, renewal: datetime) -> dict[str, object]:
    return {
        "plan_id": plan.id,
        "amount": plan.charge_total.amount,
        "currency": plan.currency,
        "frequency": str(plan.frequency),
        "renewal_at": renewal.isoformat(),
    }


def _queue_renewal_notice(plan: RecurringPlan, renewal: datetime) -> bool:
    return (
        email_supporter(
            plan.supporter,
            RENEWAL_NOTICE,
            # One per plan and period: the period is named by when it renews.
            dedupe_key=f"{RENEWAL_NOTICE}:plan:{plan.id}:{int(renewal.timestamp())}",
            locale=plan.locale,
            context=_common_context(plan, renewal),
        )
        is not None
    )


def _queued_before(dedupe_key: str) -> bool:
    return (
        db.session.scalar(select(EmailMessage.id).where(EmailMessage.dedupe_key == dedupe_key))
        is not None
    )


def _queue_card_notice(plan: RecurringPlan, renewal: datetime) -> bool:
    if _queued_before(_card_key(plan)):
        return False  # told about this card already: no need to ask Stripe again
    refresh_plan_card(plan)
    if not expires_before(plan, renewal):
        return False  # another card since, valid on the day
    return (
        email_supporter(
            plan.supporter,
            CARD_EXPIRING,
            dedupe_key=_card_key(plan),
            locale=plan.locale,
            context={
                **_common_context(plan, renewal),
                "card_brand": plan.card_brand,
                "last4": plan.card_last4,
                "exp_month": plan.card_exp_month,
                "exp_year": plan.card_exp_year,
                "link_token": plan_link_token(plan),
            },
        )
        is not None
    )


def plans_renewing_soon(now: datetime) -> list[RecurringPlan]:
    """Active plans renewing within the notice window that may need a notice, soonest first.

    Annual plans, and plans whose recorded card expires before the window
    ends: a cheap superset that :func:`queue_plan_notices` then decides
    on exactly, so the sweep can run every dispatch interval.
    """
    until = now + notice_window()
    expiring = (
        RecurringPlan.card_exp_year * 12 + RecurringPlan.card_exp_month
        < until.year * 12 + until.month
    )
    return list(
        db.session.scalars(
            select(RecurringPlan)
            .where(
                RecurringPlan.status == PlanStatus.ACTIVE,
                RecurringPlan.next_renewal_at > now,
                RecurringPlan.next_renewal_at <= until,
                RecurringPlan.cancel_at_period_end.is_(False),
                or_(
                    RecurringPlan.cancel_at.is_(None),
                    RecurringPlan.cancel_at > RecurringPlan.next_renewal_at,
                ),
                or_(RecurringPlan.frequency == Frequency.ANNUAL, expiring),
            )
            .order_by(RecurringPlan.next_renewal_at, RecurringPlan.id)
        )
    )


def send_plan_notices(now: datetime | None = None) -> int:
    """The sweep: queue every notice due for plans renewing soon; how many were queued.

    A plan Stripe cannot be asked about now is left for the next run. The
    caller commits; the emails leave after the commit.
    """
    now = now or utcnow()
    queued = 0
    for plan in plans_renewing_soon(now):
        try:
            queued += len(queue_plan_notices(plan, now))
        except GatewayError:
            log.warning("notices of plan %s wait for Stripe", plan.id, exc_info=True)
    if queued:
        log.info("queued %d notices before renewals", queued)
    return queued
