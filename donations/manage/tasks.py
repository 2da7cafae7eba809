"""Sending sign-in links, away from the request that asked for one."""

from __future__ import annotations

from donations.db import commit
from donations.manage.services import send_sign_in_link
from donations.tasks import celery_app


@celery_app.task(name="manage.send_sign_in_link", ignore_result=True)
def send_sign_in_link_task(email: str, locale: str) -> None:
    """Look the address up and, if it is a supporter's, email them a sign-in link.

    The lookup happens here rather than in the request, so the answer to
    "email me a link" is built the same way for every address.
    """
    send_sign_in_link(email, locale)
    commit()
