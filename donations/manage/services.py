"""Signing supporters in to /manage: emailed links, links in our emails, sessions.

Two ways in, both a link sent to the address (DESIGN.md 2.5: the address's
owner is whoever can read its mail):

- **Sign-in link**: typed address at /manage, one link emailed, good for
  ``LINK_LIFETIME`` and for one sign-in. The outbox keeps only the link's id;
  the URL is signed when the email is rendered, so the database alone never
  holds a usable link. A request for an unknown (or erased) address sends
  nothing and is answered exactly like one for a known address: the view
  only queues a task (:mod:`donations.manage.tasks`) that does the lookup.
- **Links in our emails**: every email to a supporter carries a signed
  manage link (``EMAIL_LINK_MAX_AGE``), naming the supporter and a digest of
  the address it went to; after an email change, links sent to the old
  address stop working.

Sessions are server-side (``manage_sessions``), short (``IDLE_TIMEOUT``,
``ABSOLUTE_TIMEOUT``), and end on sign-out, "sign out everywhere", an email
change and erasure. Every step is written to the audit log with the
supporter's id (so it is on their timeline) and its source. Functions flush;
the caller commits.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_request_context, request
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from donations.db import db, spend_once, utcnow
from donations.mail.suppression import address_hash
from donations.manage.models import ManageSession, SignInLink
from donations.reminders.services import external_url
from donations.security import signed_id, signed_value, signing_keys
from donations.staff.services import audit
from donations.supporters.models import Supporter
from donations.supporters.services import email_supporter, find_supporter

log = logging.getLogger(__name__)

LINK_LIFETIME = timedelta(minutes=15)
EMAIL_LINK_MAX_AGE = timedelta(days=30)
IDLE_TIMEOUT = timedelta(minutes=20)
ABSOLUTE_TIMEOUT = timedelta(hours=2)
# last_seen_at is written at most this often, not on every click.
TOUCH_INTERVAL = timedelta(seconds=60)
MAX_TOKEN_LENGTH = 400

_SIGN_IN_SALT = "donations.manage.sign-in-link"
_EMAIL_LINK_SALT = "donations.manage.email-link"
# How much of the address digest an email link carries: enough to tell two
# addresses apart, too little to look an address up by.
_DIGEST_CHARS = 16

SIGN_IN_SOURCE = "sign_in_link"


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _client_ip() -> str | None:
    return request.remote_addr if has_request_context() else None


def _source_label(source: str) -> str:
    if source == SIGN_IN_SOURCE:
        return "sign-in link"
    if source.startswith("email:"):
        return f"link in the {source.removeprefix('email:')} email"
    return source


def record(
    action: str, supporter: Supporter, *, source: str, target: str | None = None, **details: Any
) -> None:
    """One thing the supporter did (or had done) in /manage, in the audit log.

    With the supporter's id, so it is on their timeline in the back office;
    ``source`` says how the browser doing it signed in.
    """
    audit(
        f"manage.{action}",
        supporter_id=supporter.id,
        target=target,
        actor=f"supporter ({_source_label(source)})",
        source=source,
        **details,
    )


def active_supporter(email: str) -> Supporter | None:
    """The supporter with this address who can sign in: known and not erased."""
    supporter = find_supporter(email)
    if supporter is None or supporter.erased_at is not None:
        return None
    return supporter


# -- sign-in links ---------------------------------------------------------------------


def _sign_in_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_keys(), salt=_SIGN_IN_SALT)


def sign_in_url(link_id: int) -> str:
    """The URL of a sign-in link, signed now (when its email is rendered)."""
    token = str(_sign_in_serializer().dumps(link_id))
    return external_url("manage.link", token=token)


def send_sign_in_link(email: str, locale: str) -> SignInLink | None:
    """Email a single-use sign-in link to ``email`` if it is a supporter's address.

    For any other address nothing is stored or sent. Runs in a task, so the
    request that asked for it looks the same whatever the address.
    """
    supporter = active_supporter(email)
    if supporter is None:
        log.info("sign-in link asked for an address with no supporter: nothing sent")
        return None
    now = utcnow()
    link = SignInLink(
        supporter_id=supporter.id,
        address_hash=address_hash(supporter.email),
        created_at=now,
        expires_at=now + LINK_LIFETIME,
    )
    db.session.add(link)
    db.session.flush()
    email_supporter(
        supporter,
        "manage_sign_in",
        dedupe_key=f"manage:sign-in:{link.id}",
        locale=locale,
        context={"link_id": link.id, "minutes": int(LINK_LIFETIME.total_seconds() // 60)},
    )
    record("link_sent", supporter, source="sign_in_form", target=f"sign_in_link:{link.id}")
    return link


def open_link(token: str, now: datetime | None = None) -> SignInLink | None:
    """The unused, unexpired sign-in link this token names; None for anything else."""
    # The row's expiry decides; the signature's own age is a backstop.
    link_id = signed_id(
        _sign_in_serializer(), token, max_length=MAX_TOKEN_LENGTH, max_age=LINK_LIFETIME * 2
    )
    link = db.session.get(SignInLink, link_id) if link_id is not None else None
    now = now or utcnow()
    if link is None or link.used_at is not None or _aware(link.expires_at) <= now:
        return None
    supporter = link.supporter
    if supporter.erased_at is not None or address_hash(supporter.email) != link.address_hash:
        return None
    return link


def use_link(link: SignInLink, now: datetime | None = None) -> bool:
    """Spend the link (compare-and-set): True for the one request that did."""
    spent = spend_once(link, SignInLink.used_at, now or utcnow())
    db.session.expire(link)
    return spent


# -- links in our emails ------------------------------------------------------------


def _email_link_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_keys(), salt=_EMAIL_LINK_SALT)


def _digest(address: str) -> str:
    return address_hash(address)[:_DIGEST_CHARS]


def email_link_token(supporter: Supporter, template: str) -> str:
    payload = {"s": supporter.id, "a": _digest(supporter.email), "t": template[:40]}
    return str(_email_link_serializer().dumps(payload))


def manage_link(to_address: str, template: str) -> str:
    """The "Manage your support" link for an email to ``to_address``.

    A signed link that signs the supporter in when the address is a
    supporter's; the sign-in page otherwise.
    """
    supporter = active_supporter(to_address) if to_address else None
    if supporter is None:
        return external_url("manage.sign_in")
    return external_url("manage.email_link", token=email_link_token(supporter, template))


def supporter_from_email_link(token: str) -> tuple[Supporter, str] | None:
    """The supporter (and the email's template) a link in one of our emails names."""
    payload = signed_value(
        _email_link_serializer(), token, max_length=MAX_TOKEN_LENGTH, max_age=EMAIL_LINK_MAX_AGE
    )
    if not isinstance(payload, dict):
        return None
    supporter_id, digest, template = payload.get("s"), payload.get("a"), payload.get("t")
    if not isinstance(supporter_id, int) or not isinstance(digest, str):
        return None
    if not isinstance(template, str) or not template.replace("_", "").isalnum():
        return None
    supporter = db.session.get(Supporter, supporter_id)
    if supporter is None or supporter.erased_at is not None:
        return None
    if not secrets.compare_digest(_digest(supporter.email), digest):
        return None  # sent to an address the supporter no longer has
    return supporter, template


# -- sessions ------------------------------------------------------------------------


def start_session(supporter: Supporter, source: str) -> str:
    """A new server-side session for this browser; returns the cookie's token."""
    now = utcnow()
    token = secrets.token_urlsafe(32)
    row = ManageSession(
        token_hash=_hash_token(token),
        supporter_id=supporter.id,
        source=source,
        created_at=now,
        last_seen_at=now,
        ip=_client_ip(),
        user_agent=(request.user_agent.string[:300] if has_request_context() else None),
    )
    db.session.add(row)
    db.session.flush()
    record("signed_in", supporter, source=source, target=f"manage_session:{row.id}")
    return token


def resume_session(token: str, now: datetime | None = None) -> ManageSession | None:
    """The live session for this cookie token, or None (ended, timed out, erased)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    now = now or utcnow()
    row = db.session.scalar(
        select(ManageSession).where(ManageSession.token_hash == _hash_token(token))
    )
    if row is None or row.ended_at is not None:
        return None
    if row.supporter.erased_at is not None:
        end_session(row, "erased", now)
        return None
    if now - _aware(row.created_at) > ABSOLUTE_TIMEOUT:
        end_session(row, "absolute_timeout", now)
        return None
    if now - _aware(row.last_seen_at) > IDLE_TIMEOUT:
        end_session(row, "idle_timeout", now)
        return None
    if now - _aware(row.last_seen_at) > TOUCH_INTERVAL:
        row.last_seen_at = now
    return row


def end_session(row: ManageSession, reason: str, now: datetime | None = None) -> bool:
    """End one session; True if it was still live. Audited."""
    if row.ended_at is not None:
        return False
    row.ended_at = now or utcnow()
    row.end_reason = reason
    db.session.flush()
    record(
        "signed_out" if reason == "sign_out" else "session_ended",
        row.supporter,
        source=row.source,
        target=f"manage_session:{row.id}",
        reason=reason,
    )
    return True


def live_sessions(supporter: Supporter) -> list[ManageSession]:
    return list(
        db.session.scalars(
            select(ManageSession)
            .where(ManageSession.supporter_id == supporter.id, ManageSession.ended_at.is_(None))
            .order_by(ManageSession.id)
        )
    )


def end_all_sessions(supporter: Supporter, reason: str) -> int:
    """End every live session of the supporter (sign out everywhere); how many ended."""
    ended = 0
    for row in live_sessions(supporter):
        ended += end_session(row, reason)
    return ended


def sign_in_limit() -> str:
    """Sign-in links asked for one address (whoever asks)."""
    return str(current_app.config["SETTINGS"].manage_sign_in_rate_limit)


def sign_in_ip_limit() -> str:
    """Sign-in links asked for from one client address (whatever address is typed)."""
    return str(current_app.config["SETTINGS"].manage_sign_in_ip_rate_limit)
