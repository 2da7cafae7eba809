"""Queueing mail in the outbox: it leaves only after the commit."""

from __future__ import annotations

from typing import Any

from donations.db import db, insert_ignoring_conflicts, insert_or_fetch, utcnow
from donations.mail.models import EmailMessage, EmailStatus
from donations.mail.tasks import send_email


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
    message, created = insert_or_fetch(
        EmailMessage,
        {"dedupe_key": dedupe_key},
        {
            "template": template,
            "to_address": to_address,
            "to_name": to_name,
            "locale": locale,
            "supporter_id": supporter_id,
            "context": context or {},
            "headers": headers or {},
            "suppressible": suppressible,
        },
    )
    if not created:  # queued before, or by a concurrent writer a moment ago
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
    inserted = db.session.execute(
        insert_ignoring_conflicts(EmailMessage, rows, ["dedupe_key"]).returning(
            EmailMessage.dedupe_key, EmailMessage.id
        )
    )
    return dict(inserted.all())
