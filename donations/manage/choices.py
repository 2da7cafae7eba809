"""The supporter's email choices, changed from /manage: newsletter, reminders.

The signed-in session proves the address (it came from a link sent to it),
so a choice made here applies at once, through the consents' owner
(:mod:`donations.supporters.consents`) with ``source="manage"`` and
``proof="email_link"``; reminder emails through the reminders' own
functions. Each change is audited with the session's source. Functions
flush; the request commits.
"""

from __future__ import annotations

from donations.mail.suppression import address_hash
from donations.manage.account import reminders_state
from donations.manage.models import ManageSession
from donations.manage.services import record
from donations.reminders.models import Reminder
from donations.reminders.services import cancel_reminder as withdraw_reminder
from donations.reminders.services import unsubscribe
from donations.supporters.consents import apply_consent, record_withdrawal, request_consent
from donations.supporters.models import ConsentTopic

SOURCE = "manage"
PROOF = "email_link"


def set_newsletter(session: ManageSession, subscribe: bool, locale: str) -> bool:
    """Grant or withdraw the newsletter consent; False when it already was so."""
    supporter = session.supporter
    if supporter.newsletter_opt_in == subscribe:
        return False
    if subscribe:
        consent = request_consent(
            ConsentTopic.NEWSLETTER, source=SOURCE, locale=locale, supporter=supporter
        )
        apply_consent(consent, proof=PROOF)
    else:
        consent = record_withdrawal(
            ConsentTopic.NEWSLETTER, source=SOURCE, proof=PROOF, locale=locale, supporter=supporter
        )
    record(
        "newsletter_changed",
        supporter,
        source=session.source,
        target=f"consent:{consent.id}",
        granted=subscribe,
    )
    return True


def set_reminder_emails(session: ManageSession, allow: bool, locale: str) -> bool:
    """Stop every reminder to the address, or lift the supporter's own unsubscribe.

    A bounce (or an erasure) is never lifted from here: nothing can prove a
    mailbox that refuses our mail.
    """
    supporter = session.supporter
    state = reminders_state(supporter)
    hashed = address_hash(supporter.email)
    if allow:
        if state != "unsubscribed":
            return False
        consent = request_consent(
            ConsentTopic.REMINDERS,
            source=SOURCE,
            locale=locale,
            supporter=supporter,
            address_hash=hashed,
        )
        apply_consent(consent, proof=PROOF)
        record(
            "reminders_changed",
            supporter,
            source=session.source,
            target=f"consent:{consent.id}",
            granted=True,
        )
        return True
    if state != "allowed":
        return False
    canceled = unsubscribe(hashed, source=SOURCE)
    record(
        "reminders_changed",
        supporter,
        source=session.source,
        granted=False,
        reminders_canceled=canceled,
    )
    return True


def cancel_reminder(session: ManageSession, reminder: Reminder) -> bool:
    """Withdraw one of the supporter's pending reminders."""
    if not withdraw_reminder(reminder):
        return False
    record(
        "reminder_canceled",
        session.supporter,
        source=session.source,
        target=f"reminder:{reminder.id}",
    )
    return True
