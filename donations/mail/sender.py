"""Rendering outbox rows into messages and handing them to the transport."""

from __future__ import annotations

import logging
import re
from email.headerregistry import Address
from email.message import EmailMessage as MIMEMessage
from email.utils import format_datetime, make_msgid

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import update

from donations.db import db, utcnow
from donations.mail.models import EmailMessage, EmailStatus
from donations.mail.transport import MailTransport, PermanentMailError, TemporaryMailError

log = logging.getLogger(__name__)

_LINE_BREAKS = re.compile(r"[\r\n\x00]+")


def _one_line(text: str) -> str:
    """Header values never carry line breaks (no header injection)."""
    return _LINE_BREAKS.sub(" ", text).strip()


def render_email(row: EmailMessage) -> MIMEMessage:
    """Build the MIME message for an outbox row, in the row's language."""
    base = f"email/{row.template}"
    with force_locale(row.locale):
        context = {**row.context, "locale": row.locale, "to_name": row.to_name}
        subject = render_template(f"{base}/subject.txt", **context)
        text = render_template(f"{base}/body.txt", **context)
        html = render_template(f"{base}/body.html", **context)
    settings = current_app.config["SETTINGS"]
    message = MIMEMessage()
    message["Subject"] = _one_line(subject)
    message["From"] = settings.mail_from
    message["To"] = Address(
        display_name=_one_line(row.to_name), addr_spec=_one_line(row.to_address)
    )
    message["Date"] = format_datetime(utcnow())
    domain = settings.mail_from.rsplit("@", 1)[-1].strip("> ") or "localhost"
    message["Message-ID"] = make_msgid(idstring=f"m{row.id}", domain=domain)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def transport() -> MailTransport:
    factory = current_app.extensions["mail_transport"]
    result: MailTransport = factory()
    return result


def deliver(message_id: int) -> EmailStatus | None:
    """Send one queued email; safe to call twice (the second call does nothing).

    The row is claimed with a compare-and-set before anything leaves, so two
    workers handed the same id never send it twice.
    """
    claimed = db.session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.id == message_id,
            EmailMessage.status.in_([EmailStatus.QUEUED, EmailStatus.FAILED]),
        )
        .values(status=EmailStatus.SENDING, attempts=EmailMessage.attempts + 1)
    ).rowcount  # type: ignore[attr-defined]
    db.session.commit()
    if claimed != 1:
        return None
    row = db.session.get(EmailMessage, message_id)
    assert row is not None
    try:
        message = render_email(row)
        transport().send(message)
    except TemporaryMailError as exc:
        row.status = EmailStatus.FAILED
        row.last_error = str(exc)[:2000]
        log.warning("email %s temporarily failed: %s", row.dedupe_key, exc)
    except PermanentMailError as exc:
        row.status = EmailStatus.FAILED
        row.last_error = f"permanent: {exc}"[:2000]
        log.warning("email %s refused: %s", row.dedupe_key, exc)
    else:
        row.status = EmailStatus.SENT
        row.sent_at = utcnow()
        row.message_id = str(message["Message-ID"])
        row.last_error = None
    db.session.commit()
    return row.status
