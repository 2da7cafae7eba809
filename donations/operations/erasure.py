"""Erasing a supporter: their personal data goes, here and at Stripe; every amount stays."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from blinker import Namespace
from sqlalchemy import func, or_, select

from donations.db import db, utcnow
from donations.mail.addresses import normalise_address
from donations.mail.models import EmailMessage, EmailStatus
from donations.payments.abandoned import expire_open_checkouts_of
from donations.payments.models import StripeEvent
from donations.payments.services import gateway
from donations.reminders.services import forget_address
from donations.supporters.consents import record_withdrawal
from donations.supporters.models import ConsentTopic, Donation, PlanStatus, RecurringPlan, Supporter

log = logging.getLogger(__name__)

# Sent with the supporter while an erasure runs (before its flush), for areas
# above this one that keep personal data of their own (manage/: its sessions'
# addresses and browsers, asked-for email changes) -- they cannot be imported here.
supporter_erased = Namespace().signal("supporter-erased")

ERASED_DOMAIN = "erased.invalid"  # RFC 2606: can never be a real address
LIVE_PLAN_STATUSES = frozenset({PlanStatus.ACTIVE, PlanStatus.PAST_DUE, PlanStatus.UNPAID})


def can_still_charge(plan: RecurringPlan) -> bool:
    """A plan with a subscription that may still take money.

    An incomplete plan with no subscription is an unpaid checkout -- anyone
    can start one with any address -- so it never blocks an erasure; it is
    expired (its SetupIntent cancelled) as part of it.
    """
    if plan.status in LIVE_PLAN_STATUSES:
        return True
    return plan.status is PlanStatus.INCOMPLETE and plan.stripe_subscription_id is not None


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
    checkouts_expired: int
    stripe_customer_redacted: bool

    def summary(self) -> str:
        return (
            f"Supporter {self.supporter_id} erased: {self.donations_kept} donations kept "
            f"with their amounts, {self.emails_scrubbed} emails scrubbed "
            f"({self.emails_stopped} unsent ones stopped), {self.reminders_wiped} reminders "
            f"wiped, {self.checkouts_expired} unpaid checkouts expired, "
            f"{self.events_redacted} stored Stripe events redacted, Stripe customer "
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
    _refuse_unless_erasable(supporter)
    address, customer_id = supporter.email, supporter.stripe_customer_id
    # At Stripe first: if that fails nothing here changes, and it is safe to repeat.
    # Unpaid checkouts go first, so none can be paid against the redacted customer.
    expired = expire_open_checkouts_of(supporter)
    if customer_id:
        gateway().redact_customer(customer_id)

    reminders = forget_address(address)  # also puts the address on the suppression list
    placeholder = f"erased-{supporter.id}@{ERASED_DOMAIN}"
    _forget_details(supporter, placeholder)
    donations_kept = _scrub_donations(supporter)
    emails_scrubbed, emails_stopped = _scrub_emails(supporter, address, placeholder)
    events_redacted = _redact_events(address, customer_id)
    supporter_erased.send(supporter, actor=actor)
    db.session.flush()
    log.info("supporter %s erased by %s", supporter.id, actor)
    return ErasureResult(
        supporter_id=supporter.id,
        donations_kept=donations_kept,
        emails_scrubbed=emails_scrubbed,
        emails_stopped=emails_stopped,
        reminders_wiped=reminders,
        events_redacted=events_redacted,
        checkouts_expired=expired,
        stripe_customer_redacted=customer_id is not None,
    )


def _refuse_unless_erasable(supporter: Supporter) -> None:
    if supporter.erased_at is not None:
        raise ErasureRefused(f"supporter {supporter.id} was already erased")
    live = [plan for plan in supporter.plans if can_still_charge(plan)]
    if live:
        raise ErasureRefused(
            f"supporter {supporter.id} has {len(live)} recurring plan(s) that can still "
            "charge them; cancel them first"
        )


def _forget_details(supporter: Supporter, placeholder: str) -> None:
    """The supporter's address, name, country and newsletter consent go."""
    supporter.email = supporter.email_key = placeholder
    supporter.name = ""
    supporter.country = None
    if supporter.newsletter_opt_in:
        record_withdrawal(
            ConsentTopic.NEWSLETTER, source="erasure", proof="operator", supporter=supporter
        )
    supporter.newsletter_opt_in = False
    supporter.erased_at = utcnow()


def _scrub_donations(supporter: Supporter) -> int:
    """Blank what the donations say about the person; return how many are kept."""
    donations = db.session.scalars(
        select(Donation).where(Donation.supporter_id == supporter.id)
    ).all()
    for donation in donations:
        donation.card_last4 = None
        donation.card_exp_month = donation.card_exp_year = None
        donation.note = None
    for plan in supporter.plans:
        plan.card_last4 = None
        plan.card_exp_month = plan.card_exp_year = None
    return len(donations)


def _scrub_emails(supporter: Supporter, address: str, placeholder: str) -> tuple[int, int]:
    """Blank every email to the person and stop the unsent; return (scrubbed, stopped)."""
    messages = db.session.scalars(
        select(EmailMessage).where(
            or_(
                EmailMessage.supporter_id == supporter.id,
                func.lower(EmailMessage.to_address) == normalise_address(address),
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
    return len(messages), stopped


def _redact_events(address: str, customer_id: str | None) -> int:
    """Blank the stored webhook bodies naming the person or their customer; return how many.

    The stored raw bodies are only history once processed (handlers re-read Stripe).
    """
    needles = [normalise_address(address)] + ([customer_id] if customer_id else [])
    events = db.session.scalars(
        select(StripeEvent).where(
            or_(*(func.lower(StripeEvent.payload).contains(n, autoescape=True) for n in needles))
        )
    ).all()
    for event in events:
        event.payload = '{"redacted": "personal data erased"}'
    return len(events)
