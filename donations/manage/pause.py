"""Skip, pause, resume and cancel a plan from /manage, and the offers made instead.

Every change is asked of Stripe and the plan then records what Stripe
answered (payments.recurring.sync_subscription): the page says "Paused until"
or "Cancels on" only once the subscription says so. A pause is Stripe's
``pause_collection`` with behavior ``void``: the invoices of the paused
periods are voided, so nothing is charged then and nothing is caught up
afterwards (https://docs.stripe.com/billing/subscriptions/pause-payment).

A cancellation is one :class:`CancellationAttempt`: the reason given, the
offers shown (each once per attempt), and how it ended. Functions flush;
the request commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app

from donations.ask.config import GiftError
from donations.db import db, utcnow
from donations.manage import plans
from donations.manage.models import ManageSession
from donations.manage.services import record
from donations.money import Money
from donations.payments import recurring
from donations.payments.gateway import GatewayError, SubscriptionSnapshot
from donations.payments.services import gateway
from donations.reminders.services import add_months, schedule_reminder
from donations.status import InvalidTransition, change_status
from donations.supporters.models import Frequency, PlanStatus, RecurringPlan
from donations.supporters.retention import (
    AttemptStatus,
    CancellationAttempt,
    CancellationTiming,
)

PAUSE_MONTHS = (1, 2, 3)
# "Skip the next payment": the pause ends just after the next renewal, so
# that one invoice is voided and the one after is charged as usual.
SKIP_MARGIN = timedelta(days=1)
# "A reminder instead": the plan ends, and we write in this many months.
REMINDER_INSTEAD_MONTHS = 3


class PlanActionRefused(ValueError):
    """The change cannot be made to this plan now; ``code`` says why (for the page),
    ``message`` in the supporter's words when the refusal came with one."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message


# -- what may be done -------------------------------------------------------------------


def can_pause(plan: RecurringPlan) -> bool:
    """Skip or pause: an active plan that is not ending."""
    return (
        plan.status is PlanStatus.ACTIVE
        and not plan.ends_at_period_end
        and plan.stripe_subscription_id is not None
    )


def can_resume(plan: RecurringPlan) -> bool:
    return plan.is_paused and plan.stripe_subscription_id is not None


def can_cancel(plan: RecurringPlan) -> bool:
    return plan.can_cancel and plan.stripe_subscription_id is not None


def can_keep(plan: RecurringPlan) -> bool:
    """A cancellation at the period's end can be called off until then."""
    return plan.ends_at_period_end and plan.stripe_subscription_id is not None


def reasons() -> tuple[tuple[str, str], ...]:
    """The configured reasons as (key, label); an empty label is a built-in reason."""
    settings = current_app.config["SETTINGS"]
    return tuple(settings.cancel_reasons)


def _fits(offer: str, plan: RecurringPlan) -> bool:
    if offer == "pause":
        return can_pause(plan)
    if offer == "lower_amount":
        return plans.can_change(plan)
    if offer == "annual":
        return plans.can_change(plan) and plan.frequency is Frequency.MONTHLY
    return True


def offers_for(plan: RecurringPlan) -> tuple[str, ...]:
    """The offers the newsroom enables that fit this plan."""
    enabled: tuple[str, ...] = current_app.config["SETTINGS"].cancel_offers
    return tuple(offer for offer in enabled if _fits(offer, plan))


def annual_suggestion(plan: RecurringPlan) -> Money:
    """The annual gift offered instead of a monthly one: twelve months' gift."""
    return Money(plan.amount * 12, plan.currency)


# -- talking to Stripe ----------------------------------------------------------------------


def _key(plan: RecurringPlan, action: str, target: str) -> str:
    # Derived from the plan as stored: a double click repeats the key (one
    # change at Stripe), while the same change asked again after the plan
    # has moved on (pause, resume, pause) gets a new one.
    version = int(plan.updated_at.timestamp() * 1_000_000)
    return f"manage-{action}-plan-{plan.id}-{target}-{version}"


def _recorded(plan: RecurringPlan, snapshot: SubscriptionSnapshot) -> RecurringPlan:
    synced = recurring.sync_subscription(snapshot)
    if synced is None:  # pragma: no cover - the plan names this subscription
        raise PlanActionRefused("stripe")
    db.session.flush()
    return synced


def _pause_collection(plan: RecurringPlan, resumes_at: int | None, key: str) -> RecurringPlan:
    """Stripe's ``pause_collection`` until ``resumes_at`` (None: collect again), recorded."""
    assert plan.stripe_subscription_id is not None
    try:
        snapshot = gateway().pause_collection(
            plan.stripe_subscription_id, resumes_at=resumes_at, idempotency_key=key
        )
    except GatewayError as exc:
        raise PlanActionRefused("stripe") from exc
    return _recorded(plan, snapshot)


def _pause_until(plan: RecurringPlan, resumes_at: datetime) -> RecurringPlan:
    stamp = int(resumes_at.timestamp())
    return _pause_collection(plan, stamp, _key(plan, "pause", str(stamp)))


def _cancel_at_period_end(plan: RecurringPlan, cancel: bool, key: str) -> SubscriptionSnapshot:
    """Stripe's answer to setting ``cancel_at_period_end`` (not yet recorded)."""
    assert plan.stripe_subscription_id is not None
    try:
        return gateway().set_cancel_at_period_end(
            plan.stripe_subscription_id, cancel=cancel, idempotency_key=key
        )
    except GatewayError as exc:
        raise PlanActionRefused("stripe") from exc


def skip_next(session: ManageSession, plan: RecurringPlan) -> RecurringPlan:
    """Pause until just after the next renewal: that payment is not taken."""
    if not can_pause(plan) or plan.next_renewal_at is None:
        raise PlanActionRefused("not_now")
    _pause_until(plan, plan.next_renewal_at + SKIP_MARGIN)
    record(
        "plan_skipped",
        session.supporter,
        source=session.source,
        target=f"plan:{plan.id}",
        skipped=plan.next_renewal_at.isoformat(),
        paused_until=plan.paused_until.isoformat() if plan.paused_until else None,
    )
    return plan


def pause(session: ManageSession, plan: RecurringPlan, months: int) -> RecurringPlan:
    """Collect nothing for ``months`` (1 to 3) from today; nothing caught up later."""
    if months not in PAUSE_MONTHS:
        raise PlanActionRefused("months")
    if not can_pause(plan):
        raise PlanActionRefused("not_now")
    _pause_until(plan, add_months(utcnow(), months))
    record(
        "plan_paused",
        session.supporter,
        source=session.source,
        target=f"plan:{plan.id}",
        months=months,
        paused_until=plan.paused_until.isoformat() if plan.paused_until else None,
    )
    return plan


def resume(session: ManageSession, plan: RecurringPlan) -> RecurringPlan:
    """Collect again from the next renewal (what the paused periods owed stays void)."""
    if not can_resume(plan):
        raise PlanActionRefused("not_now")
    _pause_collection(plan, None, _key(plan, "resume", "now"))
    record("plan_resumed", session.supporter, source=session.source, target=f"plan:{plan.id}")
    return plan


def keep(session: ManageSession, plan: RecurringPlan) -> RecurringPlan:
    """Call off a cancellation at the period's end: the plan renews as before."""
    if not can_keep(plan):
        raise PlanActionRefused("not_now")
    _recorded(plan, _cancel_at_period_end(plan, False, _key(plan, "keep", "renewing")))
    if not plan.ends_at_period_end and plan.status is not PlanStatus.CANCELED:
        plan.cancellation_reason = None
    record("plan_kept", session.supporter, source=session.source, target=f"plan:{plan.id}")
    return plan


# -- cancelling, with the offers --------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the supporter chose on the offers page."""

    offer: str | None  # None: "No, cancel"
    months: int | None = None  # for the pause offer
    amount: str | None = None  # for a lower amount or annual: as typed, in the locale


def start_cancellation(
    session: ManageSession, plan: RecurringPlan, reason: str, timing: str
) -> CancellationAttempt:
    """Record the reason and when; the offers come next (or, with none, the cancellation)."""
    if reason not in {key for key, _ in reasons()}:
        raise PlanActionRefused("reason")
    try:
        when = CancellationTiming(timing)
    except ValueError:
        raise PlanActionRefused("timing") from None
    if not can_cancel(plan) or (when is CancellationTiming.PERIOD_END and plan.ends_at_period_end):
        raise PlanActionRefused("not_now")
    attempt = CancellationAttempt(
        plan_id=plan.id,
        supporter_id=plan.supporter_id,
        reason=reason,
        timing=when,
        offers_shown=",".join(offers_for(plan)),
        source=session.source,
    )
    db.session.add(attempt)
    db.session.flush()
    record(
        "cancellation_started",
        session.supporter,
        source=session.source,
        target=f"plan:{plan.id}",
        attempt=attempt.id,
        reason=reason,
        timing=str(when),
        offers=attempt.offers_shown,
    )
    return attempt


def offers_of(attempt: CancellationAttempt) -> tuple[str, ...]:
    return tuple(o for o in attempt.offers_shown.split(",") if o)


def own_attempt(
    session: ManageSession, plan_id: int, attempt_id: int
) -> CancellationAttempt | None:
    attempt = db.session.get(CancellationAttempt, attempt_id)
    if attempt is None or attempt.supporter_id != session.supporter_id:
        return None
    if attempt.plan_id != plan_id:
        return None
    return attempt


def decide(
    session: ManageSession, attempt: CancellationAttempt, decision: Decision, locale: str
) -> CancellationAttempt:
    """Take the offer chosen (once), or cancel as asked; the attempt records which."""
    if attempt.status is not AttemptStatus.OFFERED:
        raise PlanActionRefused("decided")
    offers = offers_of(attempt)
    if decision.offer is not None and decision.offer not in offers:
        raise PlanActionRefused("offer")
    plan = attempt.plan
    if decision.offer == "pause":
        months = decision.months if decision.months is not None else 0
        pause(session, plan, months)
        if not plan.is_paused:
            raise PlanActionRefused("stripe")
        outcome = AttemptStatus.SAVED
    elif decision.offer in ("lower_amount", "annual"):
        _change(plan, decision, locale)
        outcome = AttemptStatus.SAVED
    else:
        _cancel(plan, attempt)
        if decision.offer == "reminder":
            schedule_reminder(
                email=session.supporter.email,
                months=REMINDER_INSTEAD_MONTHS,
                locale=locale,
                source="manage:cancellation",
            )
        outcome = AttemptStatus.CANCELLED
    try:
        # A compare-and-set: of two submissions of the page, one decides.
        change_status(attempt, outcome, offer_taken=decision.offer, decided_at=utcnow())
    except InvalidTransition as exc:
        raise PlanActionRefused("decided") from exc
    record(
        "cancellation_saved" if outcome is AttemptStatus.SAVED else "plan_cancelled",
        session.supporter,
        source=session.source,
        target=f"plan:{plan.id}",
        attempt=attempt.id,
        reason=attempt.reason,
        timing=str(attempt.timing),
        offer_taken=decision.offer,
        offers_declined=",".join(o for o in offers if o != decision.offer),
        cancel_at=plan.cancel_at.isoformat() if plan.cancel_at else None,
        status=str(plan.status),
    )
    return attempt


def _change(plan: RecurringPlan, decision: Decision, locale: str) -> None:
    """A lower amount, or annual instead of monthly: the plan change (manage.plans)."""
    frequency = Frequency.ANNUAL if decision.offer == "annual" else plan.frequency
    try:
        change = plans.propose_change(plan, decision.amount or "", frequency.value, locale)
    except (plans.ChangeRefused, GiftError) as exc:
        raise PlanActionRefused("amount", str(exc)) from exc
    if decision.offer == "lower_amount" and change.gift.amount >= plan.amount:
        raise PlanActionRefused("not_lower")
    try:
        plans.apply_change(plan, change)
    except plans.ChangeRefused as exc:
        raise PlanActionRefused("stripe") from exc
    plans.queue_change_email(plan, f"cancellation-offer-{plan.stripe_price_id}")


def _cancel(plan: RecurringPlan, attempt: CancellationAttempt) -> None:
    """Cancel as the attempt asks; refuse unless Stripe confirms it."""
    if not can_cancel(plan):
        raise PlanActionRefused("not_now")
    reason = f"supporter: {attempt.reason}"
    if attempt.timing is CancellationTiming.NOW:
        try:
            recurring.cancel_now(plan, reason)
        except GatewayError as exc:
            raise PlanActionRefused("stripe") from exc
        except InvalidTransition as exc:
            raise PlanActionRefused("not_now") from exc
        return
    snapshot = _cancel_at_period_end(plan, True, f"manage-cancel-attempt-{attempt.id}")
    if not snapshot.cancel_at_period_end:
        raise PlanActionRefused("stripe")
    plan.cancellation_reason = reason
    _recorded(plan, snapshot)
