"""Background work of the portal: sign-in links, and the annual statements job."""

from __future__ import annotations

from donations.db import commit
from donations.manage.services import send_sign_in_link
from donations.manage.statements import send_statement_batch
from donations.tasks import celery_app


@celery_app.task(name="manage.send_sign_in_link", ignore_result=True)
def send_sign_in_link_task(email: str, locale: str) -> None:
    """Look the address up and, if it is a supporter's, email them a sign-in link.

    The lookup happens here rather than in the request, so the answer to
    "email me a link" is built the same way for every address.
    """
    send_sign_in_link(email, locale)
    commit()


@celery_app.task(name="statements.send_year", ignore_result=True)
def send_statements_task(year: int) -> int:
    """Email every supporter with gifts in fiscal ``year`` their statement, once each.

    Batch by batch, each committed with its ``annual_statements`` rows and
    outbox emails: a worker killed half-way leaves the rest for the next run
    (the task redelivered, or the command again), which skips those done.
    """
    queued, after = 0, 0
    while True:
        count, last = send_statement_batch(year, after)
        commit()
        if last is None:
            return queued
        queued, after = queued + count, last
