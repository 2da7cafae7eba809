"""Finding, recording and erasing supporters."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from donations.db import db, utcnow
from donations.supporters.models import Donation, PlanStatus, Supporter

log = logging.getLogger(__name__)


def email_key(email: str) -> str:
    return email.strip().lower()


def find_supporter(email: str) -> Supporter | None:
    return db.session.scalar(select(Supporter).where(Supporter.email_key == email_key(email)))


def get_or_create_supporter(
    *, email: str, name: str, country: str | None, locale: str, newsletter_opt_in: bool
) -> Supporter:
    """The supporter for ``email`` (any case), created or updated with these details.

    Safe against two first-time checkouts for one address at the same moment:
    the loser of the unique-constraint race reads the winner's row.
    """
    supporter = find_supporter(email)
    if supporter is None:
        supporter = Supporter(
            email=email.strip(),
            email_key=email_key(email),
            name=name,
            country=country,
            locale=locale,
            newsletter_opt_in=newsletter_opt_in,
        )
        try:
            with db.session.begin_nested():
                db.session.add(supporter)
        except IntegrityError:
            supporter = find_supporter(email)
            if supporter is None:  # pragma: no cover - the winner rolled back
                raise
        else:
            return supporter
    if name:
        supporter.name = name
    if country:
        supporter.country = country
    supporter.locale = locale
    # Consent is only ever given here, never withdrawn by omission.
    supporter.newsletter_opt_in = supporter.newsletter_opt_in or newsletter_opt_in
    return supporter


# -- erasure ----------------------------------------------------------------------

ERASED_DOMAIN = "erased.invalid"  # RFC 2606: can never be a real address
LIVE_PLAN_STATUSES = frozenset(
    {PlanStatus.INCOMPLETE, PlanStatus.ACTIVE, PlanStatus.PAST_DUE, PlanStatus.UNPAID}
)


class ErasureRefused(Exception):
    """The supporter cannot be erased yet (e.g. a plan would keep charging them)."""


@dataclass(frozen=True)
class ErasureResult:
    supporter_id: int
    donations_kept: int
    emails_scrubbed: int
    emails_stopped: int
    reminders_wiped: int
    events_redacted: int
    stripe_customer_redacted: bool

    def summary(self) -> str:
        return (
            f"Supporter {self.supporter_id} erased: {self.donations_kept} donations kept "
            f"with their amounts, {self.emails_scrubbed} emails scrubbed "
            f"({self.emails_stopped} unsent ones stopped), {self.reminders_wiped} reminders "
            f"wiped, {self.events_redacted} stored Stripe events redacted, Stripe customer "
            f"{'redacted' if self.stripe_customer_redacted else 'none'}; the address stays "
            "suppressed (as a hash)."
        )


def erase_supporter(supporter: Supporter, *, actor: str) -> ErasureResult:
    """Anonymise a supporter's personal data; keep every financial row and amount.

    Their name, address, country and consents go, here and at Stripe (the
    customer is kept but its details are cleared, so its payments still
    reconcile); emails and stored webhook payloads that carry the address
    are scrubbed; unsent mail is stopped; the address goes on the
    suppression list as a hash, so nothing is ever sent to it again.
    Refused while a recurring plan could still charge them: cancel it first.
    """
    from donations.mail.models import EmailMessage, EmailStatus
    from donations.payments.models import StripeEvent
    from donations.payments.services import gateway
    from donations.reminders.services import forget_address

    if supporter.erased_at is not None:
        raise ErasureRefused(f"supporter {supporter.id} was already erased")
    live = [plan for plan in supporter.plans if plan.status in LIVE_PLAN_STATUSES]
    if live:
        raise ErasureRefused(
            f"supporter {supporter.id} has {len(live)} recurring plan(s) that can still "
            "charge them; cancel them first"
        )
    address, customer_id = supporter.email, supporter.stripe_customer_id
    # At Stripe first: if that fails nothing here changes, and it is safe to repeat.
    if customer_id:
        gateway().redact_customer(customer_id)

    reminders = forget_address(address)  # also puts the address on the suppression list
    placeholder = f"erased-{supporter.id}@{ERASED_DOMAIN}"
    supporter.email = supporter.email_key = placeholder
    supporter.name = ""
    supporter.country = None
    supporter.newsletter_opt_in = False
    supporter.erased_at = utcnow()

    donations = db.session.scalars(
        select(Donation).where(Donation.supporter_id == supporter.id)
    ).all()
    for donation in donations:
        donation.card_last4 = None
        donation.note = None

    messages = db.session.scalars(
        select(EmailMessage).where(
            or_(
                EmailMessage.supporter_id == supporter.id,
                func.lower(EmailMessage.to_address) == email_key(address),
            )
        )
    ).all()
    stopped = 0
    for message in messages:
        message.to_address = placeholder
        message.to_name = ""
        message.context = {}
        message.headers = {}
        if message.status is EmailStatus.QUEUED:
            message.status = EmailStatus.SUPPRESSED
            message.last_error = "recipient erased"
            stopped += 1

    # The stored raw webhook bodies are only history once processed (handlers
    # re-read Stripe); those naming the person or their customer are blanked.
    needles = [email_key(address)] + ([customer_id] if customer_id else [])
    events = db.session.scalars(
        select(StripeEvent).where(
            or_(*(func.lower(StripeEvent.payload).contains(n, autoescape=True) for n in needles))
        )
    ).all()
    for event in events:
        event.payload = '{"redacted": "personal data erased"}'

    db.session.flush()
    log.info("supporter %s erased by %s", supporter.id, actor)
    return ErasureResult(
        supporter_id=supporter.id,
        donations_kept=len(donations),
        emails_scrubbed=len(messages),
        emails_stopped=stopped,
        reminders_wiped=reminders,
        events_redacted=len(events),
        stripe_customer_redacted=customer_id is not None,
    )
