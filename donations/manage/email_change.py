"""Changing a supporter's email address: confirmed at the new address, told to the old.

The signed-in supporter asks; a link goes to the new address (24 hours, the
row's id signed when the email renders); only its owner's click makes the
change. Whether the new address already belongs to another supporter is
said to that owner only (at the click), never to whoever asked. Once
changed, every session ends (links sent to the old address stop working
with it) and the old address gets a notice. Functions flush; the caller commits.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import Select, select

from donations.db import db, utcnow
from donations.mail.addresses import normalise_address
from donations.mail.services import queue_email
from donations.manage.models import EmailChange, ManageSession
from donations.manage.services import (
    MAX_TOKEN_LENGTH,
    _aware,
    end_all_sessions,
    record,
)
from donations.reminders.services import external_url
from donations.security import signed_id, signing_keys
from donations.supporters.models import Supporter
from donations.supporters.services import find_supporter

LIFETIME = timedelta(hours=24)
_SALT = "donations.manage.email-change"


class ChangeOutcome(StrEnum):
    CHANGED = "changed"
    TAKEN = "taken"  # the new address has its own supporter record
    SAME = "same"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_keys(), salt=_SALT)


def confirm_url(change_id: int) -> str:
    """The confirmation link of an email change, signed when its email is rendered."""
    return external_url("manage.confirm_email", token=str(_serializer().dumps(change_id)))


def _unanswered(supporter: Supporter) -> Select[EmailChange]:
    """The supporter's changes neither confirmed nor spent (expired ones included)."""
    return select(EmailChange).where(
        EmailChange.supporter_id == supporter.id,
        EmailChange.confirmed_at.is_(None),
        EmailChange.canceled_at.is_(None),
    )


def pending_change(supporter: Supporter) -> EmailChange | None:
    now = utcnow()
    for change in db.session.scalars(_unanswered(supporter).order_by(EmailChange.id.desc())):
        if _aware(change.expires_at) > now:
            return change
    return None


def _spend_others(supporter: Supporter, keep: EmailChange | None = None) -> None:
    now = utcnow()
    for change in db.session.scalars(_unanswered(supporter)):
        if change is not keep:
            change.canceled_at = now


def request_change(session: ManageSession, new_email: str, locale: str) -> EmailChange | None:
    """Email a confirmation link to ``new_email``; None when it is the current address."""
    supporter = session.supporter
    new_email = new_email.strip()
    if normalise_address(new_email) == supporter.email_key:
        return None
    _spend_others(supporter)
    now = utcnow()
    change = EmailChange(
        supporter_id=supporter.id, new_email=new_email, created_at=now, expires_at=now + LIFETIME
    )
    db.session.add(change)
    db.session.flush()
    queue_email(
        "manage_email_confirm",
        dedupe_key=f"manage:email-change:{change.id}:confirm",
        to_address=new_email,
        to_name=supporter.name,
        locale=locale,
        supporter_id=supporter.id,
        context={"change_id": change.id, "hours": int(LIFETIME.total_seconds() // 3600)},
    )
    record(
        "email_change_requested",
        supporter,
        source=session.source,
        target=f"email_change:{change.id}",
    )
    return change


def open_change(token: str) -> EmailChange | None:
    """The pending, unexpired change this token names; None for anything else."""
    change_id = signed_id(_serializer(), token, max_length=MAX_TOKEN_LENGTH, max_age=LIFETIME)
    change = db.session.get(EmailChange, change_id) if change_id is not None else None
    if change is None or change.confirmed_at is not None or change.canceled_at is not None:
        return None
    if _aware(change.expires_at) <= utcnow() or change.supporter.erased_at is not None:
        return None
    return change


def mask(address: str) -> str:
    """``a•••@example.org``: enough for the old address's owner to recognise it."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"


def confirm_change(change: EmailChange, locale: str) -> ChangeOutcome:
    """The new address's owner clicked: the supporter's address becomes it."""
    supporter = change.supporter
    new_key = normalise_address(change.new_email)
    other = find_supporter(change.new_email)
    if other is not None and other.id != supporter.id:
        return ChangeOutcome.TAKEN
    if new_key == supporter.email_key:
        change.confirmed_at = utcnow()
        return ChangeOutcome.SAME
    old_address, now = supporter.email, utcnow()
    supporter.email = change.new_email
    supporter.email_key = new_key
    change.confirmed_at = now
    _spend_others(supporter, keep=change)
    db.session.flush()
    end_all_sessions(supporter, "email_changed")
    queue_email(
        "manage_email_changed",
        dedupe_key=f"manage:email-change:{change.id}:notice",
        to_address=old_address,
        to_name=supporter.name,
        locale=locale,
        supporter_id=supporter.id,
        context={"new_address": mask(change.new_email), "changed_at": now.isoformat()},
    )
    record(
        "email_changed", supporter, source="email_change_link", target=f"email_change:{change.id}"
    )
    return ChangeOutcome.CHANGED
