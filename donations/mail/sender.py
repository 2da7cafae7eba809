"""Rendering outbox rows into messages and handing them to the transport.

Every try is recorded as an :class:`EmailAttempt`. Temporary failures (4xx,
timeouts, refused connections) are tried again with exponential backoff up
to ``MAX_ATTEMPTS``; a permanent refusal of the mailbox (550) puts the
address on the suppression list.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage as MIMEMessage
from email.utils import format_datetime, make_msgid, parseaddr

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import and_, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from donations.db import db, utcnow
from donations.mail.models import (
    AttemptOutcome,
    EmailAttempt,
    EmailMessage,
    EmailStatus,
    SuppressionReason,
)
from donations.mail.services import address_hash, suppress, suppression_for
from donations.mail.transport import MailTransport, PermanentMailError, TemporaryMailError

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


def _claim(message_id: int) -> bool:
    """Compare-and-set one message to SENDING; True if this caller won it."""
    now = utcnow()
    claimed = db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message_id, _claimable(now))
        .values(status=EmailStatus.SENDING, attempts=EmailMessage.attempts + 1, claimed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return bool(claimed == 1)


def deliver(message_id: int) -> EmailStatus | None:
    """Send one queued email; safe to call twice (the second call does nothing)."""
    return deliver_many([message_id]).get(message_id)


def deliver_many(message_ids: Iterable[int]) -> dict[int, EmailStatus]:
    """Send these outbox messages over one connection; return the status of each one sent.

    Each message is claimed with a compare-and-set just before it is sent
    (committed in the same transaction that records the previous message),
    so two workers handed the same ids never send one twice, and a message
    is never held in SENDING while others are being sent.
    """
    ids = list(dict.fromkeys(message_ids))
    results: dict[int, EmailStatus] = {}
    if not ids:
        return results
    sender: MailTransport | None = None
    try:
        claimed = _claim(ids[0])
        db.session.commit()
        for position, message_id in enumerate(ids):
            if claimed:
                if sender is None:
                    sender = transport()
                results[message_id] = _send_claimed(message_id, sender)
            following = ids[position + 1] if position + 1 < len(ids) else None
            claimed = _claim(following) if following is not None else False
            db.session.commit()
    finally:
        if sender is not None:
            sender.close()
    return results


def _send_claimed(message_id: int, sender: MailTransport) -> EmailStatus:
    """Send one message this worker has claimed and record what happened (flushes)."""
    row = db.session.get(EmailMessage, message_id, populate_existing=True)
    assert row is not None
    started = utcnow()
    code: int | None = None
    outcome: AttemptOutcome
    detail: str | None = None
    hashed = address_hash(row.to_address)
    suppression = suppression_for(hashed) if row.suppressible else None
    if suppression is not None:
        outcome, detail = AttemptOutcome.SUPPRESSED, f"address suppressed ({suppression.reason})"
        row.status = EmailStatus.SUPPRESSED
    else:
        try:
            message = render_email(row)
        except Exception as exc:
            # A message that cannot be built (a malformed address, a template
            # bug) will not build on a retry either.
            log.exception("email %s could not be built", row.dedupe_key)
            outcome, detail = AttemptOutcome.REFUSED, f"could not build the message: {exc}"
            row.status = EmailStatus.FAILED
        else:
            try:
                sender.send(message)
            except TemporaryMailError as exc:
                code, detail = exc.code, str(exc)
                if row.attempts >= MAX_ATTEMPTS:
                    outcome = AttemptOutcome.GAVE_UP
                    row.status = EmailStatus.FAILED
                    log.error("email %s: giving up after %s tries", row.dedupe_key, row.attempts)
                else:
                    outcome = AttemptOutcome.RETRY
                    row.status = EmailStatus.QUEUED
                    row.next_attempt_at = utcnow() + retry_delay(row.attempts)
                    log.warning("email %s temporarily failed: %s", row.dedupe_key, exc)
            except PermanentMailError as exc:
                code, detail = exc.code, str(exc)
                outcome = AttemptOutcome.REFUSED
                row.status = EmailStatus.FAILED
                log.warning("email %s refused: %s", row.dedupe_key, exc)
                if exc.mailbox_unavailable:
                    suppress(hashed, SuppressionReason.BOUNCED, _one_line(str(exc))[:500])
            else:
                outcome = AttemptOutcome.SENT
                row.status = EmailStatus.SENT
                row.sent_at = utcnow()
                row.message_id = str(message["Message-ID"])
                row.next_attempt_at = None
    row.last_error = None if outcome is AttemptOutcome.SENT else (detail or "")[:2000]
    db.session.add(
        EmailAttempt(
            message_id=row.id,
            number=row.attempts,
            started_at=started,
            finished_at=utcnow(),
            outcome=outcome,
            smtp_code=code,
            detail=detail[:2000] if detail else None,
        )
    )
    db.session.flush()
    return row.status


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
    db.session.commit()
    results = deliver_many(ids)
    return sum(1 for status in results.values() if status is EmailStatus.SENT)

