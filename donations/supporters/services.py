"""Finding, recording and emailing supporters."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from donations.db import db, insert_or_fetch, utcnow
from donations.mail.addresses import normalise_address
from donations.mail.models import EmailMessage
from donations.mail.services import queue_email
from donations.supporters.consents import apply_checkout_consents
from donations.supporters.models import Donation, RecurringPlan, Supporter

log = logging.getLogger(__name__)


def find_supporter(email: str) -> Supporter | None:
    return db.session.scalar(
        select(Supporter).where(Supporter.email_key == normalise_address(email))
    )


def find_or_create_supporter(*, email: str, locale: str) -> Supporter:
    """The supporter for ``email`` (any case); a bare record if there is none.

    An address typed into a public form is a claim, not an identity
    (DESIGN.md 2.5): an existing record is returned untouched, and a new one
    holds only the address until a payment proves it
    (:func:`apply_paid_checkout`). Safe against two first-time requests for
    one address at the same moment: the loser of the unique-constraint race
    reads the winner's row.
    """
    supporter, _ = insert_or_fetch(
        Supporter,
        {"email_key": normalise_address(email)},
        {
            "email": email.strip(),
            "name": "",
            "country": None,
            "locale": locale,
            "newsletter_opt_in": False,
        },
    )
    return supporter


def email_supporter(
    supporter: Supporter,
    template: str,
    *,
    dedupe_key: str,
    locale: str,
    context: dict[str, Any],
    to_name: str | None = None,
) -> EmailMessage | None:
    """Queue ``template`` to the supporter's address, at most once per ``dedupe_key``.

    Addressed by name (``to_name`` when given, else the supporter's) and
    filed under the supporter, as :func:`donations.mail.services.queue_email`
    files it; returns the new message, or None when it was queued before.
    """
    return queue_email(
        template,
        dedupe_key=dedupe_key,
        to_address=supporter.email,
        to_name=supporter.name if to_name is None else to_name,
        locale=locale,
        supporter_id=supporter.id,
        context=context,
    )


def apply_paid_checkout(donation: Donation) -> bool:
    """A payment succeeded: the details and consents given with its checkout
    become the supporter's. The one place a public form changes a supporter.

    The checkout is the one-off donation itself, or the plan a first payment
    (or renewal) belongs to; each is applied once (``details_applied_at``), so
    a renewal never brings back details the supporter has changed since.
    Returns True for the call that applied them.
    """
    checkout: Donation | RecurringPlan | None = (
        donation.plan if donation.recurring_plan_id is not None else donation
    )
    if checkout is None or checkout.details_applied_at is not None:
        return False
    checkout.details_applied_at = utcnow()
    supporter = donation.supporter
    if supporter.erased_at is not None:
        return False
    if checkout.donor_email and normalise_address(checkout.donor_email) == supporter.email_key:
        supporter.email = checkout.donor_email
    if checkout.donor_name:
        supporter.name = checkout.donor_name
    if checkout.donor_country:
        supporter.country = checkout.donor_country
    supporter.locale = checkout.locale
    apply_checkout_consents(checkout)
    db.session.flush()
    return True
