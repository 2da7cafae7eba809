"""Several dispatchers at once, and a worker killed mid-send."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, insert, select

from donations.db import commit, db, utcnow
from donations.mail.models import EmailMessage, EmailStatus
from donations.mail.sender import send_pending_emails
from donations.mail.suppression import address_hash
from donations.mail.transport import SMTPTransport
from donations.reminders.models import Reminder, ReminderStatus
from donations.reminders.services import DispatchResult
from donations.reminders.tasks import send_due_reminders
from tests.conftest import BACKEND
from tests.factories import reminder
from tests.harness import ROOT
from tests.mail.smtp_peers import HangingPeer, RecordingPeer, serve
from tests.reminders.processes import app_env

pytestmark = pytest.mark.sweep  # dispatchers race on their own connections

# SKIP LOCKED is PostgreSQL's; `make test` runs the suite on both databases,
# and SQLite (conditional UPDATE under its one write lock) gets a smaller race.
# RACE_SIZE=… overrides the size for a quick local run.
RACE_SIZE = int(os.environ.get("RACE_SIZE", "0")) or (2_000 if BACKEND == "postgresql" else 500)


def due_reminders(count: int) -> None:
    due = utcnow() - timedelta(minutes=5)
    rows = [
        {
            "email": f"reader{n}@example.org",
            "email_key": f"reader{n}@example.org",
            "address_hash": address_hash(f"reader{n}@example.org"),
            "locale": "en",
            "months": 1,
            "due_at": due,
            "period": f"{due:%Y-%m}",
            "status": ReminderStatus.PENDING,
            "created_at": due - timedelta(days=30),
            "updated_at": due,
        }
        for n in range(count)
    ]
    db.session.execute(insert(Reminder), rows)
    commit()


def test_two_dispatchers_racing_send_each_reminder_exactly_once(
    app: Flask, ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = RecordingPeer()
    due_reminders(RACE_SIZE)
    results: list[DispatchResult | BaseException] = []
    start = threading.Barrier(2)

    def dispatcher() -> None:
        # Its own app context: its own session, its own database connection.
        with app.app_context():
            try:
                start.wait()
                results.append(send_due_reminders())
            except BaseException as exc:  # reported below
                results.append(exc)
            finally:
                db.session.remove()

    with serve(peer) as url:
        monkeypatch.setitem(app.extensions, "mail_transport", lambda: SMTPTransport(url, 10))
        threads = [threading.Thread(target=dispatcher) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(900)
        assert not any(t.is_alive() for t in threads), "a dispatcher is still running"

    assert all(isinstance(r, DispatchResult) for r in results), results
    claimed = [r.claimed for r in results if isinstance(r, DispatchResult)]
    assert sum(claimed) == RACE_SIZE
    assert all(n > 0 for n in claimed), f"one dispatcher did everything: {claimed}"
    recipients = [to for tos, _ in peer.envelopes for to in tos]
    assert len(recipients) == RACE_SIZE
    assert len(set(recipients)) == RACE_SIZE
    db.session.expire_all()
    statuses = dict(
        db.session.execute(select(Reminder.status, func.count()).group_by(Reminder.status)).all()
    )
    assert statuses == {ReminderStatus.SENT: RACE_SIZE}
    sent = db.session.scalar(
        select(func.count())
        .select_from(EmailMessage)
        .where(EmailMessage.status == EmailStatus.SENT)
    )
    assert sent == RACE_SIZE


def test_a_worker_killed_mid_send_does_not_lose_the_reminder(
    app: Flask, ctx, mailbox, tmp_path
) -> None:
    row = reminder("killed@example.org")
    commit()
    peer = HangingPeer()
    log = tmp_path / "worker.log"
    with serve(peer) as url, log.open("wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "reminders", "send-due"],
            cwd=ROOT,
            env=app_env(app, SMTP_URL=url, SMTP_TIMEOUT="60"),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            started = peer.data_started.wait(60)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        assert started, f"the worker never reached the SMTP server: {log.read_text()}"

    db.session.expire_all()
    # The reminder was handed to the outbox; the email is stuck half-sent.
    assert db.session.get(Reminder, row.id).status is ReminderStatus.SENT
    message = db.session.scalar(select(EmailMessage))
    assert (message.status, message.attempts) == (EmailStatus.SENDING, 1)
    assert send_pending_emails() == 0  # it might still be in flight: wait
    with time_machine.travel(utcnow() + timedelta(minutes=11), tick=False):
        assert send_pending_emails() == 1
        assert send_pending_emails() == 0
    (received,) = mailbox.wait_for(1)
    assert received["To"].addresses[0].addr_spec == "killed@example.org"
    db.session.expire_all()
    assert db.session.get(EmailMessage, message.id).status is EmailStatus.SENT
