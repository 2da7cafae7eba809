"""Rendering outbox rows into messages and handing them to the transport.

Every try is recorded as an :class:`EmailAttempt`. Temporary failures (4xx,
timeouts, refused connections) are tried again with exponential backoff up
to ``MAX_ATTEMPTS``; a permanent refusal of the mailbox (550) puts the
address on the suppression list.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage as MIMEMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import cast

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from donations.db import commit, db, utcnow
from donations.mail.models import (
    AttemptOutcome,
    EmailAttempt,
    EmailMessage,
    EmailStatus,
    SuppressionReason,
)
from donations.mail.suppression import address_hash, suppress, suppressions_among
from donations.mail.transport import MailTransport, PermanentMailError, TemporaryMailError
from donations.observability import MAIL

log = logging.getLogger(__name__)

_LINE_BREAKS = re.compile(r"[\r\n\x00]+")
_HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,75}$")
# Headers the outbox sets itself; a row's extra headers never replace them.
_RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "sender", "reply-to"}
    | {"content-type", "content-transfer-encoding", "mime-version"}
)

# RFC 5322 §2.1.1 allows lines up to 998 characters. Folding at the usual 78
# would turn a long List-Unsubscribe URL (which has no spaces to fold at)
# into RFC 2047 encoded words, which mail providers do not decode there.
MESSAGE_POLICY = policy.default.clone(max_line_length=998)

MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=4)
# A message claimed this long ago whose sender never finished was being sent
# by a worker that died; it is tried again.
STUCK_AFTER = timedelta(minutes=10)
# A QUEUED message whose send task never ran (Redis flushed, say) is picked
# up by the sweep once it is this old.
ORPHANED_AFTER = timedelta(minutes=2)
# How long a sender may keep claimed messages before sending them: well
# inside STUCK_AFTER, so a message is never both held and taken back.
HOLD_CLAIMS = STUCK_AFTER / 2


def _one_line(text: str) -> str:
    """Header values never carry line breaks (no header injection)."""
    return _LINE_BREAKS.sub(" ", text).strip()


def render_email(row: EmailMessage) -> MIMEMessage:
    """Build the MIME message for an outbox row, in the row's language."""
    base = f"email/{row.template}"
    with force_locale(row.locale):
        context = {
            **row.context,
            "locale": row.locale,
            "to_name": row.to_name,
            # For the "Manage your support" link at the foot of every email.
            "to_address": row.to_address,
            "template": row.template,
            "base_url": current_app.config["SETTINGS"].base_url,
            "mail_from_address": parseaddr(current_app.config["SETTINGS"].mail_from)[1],
        }
        subject = render_template(f"{base}/subject.txt", **context)
        text = render_template(f"{base}/body.txt", **context)
        html = render_template(f"{base}/body.html", **context)
    settings = current_app.config["SETTINGS"]
    message = MIMEMessage(policy=MESSAGE_POLICY)
    message["Subject"] = _one_line(subject)
    message["From"] = settings.mail_from
    message["To"] = Address(
        display_name=_one_line(row.to_name), addr_spec=_one_line(row.to_address)
    )
    message["Date"] = format_datetime(utcnow())
    domain = settings.mail_from.rsplit("@", 1)[-1].strip("> ") or "localhost"
    message["Message-ID"] = make_msgid(idstring=f"m{row.id}", domain=domain)
    for name, value in (row.headers or {}).items():
        if not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} cannot be set on an outbox message")
        message[name] = _one_line(str(value))
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def transport() -> MailTransport:
    factory = current_app.extensions["mail_transport"]
    result: MailTransport = factory()
    return result


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed try: 1, 2, 4 … minutes, at most 4 h."""
    delay = FIRST_RETRY * (2 ** max(0, attempts - 1))
    return min(delay, LONGEST_RETRY)


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(
            EmailMessage.status == EmailStatus.QUEUED,
            or_(EmailMessage.next_attempt_at.is_(None), EmailMessage.next_attempt_at <= now),
        ),
        and_(
            EmailMessage.status == EmailStatus.SENDING,
            EmailMessage.claimed_at < now - STUCK_AFTER,
            # A message that killed its worker MAX_ATTEMPTS times stays put
            # for an operator to look at rather than taking down every worker.
            EmailMessage.attempts < MAX_ATTEMPTS,
        ),
    )


def _claim(message_ids: list[int]) -> dict[int, int]:
    """Compare-and-set these messages to SENDING; the attempt number of each one won."""
    now = utcnow()
    won = db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.id.in_(message_ids), _claimable(now))
        .values(status=EmailStatus.SENDING, attempts=EmailMessage.attempts + 1, claimed_at=now)
        .returning(EmailMessage.id, EmailMessage.attempts)
        .execution_options(synchronize_session=False)
    )
    return dict(won.all())


def _release(message_ids: list[int]) -> None:
    """Hand back claimed messages this worker will not get to (they were not tried)."""
    db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.id.in_(message_ids), EmailMessage.status == EmailStatus.SENDING)
        .values(
            status=EmailStatus.QUEUED,
            attempts=EmailMessage.attempts - 1,
            next_attempt_at=utcnow(),
            claimed_at=None,
        )
        .execution_options(synchronize_session=False)
    )


def deliver(message_id: int) -> EmailStatus | None:
    """Send one queued email; safe to call twice (the second call does nothing)."""
    return deliver_many([message_id]).get(message_id)


def deliver_many(message_ids: Iterable[int]) -> dict[int, EmailStatus]:
    """Send these outbox messages over one connection; return the status of each one tried.

    The messages are claimed together with one compare-and-set, so two
    workers handed the same ids never send one twice; each result is
    committed as soon as the server has answered. Claims are held for at
    most ``HOLD_CLAIMS`` (half of ``STUCK_AFTER``, after which the sweep
    would take them back): what is not sent by then is released. The
    suppression list is read once per call.
    """
    wanted = list(dict.fromkeys(message_ids))
    results: dict[int, EmailStatus] = {}
    if not wanted:
        return results
    rows = {
        row.id: row
        for row in db.session.scalars(select(EmailMessage).where(EmailMessage.id.in_(wanted)))
    }
    for row in rows.values():
        # What is rendered never changes once queued; status and attempts
        # come from the claim, so the rows need not follow the commits.
        db.session.expunge(row)
    suppressed = suppressions_among(
        address_hash(row.to_address) for row in rows.values() if row.suppressible
    )
    claimed = _claim([message_id for message_id in wanted if message_id in rows])
    commit()
    ids = [message_id for message_id in wanted if message_id in claimed]
    if not ids:
        return results
    hold_until = time.monotonic() + HOLD_CLAIMS.total_seconds()
    sender = transport()
    try:
        for position, message_id in enumerate(ids):
            if time.monotonic() > hold_until:
                _release(ids[position:])
                commit()
                log.warning("released %s unsent claims (slow mail server)", len(ids) - position)
                break
            row = rows[message_id]
            results[message_id] = _send_claimed(row, claimed[message_id], suppressed, sender)
            commit()
    finally:
        sender.close()
    return results


def _send_claimed(
    row: EmailMessage,
    attempt: int,
    suppressed: dict[str, SuppressionReason],
    sender: MailTransport,
) -> EmailStatus:
    """Send one message this worker has claimed and record what happened (no commit)."""
    started = utcnow()
    hashed = address_hash(row.to_address)
    if row.suppressible and hashed in suppressed:
        result = _Result(
            AttemptOutcome.SUPPRESSED,
            EmailStatus.SUPPRESSED,
            detail=f"address suppressed ({suppressed[hashed]})",
        )
    else:
        try:
            message = render_email(row)
        except Exception as exc:
            # A message that cannot be built (a malformed address, a template
            # bug) will not build on a retry either.
            log.exception("email %s could not be built", row.dedupe_key)
            result = _Result(
                AttemptOutcome.REFUSED,
                EmailStatus.FAILED,
                detail=f"could not build the message: {exc}",
            )
        else:
            result = _hand_over(row, message, attempt, hashed, sender)
    _record(row, attempt, started, result)
    MAIL.labels(result.status.value).inc()
    return result.status


@dataclass
class _Result:
    """What one try came to, as the message row and its attempt record it."""

    outcome: AttemptOutcome
    status: EmailStatus
    code: int | None = None
    detail: str | None = None
    values: dict[str, object] = field(default_factory=dict)


def _hand_over(
    row: EmailMessage, message: MIMEMessage, attempt: int, hashed: str, sender: MailTransport
) -> _Result:
    """Give the built message to the transport; a retry, a refusal or a success."""
    try:
        sender.send(message)
    except TemporaryMailError as exc:
        if attempt >= MAX_ATTEMPTS:
            log.error("email %s: giving up after %s tries", row.dedupe_key, attempt)
            return _Result(AttemptOutcome.GAVE_UP, EmailStatus.FAILED, exc.code, str(exc))
        log.warning("email %s temporarily failed: %s", row.dedupe_key, exc)
        retry: dict[str, object] = {"next_attempt_at": utcnow() + retry_delay(attempt)}
        return _Result(AttemptOutcome.RETRY, EmailStatus.QUEUED, exc.code, str(exc), retry)
    except PermanentMailError as exc:
        log.warning("email %s refused: %s", row.dedupe_key, exc)
        if exc.mailbox_unavailable:
            suppress(hashed, SuppressionReason.BOUNCED, _one_line(str(exc))[:500])
        return _Result(AttemptOutcome.REFUSED, EmailStatus.FAILED, exc.code, str(exc))
    sent = {"sent_at": utcnow(), "message_id": str(message["Message-ID"]), "next_attempt_at": None}
    return _Result(AttemptOutcome.SENT, EmailStatus.SENT, values=sent)


def _record(row: EmailMessage, attempt: int, started: datetime, result: _Result) -> None:
    """The try's result on the message row, and one attempt row, in two prebuilt statements."""
    connection = db.session.connection()
    detail = result.detail
    connection.execute(
        _RECORD_RESULT,
        {
            "row_id": row.id,
            "new_status": result.status,
            "error": None if result.outcome is AttemptOutcome.SENT else (detail or "")[:2000],
            "sent": result.values.get("sent_at"),
            "sent_message_id": result.values.get("message_id"),
            "next_attempt": result.values.get("next_attempt_at"),
        },
    )
    connection.execute(
        _RECORD_ATTEMPT,
        {
            "message_id": row.id,
            "number": attempt,
            "started_at": started,
            "finished_at": utcnow(),
            "outcome": result.outcome,
            "smtp_code": result.code,
            "detail": detail[:2000] if detail else None,
        },
    )


# Built once: these run for every message sent.
_messages = cast(Table, EmailMessage.__table__)
_RECORD_RESULT = (
    update(_messages)
    .where(_messages.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status", type_=_messages.c.status.type),
        last_error=bindparam("error", type_=_messages.c.last_error.type),
        sent_at=bindparam("sent", type_=_messages.c.sent_at.type),
        message_id=bindparam("sent_message_id", type_=_messages.c.message_id.type),
        next_attempt_at=bindparam("next_attempt", type_=_messages.c.next_attempt_at.type),
    )
)
_RECORD_ATTEMPT = insert(cast(Table, EmailAttempt.__table__))


def pending_email_ids(now: datetime | None = None, limit: int = 500) -> list[int]:
    """Messages due for a (re)try: retries whose time has come, orphans, stuck sends."""
    now = now or utcnow()
    condition = or_(
        and_(EmailMessage.status == EmailStatus.QUEUED, EmailMessage.next_attempt_at <= now),
        and_(
            EmailMessage.status == EmailStatus.QUEUED,
            EmailMessage.next_attempt_at.is_(None),
            EmailMessage.created_at <= now - ORPHANED_AFTER,
        ),
        and_(
            EmailMessage.status == EmailStatus.SENDING,
            EmailMessage.claimed_at < now - STUCK_AFTER,
            EmailMessage.attempts < MAX_ATTEMPTS,
        ),
    )
    return list(
        db.session.scalars(
            select(EmailMessage.id).where(condition).order_by(EmailMessage.id).limit(limit)
        )
    )


def send_pending_emails(limit: int = 500) -> int:
    """Send what :func:`pending_email_ids` finds; return how many went out."""
    ids = pending_email_ids(limit=limit)
    commit()
    results = deliver_many(ids)
    return sum(1 for status in results.values() if status is EmailStatus.SENT)
