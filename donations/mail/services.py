"""Queueing mail in the outbox; it leaves only after the commit."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from donations.db import db, on_commit
from donations.mail.models import EmailMessage

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
) -> EmailMessage | None:
    """Put one email in the outbox, at most once per ``dedupe_key``.

    Returns the new message, or None when that email was queued before.
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
    )
    try:
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:
        log.info("email %s was queued concurrently", dedupe_key)
        return None

    from donations.mail.tasks import send_email

    message_id = message.id
    on_commit(lambda: send_email.delay(message_id))
    return message
