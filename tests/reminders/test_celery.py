"""With Celery on Redis: beat runs the dispatcher, a worker sends the email; both report ready."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from flask import Flask
from sqlalchemy import select

from donations.db import commit, db
from donations.mail.models import EmailMessage, EmailStatus
from donations.reminders.models import Reminder, ReminderStatus
from tests.factories import reminder
from tests.harness import ROOT
from tests.reminders.processes import app_env

pytestmark = pytest.mark.sweep  # a Celery worker and beat run in other processes

# A database of its own on the machine's Redis, emptied before and after
# (TEST_REDIS_URL gives concurrent checkouts of the project one each).
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "--app", "wsgi:celery", *args],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def ready(role: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "ops", "ready", role],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a busy CI machine starts Python slowly
        check=False,
    )


def test_beat_and_a_worker_on_redis_send_a_due_reminder_once(
    app: Flask, ctx, mailbox, tmp_path: Path
) -> None:
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    row = reminder("celery@example.org")
    commit()
    env = app_env(app, REDIS_URL=REDIS_URL, DISPATCH_INTERVAL_SECONDS="1")
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    try:
        before = ready("beat", env)
        assert before.returncode == 1
        assert "no heartbeat yet" in before.stdout
        assert ready("worker", env).returncode == 1
        with (
            process(
                [
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "2",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--hostname",
                    "reminders-test@%h",
                ],
                env,
                worker_log,
            ),
            process(
                ["beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "beat-schedule")],
                env,
                beat_log,
            ),
        ):
            messages = mailbox.wait_for(1, timeout=90)
            assert len(messages) == 1, worker_log.read_text() + beat_log.read_text()
            time.sleep(3)  # a few more ticks of beat: nothing more goes out
            # Readiness as an orchestrator would probe it, while both run.
            worker_ready, beat_ready = ready("worker", env), ready("beat", env)
            assert worker_ready.returncode == 0, worker_ready.stdout
            assert beat_ready.returncode == 0, beat_ready.stdout
            assert "last heartbeat" in beat_ready.stdout
        assert len(mailbox.messages) == 1
        assert messages[0]["To"].addresses[0].addr_spec == "celery@example.org"
        assert messages[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        beat_text = beat_log.read_text()
        assert "reminders.send_due" in beat_text
        assert "mail.send_emails" in worker_log.read_text()
    finally:
        broker.flushdb()
        broker.close()
    db.session.expire_all()
    assert db.session.get(Reminder, row.id).status is ReminderStatus.SENT
    assert db.session.scalar(select(EmailMessage.status)) is EmailStatus.SENT
