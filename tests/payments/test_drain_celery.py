"""Production mode: deliveries are stored and wake one drain; a real worker processes each once."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import requests
from flask import Flask
from sqlalchemy import select

from donations.db import db
from donations.payments.models import StripeEvent
from donations.payments.tasks import drain_stripe_events
from tests.harness import ROOT, free_port, sign_webhook_payload, wait_for_port
from tests.reminders.processes import app_env
from tests.reminders.test_celery import REDIS_URL, process

GATE = f"donations:wake:{drain_stripe_events.name}"
QUEUE = "celery"  # Celery's default queue: a Redis list of messages
WORKER = ["worker", "--concurrency", "2", "--without-gossip", "--without-mingle"]
WORKER += ["--without-heartbeat", "--hostname", "drain-test@%h"]


def delivery(event_id: str, secret: str) -> tuple[bytes, dict[str, str]]:
    now = int(time.time())
    body = json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "customer.updated",  # recorded and acknowledged without calling Stripe
            "created": now,
            "livemode": False,
            "api_version": "2026-10-28.endive",
            "data": {"object": {"id": "cus_" + event_id[4:], "object": "customer"}},
        }
    )
    headers = {
        "Stripe-Signature": sign_webhook_payload(body, secret, now),
        "Content-Type": "application/json",
    }
    return body.encode(), headers


def stored(prefix: str) -> list[StripeEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(StripeEvent).where(StripeEvent.stripe_event_id.startswith(prefix))
        )
    )


def wait_until_processed(prefix: str, count: int, worker_log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = stored(prefix)
        if len(rows) == count and all(row.processed_at is not None for row in rows):
            return
        time.sleep(0.3)
    raise AssertionError(f"not all {count} processed:\n{worker_log.read_text()}")


@pytest.mark.sweep  # a web server and a worker in other processes
def test_deliveries_wake_one_drain_and_a_worker_processes_each_event_once(
    app: Flask, ctx, tmp_path: Path
) -> None:
    secret = app.config["SETTINGS"].stripe_webhook_secret
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    env = app_env(app, REDIS_URL=REDIS_URL)
    port = free_port()
    run = f"evt_drain{random.randrange(10**6):06d}"
    worker_log = tmp_path / "worker.log"
    web_log = (tmp_path / "web.log").open("wb")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--threads", "4", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=web_log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/webhooks/stripe"
    try:
        wait_for_port(port, timeout=60)

        # No worker yet: six deliveries queue one drain run between them.
        for n in range(6):
            body, headers = delivery(f"{run}a{n}", secret)
            answer = requests.post(url, data=body, headers=headers, timeout=10)
            assert (answer.status_code, answer.text) == (200, "queued\n")
        assert broker.llen(QUEUE) == 1
        assert broker.exists(GATE)
        assert len(stored(f"{run}a")) == 6
        assert all(row.processed_at is None for row in stored(f"{run}a"))

        with process(
            WORKER,
            env,
            worker_log,
        ):
            wait_until_processed(f"{run}a", 6, worker_log)
            # The drain found nothing more and opened the gate for the next delivery.
            deadline = time.monotonic() + 10
            while broker.exists(GATE) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not broker.exists(GATE)

            # A burst from four connections, a fifth of it delivered twice, in any order.
            ids = [f"{run}b{n}" for n in range(80)]
            sends = ids + random.sample(ids, 20)
            random.shuffle(sends)
            answers: list[int] = []

            def send(share: list[str]) -> None:
                with requests.Session() as session:
                    for event_id in share:
                        body, headers = delivery(event_id, secret)
                        answers.append(session.post(url, data=body, headers=headers).status_code)

            threads = [threading.Thread(target=send, args=(sends[i::4],)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert answers.count(200) == len(sends) == 100
            wait_until_processed(f"{run}b", 80, worker_log)

        rows = stored(run)
        assert len(rows) == 86
        assert sum(row.deliveries for row in rows) == 106
        # Processed once each: one claim, no error, none waiting for the sweep.
        assert {row.attempts for row in rows} == {1}
        assert {(row.last_error, row.next_attempt_at, row.parked_at) for row in rows} == {
            (None, None, None)
        }
    finally:
        web.terminate()
        web.wait(30)
        web_log.close()
        broker.flushdb()
        broker.close()
