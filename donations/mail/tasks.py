"""Background work for mail."""

from __future__ import annotations

from donations.mail.sender import deliver
from donations.tasks import celery_app


@celery_app.task(name="mail.send_email", ignore_result=True)
def send_email(message_id: int) -> None:
    deliver(message_id)
