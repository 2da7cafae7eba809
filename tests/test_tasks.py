"""Tasks queued with delay_on_commit leave only after the commit, never after a rollback."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from donations.db import commit, db
from donations.tasks import celery_app

ran: list[int] = []


@celery_app.task(name="tests.record")
def record(value: int) -> None:
    ran.append(value)


def test_delay_on_commit_waits_for_the_commit_and_forgets_a_rollback(app: Flask) -> None:
    ran.clear()
    with app.app_context():
        assert app.config["SETTINGS"].background_inline  # tasks run in the caller
        db.session.execute(select(1))  # a transaction is open, as in a request
        record.delay_on_commit(1)
        assert ran == []
        db.session.rollback()
        commit()
        assert ran == []
        record.delay_on_commit(2)
        assert ran == []
        commit()
    assert ran == [2]
