"""Upgrade links: staff propose one specific change of a plan; the supporter accepts it.

The link is signed (``OFFER_MAX_AGE``) and names the plan, the change (the
gift and how often) and the price the plan was at when it was proposed: once
the plan has moved on (this change accepted, or any other), the link no
longer applies. It went to the supporter's address, so opening it proves
the address as any link in our emails does (DESIGN.md 2.5); a GET only
shows what would change, the change needs the POST of the page's button.
The change itself is :func:`donations.manage.plans.apply_change`, as in
/manage. Functions flush; the request commits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from flask import current_app, g
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from donations.ask.config import GiftError
from donations.db import db
from donations.manage import plans
from donations.money import Money, exponent
from donations.reminders.services import external_url
from donations.security import signing_keys
from donations.staff.models import StaffUser
from donations.staff.services import audit
from donations.supporters.models import Donation, Frequency, RecurringPlan

OFFER_MAX_AGE = timedelta(days=21)
MAX_TOKEN_LENGTH = 600
_SALT = "donations.manage.upgrade-link"
TEMPLATE = "plan_upgrade_offer"


class OfferProblem(StrEnum):
    INVALID = "invalid"  # not ours, tampered, or for no plan we know
    EXPIRED = "expired"
    STALE = "stale"  # the plan changed (or ended) since the offer was made


@dataclass(frozen=True)
class Offer:
    plan: RecurringPlan
    change: plans.PlanChange
    token: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_keys(), salt=_SALT)


def make_offer(
    plan: RecurringPlan, amount: str, frequency: str, *, cover_fee: bool = False
) -> plans.PlanChange:
    """The change staff propose, within the ask's limits; raises GiftError or ChangeRefused.

    ``cover_fee`` proposes that the plan cover the processing fee from now on;
    otherwise the plan keeps its own choice.
    """
    return plans.propose_change(plan, amount, frequency, cover_fee=cover_fee or None)


def receipt_offer(donation_id: int) -> dict[str, Any] | None:
    """The upgrade link a monthly plan's receipt carries (RECEIPT_UPGRADE_OFFER), or None.

    Worked out when the receipt is rendered, from the plan as it is then: a
    plan that cannot be changed, or a proposal outside the ask's limits,
    proposes nothing.
    """
    # The text and HTML parts of one receipt carry the same link.
    made: dict[int, dict[str, Any] | None] = g.setdefault("receipt_offers", {})
    if donation_id not in made:
        made[donation_id] = _receipt_offer(donation_id)
    return made[donation_id]


def _receipt_offer(donation_id: int) -> dict[str, Any] | None:
    rule = current_app.config["SETTINGS"].receipt_upgrade_offer
    donation = db.session.get(Donation, donation_id) if rule is not None else None
    plan_id = donation.recurring_plan_id if donation is not None else None
    plan = db.session.get(RecurringPlan, plan_id) if plan_id is not None else None
    if rule is None or plan is None:
        return None
    if plan.frequency is not Frequency.MONTHLY or not plans.can_change(plan):
        return None
    kind, number = rule
    if kind == "annual":
        amount, frequency = Money(plan.amount * number, plan.currency), Frequency.ANNUAL
    else:
        unit = 10 ** exponent(plan.currency)
        raised = -(-plan.amount * (100 + number) // (100 * unit)) * unit
        amount, frequency = Money(raised, plan.currency), Frequency.MONTHLY
    try:
        change = make_offer(plan, amount.major_text(), frequency.value)
    except (GiftError, plans.ChangeRefused):
        return None
    return {
        "url": external_url("manage.offer", token=offer_token(plan, change)),
        "amount": change.total.amount,
        "currency": plan.currency,
        "frequency": change.frequency.value,
    }


def offer_token(plan: RecurringPlan, change: plans.PlanChange) -> str:
    payload = {
        "plan": plan.public_token,
        "gift": change.gift.amount,
        "frequency": change.frequency.value,
        "from": plan.stripe_price_id,
        "cover": change.fee_cover > 0 and not plan.fee_cover_amount,
    }
    return str(_serializer().dumps(payload))


def send_offer(plan: RecurringPlan, change: plans.PlanChange, staff: StaffUser) -> str:
    """Email the supporter the link proposing ``change``; audited. Returns the token."""
    token = offer_token(plan, change)
    plans.queue_plan_email(
        plan,
        TEMPLATE,
        f"offer:{plan.id}:{hashlib.sha256(token.encode()).hexdigest()[:24]}",
        new_amount=change.total.amount,
        new_frequency=change.frequency.value,
        offer_token=token,
    )
    audit(
        "plan.upgrade_offered",
        supporter_id=plan.supporter_id,
        target=f"plan:{plan.id}",
        staff=staff,
        amount=change.total,
        frequency=change.frequency.value,
        previous_amount=plan.charge_total,
        previous_frequency=plan.frequency.value,
    )
    return token


def open_offer(token: str) -> Offer | OfferProblem:
    """The offer a link carries, or why it cannot be accepted."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return OfferProblem.INVALID
    try:
        payload = _serializer().loads(token, max_age=int(OFFER_MAX_AGE.total_seconds()))
    except SignatureExpired:
        return OfferProblem.EXPIRED
    except BadData:
        return OfferProblem.INVALID
    if not isinstance(payload, dict):
        return OfferProblem.INVALID
    public_token, gift, frequency = (
        payload.get("plan"),
        payload.get("gift"),
        payload.get("frequency"),
    )
    if not isinstance(public_token, str) or not isinstance(gift, int) or gift <= 0:
        return OfferProblem.INVALID
    plan = db.session.scalar(
        select(RecurringPlan).where(RecurringPlan.public_token == public_token)
    )
    if plan is None or frequency not in {f.value for f in plans.PLAN_FREQUENCIES}:
        return OfferProblem.INVALID
    if plan.stripe_price_id != payload.get("from") or not plans.can_change(plan):
        return OfferProblem.STALE
    try:
        change = plans.propose_change(
            plan,
            Money(gift, plan.currency).major_text(),
            frequency,
            cover_fee=True if payload.get("cover") is True else None,
        )
    except (plans.ChangeRefused, ValueError):
        # The ask's limits moved since, or this is what the plan is already.
        return OfferProblem.STALE
    if change.frequency is not Frequency(frequency):
        return OfferProblem.INVALID
    return Offer(plan, change, token)


def accept_offer(offer: Offer) -> None:
    """Make the offered change (raises ChangeRefused), audited on the supporter's timeline."""
    plan = offer.plan
    previous = (plan.charge_total, plan.frequency.value)
    snapshot = plans.apply_change(plan, offer.change)
    plans.record_change(
        plan,
        previous,
        snapshot,
        source=f"email:{TEMPLATE}",
        by="supporter (upgrade link)",
        offer=offer.digest,
    )
    plans.queue_change_email(plan, f"offer-{offer.digest}")
