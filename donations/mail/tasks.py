"""Background work for mail."""

from __future__ import annotations

from donations.mail.sender import deliver, deliver_many, send_pending_emails
from donations.tasks import celery_app


@celery_app.task(name="mail.send_email", ignore_result=True)
def send_email(message_id: int) -> None:
    deliver(message_id)


@celery_app.task(name="mail.send_emails", ignore_result=True)
def send_emails(message_ids: list[int]) -> None:
    """Send a batch over one SMTP connection (reminders queue theirs this way)."""
    deliver_many(message_ids)


@celery_app.task(name="mail.send_pending", ignore_result=True)
def send_pending() -> None:
    """Periodic: retries that are due, and sends a dead worker left behind."""
    send_pending_emails()
