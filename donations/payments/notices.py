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
from sqlalchemy import exists, or_, select

from donations.db import db, utcnow
from donations.mail.services import queue_email
from donations.payments.recurring import plan_link_token
from donations.supporters.models import Donation, Frequency, PlanStatus, RecurringPlan

log = logging.getLogger(__name__)

RENEWAL_NOTICE = "renewal_notice"
CARD_EXPIRING = "card_expiring"


def notice_window() -> timedelta:
    """How long before a renewal its notices go out (``RENEWAL_NOTICE_DAYS``)."""
    return timedelta(days=int(current_app.config["SETTINGS"].renewal_notice_days))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def renews_within_window(plan: RecurringPlan, now: datetime) -> bool:
    """The plan will charge again, and soon: active, next renewal in ``(now, now + window]``."""
    if plan.status is not PlanStatus.ACTIVE or plan.next_renewal_at is None:
        return False
    renewal = _aware(plan.next_renewal_at)
    return now < renewal <= now + notice_window()


def plan_card(plan: RecurringPlan) -> Donation | None:
    """The plan's latest payment made with a card: the card its next renewal charges."""
    return db.session.scalar(
        select(Donation)
        .where(
            Donation.recurring_plan_id == plan.id,
            Donation.method == "card",
            Donation.card_last4.is_not(None),
        )
        .order_by(Donation.created_at.desc(), Donation.id.desc())
        .limit(1)
    )


def card_valid_until(month: int, year: int) -> datetime:
    """The instant a card stops working: it is valid to the end of its expiry month."""
    if month == 12:
        return datetime(year + 1, 1, 1, tzinfo=UTC)
    return datetime(year, month + 1, 1, tzinfo=UTC)


def expires_before(card: Donation, moment: datetime) -> bool:
    """The card recorded with this payment expires before ``moment``."""
    month, year = card.card_exp_month, card.card_exp_year
    if not month or not year or not 1 <= month <= 12:
        return False
    return card_valid_until(month, year) <= _aware(moment)


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
    card = plan_card(plan)
    if card is not None and expires_before(card, renewal) and _queue_card_notice(plan, card):
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
    supporter = plan.supporter
    return (
        queue_email(
            RENEWAL_NOTICE,
            # One per plan and period: the period is named by when it renews.
            dedupe_key=f"{RENEWAL_NOTICE}:plan:{plan.id}:{int(renewal.timestamp())}",
            to_address=supporter.email,
            to_name=supporter.name,
            locale=plan.locale,
            supporter_id=supporter.id,
            context=_common_context(plan, renewal),
        )
        is not None
    )


def _queue_card_notice(plan: RecurringPlan, card: Donation) -> bool:
    supporter = plan.supporter
    assert plan.next_renewal_at is not None
    assert card.card_exp_month
    assert card.card_exp_year
    expiry = f"{card.card_exp_year:04d}-{card.card_exp_month:02d}"
    return (
        queue_email(
            CARD_EXPIRING,
            # One per plan and card: a new card (another last4 or expiry) is news again.
            dedupe_key=f"{CARD_EXPIRING}:plan:{plan.id}:{card.card_last4}:{expiry}",
            to_address=supporter.email,
            to_name=supporter.name,
            locale=plan.locale,
            supporter_id=supporter.id,
            context={
                **_common_context(plan, _aware(plan.next_renewal_at)),
                "card_brand": card.card_brand,
                "last4": card.card_last4,
                "exp_month": card.card_exp_month,
                "exp_year": card.card_exp_year,
                "link_token": plan_link_token(plan),
            },
        )
        is not None
    )


def plans_renewing_soon(now: datetime) -> list[RecurringPlan]:
    """Active plans renewing within the notice window that may need a notice, soonest first.

    Annual plans, and plans with a card payment whose card expires before the
    window ends: a cheap superset that :func:`queue_plan_notices` then decides
    on exactly, so the sweep can run every dispatch interval.
    """
    until = now + notice_window()
    expiring = exists().where(
        Donation.recurring_plan_id == RecurringPlan.id,
        Donation.card_exp_year * 12 + Donation.card_exp_month < until.year * 12 + until.month,
    )
    return list(
        db.session.scalars(
            select(RecurringPlan)
            .where(
                RecurringPlan.status == PlanStatus.ACTIVE,
                RecurringPlan.next_renewal_at > now,
                RecurringPlan.next_renewal_at <= until,
                or_(RecurringPlan.frequency == Frequency.ANNUAL, expiring),
            )
            .order_by(RecurringPlan.next_renewal_at, RecurringPlan.id)
        )
    )


def send_plan_notices(now: datetime | None = None) -> int:
    """The sweep: queue every notice due for plans renewing soon; how many were queued.

    The caller commits; the emails leave after the commit.
    """
    now = now or utcnow()
    queued = sum(len(queue_plan_notices(plan, now)) for plan in plans_renewing_soon(now))
    if queued:
        log.info("queued %d notices before renewals", queued)
    return queued
