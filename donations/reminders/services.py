"""Remind me later: scheduling, dispatching, unsubscribing, erasing.

Domain functions: they flush, never commit. The caller (a request, a task,
the CLI) commits once; :mod:`donations.reminders.tasks` drives the batches.
"""

from __future__ import annotations

import calendar
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import and_, func, select, update

from donations.db import db, insert_or_fetch, utcnow
from donations.mail.addresses import normalise_address
from donations.mail.models import SuppressionReason
from donations.mail.services import queue_email, queue_emails
from donations.mail.suppression import (
    address_hash,
    suppress,
    suppression_for,
    suppressions_among,
)
from donations.money import Money
from donations.observability import REMINDERS
from donations.reminders.models import Reminder, ReminderStatus, SkipReason
from donations.security import signed_id, signed_value, signing_keys
from donations.supporters.attribution import Attribution
from donations.supporters.consents import apply_consent, record_withdrawal, request_consent
from donations.supporters.models import (
    Consent,
    ConsentStatus,
    ConsentTopic,
    Donation,
    DonationStatus,
    Frequency,
    Supporter,
)
from donations.supporters.services import find_or_create_supporter

log = logging.getLogger(__name__)

REMINDER_MONTHS = (1, 3, 6)
DEFAULT_MONTHS = 1

_LINK_SALT = "donations.reminders.ask-link"
_UNSUBSCRIBE_SALT = "donations.reminders.unsubscribe"
MAX_TOKEN_LENGTH = 300

# A gift of either kind since the reader asked means they need no reminder.
_GIVEN = (DonationStatus.SUCCEEDED, DonationStatus.PROCESSING)

# Suppressions no public form may lift: the address's owner cannot prove
# anything at a bounced address, and an erased person asked to be forgotten.
_NEVER_LIFTED = frozenset({SuppressionReason.BOUNCED, SuppressionReason.ERASED})

_SKIP_FOR_SUPPRESSION = {
    SuppressionReason.UNSUBSCRIBED: SkipReason.UNSUBSCRIBED,
    SuppressionReason.BOUNCED: SkipReason.BOUNCED,
    SuppressionReason.ERASED: SkipReason.ERASED,
}


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later (the 31st becomes the month's last day)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_dates(now: datetime | None = None) -> dict[int, datetime]:
    """When a reminder asked for now would be due, for each choice offered."""
    now = now or utcnow()
    return {months: add_months(now, months) for months in REMINDER_MONTHS}


# -- links --------------------------------------------------------------------


def _serializer(salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(signing_keys(), salt=salt)


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute URL on BASE_URL, built without a request (tasks, the CLI)."""
    base = urlsplit(current_app.config["SETTINGS"].base_url)
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme
    )
    return adapter.build(endpoint, values, force_external=True)


def unsubscribe_token(hashed: str) -> str:
    """A signed token naming an address by its hash (the address itself never travels)."""
    return str(_serializer(_UNSUBSCRIBE_SALT).dumps(hashed))


def hash_from_unsubscribe_token(token: str) -> str | None:
    """The address hash in a genuine unsubscribe token; None for anything else."""
    hashed = signed_value(_serializer(_UNSUBSCRIBE_SALT), token, max_length=MAX_TOKEN_LENGTH)
    if not isinstance(hashed, str) or len(hashed) != 64:
        return None
    return hashed


def unsubscribe_url(hashed: str) -> str:
    return external_url("reminders.unsubscribe_page", token=unsubscribe_token(hashed))


def unsubscribe_headers(hashed: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe: https://www.rfc-editor.org/rfc/rfc8058#section-3.1"""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(hashed)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def link_token(reminder_id: int) -> str:
    return str(_serializer(_LINK_SALT).dumps(reminder_id))


def reminder_from_link(token: str | None) -> Reminder | None:
    """The sent reminder a link in its email names; None if the token is not genuine."""
    reminder_id = signed_id(_serializer(_LINK_SALT), token, max_length=MAX_TOKEN_LENGTH)
    reminder = db.session.get(Reminder, reminder_id) if reminder_id is not None else None
    if reminder is None or reminder.status is not ReminderStatus.SENT:
        return None
    return reminder


def ask_url(reminder: Reminder) -> str:
    """The ask, prefilled as the reader left it, carrying the reminder for attribution."""
    values: dict[str, Any] = {"reminder": link_token(reminder.id)}
    values |= Attribution(reminder.article, reminder.campaign, reminder.variant).as_args()
    if reminder.frequency is not None:
        values["frequency"] = reminder.frequency.value
    if reminder.currency is not None:
        values["currency"] = reminder.currency
        if reminder.amount is not None:
            values["amount"] = Money(reminder.amount, reminder.currency).major_text()
    return external_url("support.ask", **values)


# -- signing up ---------------------------------------------------------------


@dataclass(frozen=True)
class Prefill:
    """What the reader was looking at on the ask (each part optional)."""

    frequency: Frequency | None = None
    currency: str | None = None
    amount: int | None = None


def schedule_reminder(
    *,
    email: str,
    months: int,
    locale: str,
    prefill: Prefill | None = None,
    source: str | None = None,
    attribution: Attribution | None = None,
    now: datetime | None = None,
) -> Reminder | None:
    """Ask for a reminder ``months`` from now; returns the pending reminder.

    At most one reminder is pending per address and period (the month it
    falls due): asking again for the same period updates that one instead,
    and sends no second confirmation.

    The address is a claim (DESIGN.md 2.5), so nothing stored for it is
    lifted or changed here. An erased or bounced address gets nothing at all
    and None is returned (the caller shows the same page either way). An
    address that unsubscribed gets its reminder row, but the suppression
    stays until its owner confirms by the double opt-in email sent now;
    unconfirmed, the reminder is skipped when it falls due.
    """
    if months not in REMINDER_MONTHS:
        raise ValueError(f"reminders are offered in {REMINDER_MONTHS} months, not {months}")
    now = now or utcnow()
    prefill = prefill or Prefill()
    key, hashed = normalise_address(email), address_hash(email)
    due_at = add_months(now, months)
    suppression = suppression_for(hashed)
    if suppression is not None and suppression.reason in _NEVER_LIFTED:
        log.info("reminder signup for a %s address: nothing stored", suppression.reason)
        return None
    supporter = find_or_create_supporter(email=email, locale=locale)  # flushed: it has an id
    # The pending reminder for the period, the key of a partial unique index.
    existing, created = insert_or_fetch(
        Reminder,
        {"email_key": key, "period": f"{due_at:%Y-%m}", "status": ReminderStatus.PENDING},
        {
            "email": email.strip(),
            "address_hash": hashed,
            "supporter_id": supporter.id,
            "locale": locale,
            **_looked_at(prefill, source, attribution),
            "months": months,
            "due_at": due_at,
            "created_at": now,
        },
    )
    if not created:
        _update_pending(
            existing, locale=locale, prefill=prefill, source=source, attribution=attribution
        )
    elif suppression is not None:  # unsubscribed: ask the owner first
        request_opt_in(existing, now)
    else:
        _queue_confirmation(existing)
    return existing


def _looked_at(
    prefill: Prefill, source: str | None, attribution: Attribution | None
) -> dict[str, object]:
    """What the reader was looking at when asking: the gift shown, where, in which placement."""
    return {
        "frequency": prefill.frequency,
        "currency": prefill.currency,
        "amount": prefill.amount,
        "source": source,
        **(attribution or Attribution()).as_columns(),
    }


def _update_pending(
    reminder: Reminder,
    *,
    locale: str,
    prefill: Prefill,
    source: str | None,
    attribution: Attribution | None,
) -> None:
    """The same request again (a refresh, a second tab): keep the one reminder,
    with what the reader looked at most recently."""
    reminder.locale = locale
    reminder.frequency = prefill.frequency or reminder.frequency
    reminder.currency = prefill.currency or reminder.currency
    reminder.amount = prefill.amount if prefill.currency else reminder.amount
    reminder.source = source or reminder.source
    if attribution is not None and attribution.as_args():
        for column, value in attribution.as_columns().items():
            setattr(reminder, column, value)
    db.session.flush()


# -- double opt-in after an unsubscribe ------------------------------------------

_OPT_IN_SALT = "donations.reminders.opt-in"
# How long the "send me reminders again" link works.
OPT_IN_MAX_AGE = timedelta(days=14)


def opt_in_token(consent_id: int) -> str:
    return str(URLSafeTimedSerializer(signing_keys(), salt=_OPT_IN_SALT).dumps(consent_id))


def consent_from_opt_in_token(token: str) -> Consent | None:
    """The pending-or-applied reminders consent a genuine, unexpired opt-in link names."""
    consent_id = signed_id(
        URLSafeTimedSerializer(signing_keys(), salt=_OPT_IN_SALT),
        token,
        max_length=MAX_TOKEN_LENGTH,
        max_age=OPT_IN_MAX_AGE,
    )
    consent = db.session.get(Consent, consent_id) if consent_id is not None else None
    if consent is None or consent.topic is not ConsentTopic.REMINDERS or not consent.granted:
        return None
    return consent


def request_opt_in(reminder: Reminder, now: datetime) -> Consent:
    """Record the wish for reminders again and ask the address's owner to confirm it.

    One email per address and day at most, so the form cannot be used to
    flood someone who unsubscribed.
    """
    assert reminder.email is not None
    assert reminder.address_hash is not None
    consent = request_consent(
        ConsentTopic.REMINDERS,
        source="reminder_form",
        locale=reminder.locale,
        address_hash=reminder.address_hash,
    )
    queue_email(
        "reminder_opt_in",
        dedupe_key=f"reminder-opt-in:{reminder.address_hash}:{now:%Y-%m-%d}",
        to_address=reminder.email,
        locale=reminder.locale,
        context={
            "due_at": reminder.due_at.isoformat(),
            "confirm_url": external_url("reminders.opt_in_page", token=opt_in_token(consent.id)),
        },
    )
    return consent


def confirm_opt_in(consent: Consent) -> bool:
    """The owner clicked the link: reminders to the address may go again.

    Lifts only an unsubscribe: an address erased or bounced since stays
    suppressed (supporters.consents.apply_consent). True for the first click.
    """
    return apply_consent(consent, proof="email_link")


def find_reminder(reminder_id: int) -> Reminder | None:
    return db.session.get(Reminder, reminder_id)


def _queue_confirmation(reminder: Reminder) -> None:
    assert reminder.email is not None
    assert reminder.address_hash is not None
    queue_email(
        "reminder_confirmation",
        dedupe_key=f"reminder-confirmation:{reminder.id}",
        to_address=reminder.email,
        locale=reminder.locale,
        supporter_id=reminder.supporter_id,
        context={
            "due_at": reminder.due_at.isoformat(),
            "unsubscribe_url": unsubscribe_url(reminder.address_hash),
        },
        headers=unsubscribe_headers(reminder.address_hash),
    )


# -- unsubscribing and erasure ---------------------------------------------------


def is_unsubscribed(hashed: str) -> bool:
    entry = suppression_for(hashed)
    return entry is not None and entry.reason is SuppressionReason.UNSUBSCRIBED


def unsubscribe(hashed: str, *, source: str = "unsubscribe_link") -> int:
    """Stop reminders to the address with this hash; return how many pending ones were canceled.

    ``source`` is where the withdrawal came from (the link in a reminder
    email, or ``manage``: the supporter's own page). Idempotent: a second
    call (a replayed link, a second click) changes nothing.
    """
    entry = suppression_for(hashed)
    waiting = db.session.scalar(
        select(func.count())
        .select_from(Consent)
        .where(
            Consent.address_hash == hashed,
            Consent.topic == ConsentTopic.REMINDERS,
            Consent.status == ConsentStatus.PENDING,
        )
    )
    if entry is None or entry.reason is not SuppressionReason.UNSUBSCRIBED or waiting:
        # Also overtakes a "send me reminders again" still waiting for its click.
        record_withdrawal(
            ConsentTopic.REMINDERS,
            source=source,
            proof="email_link",
            address_hash=hashed,
        )
    if entry is None:
        suppress(hashed, SuppressionReason.UNSUBSCRIBED, f"reminders stopped ({source})")
    pending = db.session.scalars(
        select(Reminder).where(
            Reminder.address_hash == hashed, Reminder.status == ReminderStatus.PENDING
        )
    ).all()
    for reminder in pending:
        reminder.move_to(ReminderStatus.CANCELED, SkipReason.UNSUBSCRIBED)
    db.session.flush()
    return len(pending)


def cancel_reminder(reminder: Reminder) -> bool:
    """Withdraw one pending reminder before it is due (its owner asked); True if it was."""
    if reminder.status is not ReminderStatus.PENDING:
        return False
    changed = reminder.move_to(ReminderStatus.CANCELED)
    db.session.flush()
    return changed


def forget_address(email: str) -> int:
    """Erase what reminders know about ``email``; return how many rows were wiped.

    The address goes on the suppression list (by hash) first, so nothing is
    ever sent to it again; pending reminders stay as rows without an address
    and are skipped as ERASED when they fall due.
    """
    suppress(address_hash(email), SuppressionReason.ERASED, "erased on request")
    rows = db.session.scalars(
        select(Reminder).where(Reminder.email_key == normalise_address(email))
    ).all()
    for reminder in rows:
        reminder.email = None
        reminder.email_key = None
        reminder.address_hash = None
        reminder.source = None
    db.session.flush()
    return len(rows)


# -- dispatching --------------------------------------------------------------


@dataclass
class DispatchResult:
    """What one or more dispatched batches did."""

    claimed: int = 0
    sent: int = 0
    skipped: Counter[SkipReason] = field(default_factory=Counter)
    message_ids: list[int] = field(default_factory=list)

    def add(self, other: DispatchResult) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.skipped.update(other.skipped)
        self.message_ids.extend(other.message_ids)


def claim_due_reminders(now: datetime, limit: int) -> list[Reminder]:
    """Claim up to ``limit`` due reminders for this transaction, oldest first.

    PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` -- concurrent dispatchers
    take disjoint rows and never wait for each other. SQLite has no row
    locks: a conditional UPDATE takes the database write lock, which is
    held until this transaction commits, and only touches rows still
    pending, so a second dispatcher sees them as sent once it gets the lock.
    Either way a claimed row stays claimed only as long as the transaction:
    a dispatcher that dies before committing leaves its rows pending.
    """
    due = and_(Reminder.status == ReminderStatus.PENDING, Reminder.due_at <= now)
    oldest = select(Reminder.id).where(due).order_by(Reminder.due_at, Reminder.id).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        ids = list(db.session.scalars(oldest.with_for_update(skip_locked=True)))
    else:
        ids = list(
            db.session.scalars(
                update(Reminder)
                .where(Reminder.id.in_(oldest), Reminder.status == ReminderStatus.PENDING)
                .values(updated_at=now)
                .returning(Reminder.id)
                .execution_options(synchronize_session=False)
            )
        )
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(Reminder)
            .where(Reminder.id.in_(ids))
            .order_by(Reminder.due_at, Reminder.id)
            .execution_options(populate_existing=True)
        )
    )


def _last_gifts(keys: set[str]) -> dict[str, datetime]:
    """The latest gift (succeeded or settling) of each of these addresses."""
    if not keys:
        return {}
    rows = db.session.execute(
        select(Supporter.email_key, func.max(Donation.created_at))
        .join(Donation, Donation.supporter_id == Supporter.id)
        .where(Supporter.email_key.in_(keys), Donation.status.in_(_GIVEN))
        .group_by(Supporter.email_key)
    )
    return dict(rows.all())


def _people(supporter_ids: set[int]) -> dict[int, tuple[str, bool]]:
    """Each supporter's name, and whether their data has been erased."""
    if not supporter_ids:
        return {}
    rows = db.session.execute(
        select(Supporter.id, Supporter.name, Supporter.erased_at.is_not(None)).where(
            Supporter.id.in_(supporter_ids)
        )
    )
    return {supporter_id: (name, erased) for supporter_id, name, erased in rows}


def dispatch_reminders(reminders: list[Reminder], now: datetime) -> DispatchResult:
    """Decide, at send time, what each claimed reminder becomes, and queue the emails.

    Checked again now, not at signup: a reader who has given since, who
    unsubscribed, whose address bounced or who was erased gets nothing.
    The outbox rows are created in this same transaction (dedupe key
    ``reminder:<id>``), so a reminder is handed over exactly once. The
    caller sends ``message_ids`` after committing.
    """
    result = DispatchResult(claimed=len(reminders))
    suppressed = suppressions_among(r.address_hash for r in reminders if r.address_hash)
    last_gifts = _last_gifts({r.email_key for r in reminders if r.email_key})
    people = _people({r.supporter_id for r in reminders if r.supporter_id})
    outgoing: list[tuple[Reminder, dict[str, Any]]] = []
    for reminder in reminders:
        reason = _skip_reason(reminder, suppressed, last_gifts, people)
        if reason is not None:
            reminder.move_to(ReminderStatus.SKIPPED, reason)
            REMINDERS.labels("skipped").inc()
            result.skipped[reason] += 1
            continue
        email, hashed = reminder.email or "", reminder.address_hash or ""
        name, _ = people.get(reminder.supporter_id or 0, ("", False))
        outgoing.append(
            (
                reminder,
                {
                    "template": "reminder",
                    "dedupe_key": f"reminder:{reminder.id}",
                    "to_address": email,
                    "to_name": name,
                    "locale": reminder.locale,
                    "supporter_id": reminder.supporter_id,
                    "context": {
                        "signed_up_at": reminder.created_at.isoformat(),
                        "frequency": reminder.frequency.value if reminder.frequency else None,
                        "currency": reminder.currency,
                        "amount": reminder.amount,
                        "ask_url": ask_url(reminder),
                        "unsubscribe_url": unsubscribe_url(hashed),
                    },
                    "headers": unsubscribe_headers(hashed),
                    "suppressible": True,
                },
            )
        )
    queued = queue_emails([message for _, message in outgoing])
    for reminder, message in outgoing:
        message_id = queued.get(message["dedupe_key"])
        if message_id is None:  # pragma: no cover - an earlier run queued it and committed
            log.error("reminder %s was already in the outbox", reminder.id)
        else:
            reminder.email_message_id = message_id
            result.message_ids.append(message_id)
        reminder.move_to(ReminderStatus.SENT)
        REMINDERS.labels("sent").inc()
        reminder.sent_at = now
        result.sent += 1
    db.session.flush()
    return result


def _skip_reason(
    reminder: Reminder,
    suppressed: dict[str, SuppressionReason],
    last_gifts: dict[str, datetime],
    people: dict[int, tuple[str, bool]],
) -> SkipReason | None:
    if reminder.email is None or reminder.address_hash is None or reminder.email_key is None:
        return SkipReason.ERASED
    if people.get(reminder.supporter_id or 0, ("", False))[1]:
        return SkipReason.ERASED
    if reminder.address_hash in suppressed:
        return _SKIP_FOR_SUPPRESSION[suppressed[reminder.address_hash]]
    last_gift = last_gifts.get(reminder.email_key)
    if last_gift is not None and last_gift >= reminder.created_at:
        return SkipReason.GAVE_SINCE
    return None
