"""Queueing mail in the outbox: it leaves only after the commit."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from donations.db import db, utcnow
from donations.mail.models import EmailMessage, EmailStatus
from donations.mail.tasks import send_email

log = logging.getLogger(__name__)


def queue_email(
    template: str,
    *,
    dedupe_key: str,
    to_address: str,
    to_name: str = "",
    locale: str = "en",
    supporter_id: int | None = None,
    context: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    suppressible: bool = False,
    send_after_commit: bool = True,
) -> EmailMessage | None:
    """Put one email in the outbox, at most once per ``dedupe_key``.

    Returns the new message, or None when that email was queued before.
    With ``send_after_commit`` (the default) a send task is queued once the
    transaction commits; a caller queueing many messages at once passes
    False and hands the ids to :func:`donations.mail.tasks.send_emails`.
    """
    if db.session.scalar(select(EmailMessage.id).where(EmailMessage.dedupe_key == dedupe_key)):
        return None
    message = EmailMessage(
        dedupe_key=dedupe_key,
        template=template,
        to_address=to_address,
        to_name=to_name,
        locale=locale,
        supporter_id=supporter_id,
        context=context or {},
        headers=headers or {},
        suppressible=suppressible,
    )
    try:
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:
        log.info("email %s was queued concurrently", dedupe_key)
        return None

    if send_after_commit:
        send_email.delay_on_commit(message.id)
    return message


def queue_emails(messages: list[dict[str, Any]]) -> dict[str, int]:
    """Put many emails in the outbox with one statement; return new ids by dedupe key.

    Each item takes :func:`queue_email`'s keyword arguments (template,
    dedupe_key, to_address, ...). Keys already in the outbox are skipped,
    never an error. Nothing is sent: the caller hands the ids to
    :func:`donations.mail.tasks.send_emails` after its commit.
    """
    if not messages:
        return {}
    now = utcnow()
    rows = [
        {
            "dedupe_key": m["dedupe_key"],
            "template": m["template"],
            "to_address": m["to_address"],
            "to_name": m.get("to_name", ""),
            "locale": m.get("locale", "en"),
            "supporter_id": m.get("supporter_id"),
            "context": m.get("context") or {},
            "headers": m.get("headers") or {},
            "suppressible": bool(m.get("suppressible", False)),
            "status": EmailStatus.QUEUED,
            "attempts": 0,
            "created_at": now,
        }
        for m in messages
    ]
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    inserted = db.session.execute(
        insert(EmailMessage)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(EmailMessage.dedupe_key, EmailMessage.id)
    )
    return dict(inserted.all())
