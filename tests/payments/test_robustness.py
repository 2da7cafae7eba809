"""Deliveries that race, repeat, or meet a database or worker that goes away."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from donations import create_app
from donations.db import db
from donations.mail.models import EmailMessage
from donations.payments.gateway import WebhookEvent
from donations.payments.models import Dispute, Refund
from donations.payments.tasks import process_stripe_event
from donations.payments.webhooks import process_event, process_pending_events, store_event
from donations.supporters.models import DonationStatus
from tests.conftest import make_env
from tests.harness import ROOT, free_port
from tests.payments.stripe_flows import (
    DISPUTE_CARD,
    WEBHOOK,
    charge_of,
    close_dispute,
    count,
    dispute_of,
    event,
    event_row,
    give,
    refund,
    stale,
)


def all_at_once(calls: list) -> list:
    """Run each zero-argument callable in its own thread, released together."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # a failed call must fail the test, not vanish
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def statuses(responses: list) -> list:
    return [r.status_code if isinstance(r, requests.Response) else repr(r) for r in responses]


# -- replays and races ------------------------------------------------------------------


def test_refund_event_twenty_times_at_once_has_one_effect(
    client, ctx, simulator, live_server
) -> None:
    gift = give(client, simulator, amount="10")
    refund(simulator, gift, 400)
    body, headers, event_id = event("charge.refunded", stale(charge_of(simulator, gift), "charge"))

    def deliver() -> requests.Response:
        return requests.post(live_server.url + WEBHOOK, data=body, headers=headers, timeout=60)

    assert statuses(all_at_once([deliver] * 20)) == [200] * 20
    row = event_row(event_id)
    assert row is not None
    assert (row.deliveries, row.attempts, row.last_error) == (20, 1, None)
    assert row.processed_at is not None
    assert count(Refund) == 1
    assert gift.donation().refunded_amount == 400


def test_different_events_for_one_charge_at_once_agree(client, ctx, simulator, live_server) -> None:
    gift = give(client, simulator, amount="20", record=False)
    charge = charge_of(simulator, gift)
    refunds = [refund(simulator, gift, amount) for amount in (100, 200, 300)]
    deliveries = [event("payment_intent.succeeded", stale(gift.intent_id, "payment_intent"))]
    deliveries += [event("charge.refunded", stale(charge, "charge")) for _ in range(3)]
    deliveries += [event("refund.created", stale(r["id"], "refund")) for r in refunds]
    deliveries += [event("charge.refund.updated", stale(r["id"], "refund")) for r in refunds]
    calls = [
        lambda b=body, h=headers: requests.post(
            live_server.url + WEBHOOK, data=b, headers=h, timeout=60
        )
        for body, headers, _ in deliveries
    ]
    assert statuses(all_at_once(calls)) == [200] * len(calls)
    donation = gift.donation()
    assert donation.status is DonationStatus.SUCCEEDED
    assert donation.refunded_amount == 600
    assert count(Refund) == 3
    # One receipt, and one refund confirmation per refund.
    assert sorted(db.session.scalars(select(EmailMessage.template))) == ["receipt"] + ["refund"] * 3


def test_dispute_events_replayed_ten_times(client, ctx, simulator) -> None:
    gift = give(client, simulator, amount="10", card=DISPUTE_CARD)
    dispute = dispute_of(simulator, charge_of(simulator, gift))
    close_dispute(simulator, dispute["id"], won=True)
    created = event("charge.dispute.created", stale(dispute["id"], "dispute"))
    closed = event("charge.dispute.closed", stale(dispute["id"], "dispute"))
    for _ in range(10):
        for body, headers, _ in (closed, created):
            assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    assert [event_row(e[2]).deliveries for e in (created, closed)] == [10, 10]
    assert count(Dispute) == 1
    row = db.session.scalar(select(Dispute))
    assert row is not None
    assert (str(row.status), row.net) == ("won", -1500)


# -- the database goes away ----------------------------------------------------------------


class TcpProxy:
    """127.0.0.1:port -> target, which the test can take down and bring back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.start()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a stopped server would."""
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for conn in self._conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@contextmanager
def sqlite_locked(path: str) -> Iterator[None]:
    """Another process holding SQLite's write lock: to us the database does not answer."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture
def outage(app, database_url, simulator, tmp_path):
    """(an app that meets the outage, a context manager causing it, the app Stripe retries).

    PostgreSQL: an app connected through a proxy that is cut and restored; it
    also takes the retry, reconnecting. SQLite: an app that waits only 0.2 s
    for the lock another connection holds; the retry goes to the usual app.
    """
    if database_url.startswith("sqlite"):
        env = make_env(database_url, simulator, free_port(), tmp_path)
        impatient = {"connect_args": {"timeout": 0.2}}
        flaky = create_app(env, TESTING=True, SQLALCHEMY_ENGINE_OPTIONS=impatient)
        path = database_url.removeprefix("sqlite:///")
        yield flaky, lambda: sqlite_locked(path), app
        with flaky.app_context():
            db.engine.dispose()
        return
    host_port = database_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = TcpProxy((host, int(port)))
    proxied = database_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    flaky = create_app(make_env(proxied, simulator, free_port(), tmp_path), TESTING=True)

    @contextmanager
    def down() -> Iterator[None]:
        proxy.stop()
        try:
            yield
        finally:
            proxy.start()

    yield flaky, down, flaky
    with flaky.app_context():
        db.engine.dispose()
    proxy.stop()


@pytest.mark.sweep  # another app (its own engine) records the retry
def test_delivery_while_the_database_is_down_is_retried(client, ctx, simulator, outage) -> None:
    flaky, database_down, retried_by = outage
    # Only the deliveries made here: the simulator's own refund events would
    # record the refund behind the test's back.
    with simulator.muted():
        _delivery_while_the_database_is_down(client, simulator, flaky, database_down, retried_by)


def _delivery_while_the_database_is_down(
    client, simulator, flaky, database_down, retried_by
) -> None:
    gift = give(client, simulator, amount="10")
    refund(simulator, gift, 1000)
    body, headers, event_id = event("charge.refunded", stale(charge_of(simulator, gift), "charge"))
    flaky_client = flaky.test_client()
    with flaky.app_context():
        db.session.execute(select(1))  # a pooled connection that the outage will cut
        db.session.remove()
    with database_down():
        response = flaky_client.post(WEBHOOK, data=body, headers=headers)
        assert 500 <= response.status_code < 600
    assert event_row(event_id) is None
    assert count(Refund) == 0
    # Stripe delivers again once the database is back.
    assert retried_by.test_client().post(WEBHOOK, data=body, headers=headers).status_code == 200
    row = event_row(event_id)
    assert row is not None
    assert row.processed_at is not None
    assert gift.donation().refunded_amount == 1000


# -- a worker killed right after its commit ------------------------------------------------------

KILLED_WORKER = """
import os, signal, sys, json
from donations import create_app
from donations.db import on_commit
from donations.payments.tasks import process_stripe_event

app = create_app(json.loads(sys.argv[1]))
with app.app_context():
    # Registered first, so it runs the moment the commit returns: the task
    # is never acknowledged, and the broker will hand it out again.
    on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    process_stripe_event.run(int(sys.argv[2]))
"""


@pytest.mark.sweep  # the worker is another process
def test_worker_killed_after_commit_then_redelivery_is_a_no_op(
    client, ctx, simulator, database_url, tmp_path
) -> None:
    gift = give(client, simulator, amount="10", record=False)
    body, headers, event_id = event(
        "payment_intent.succeeded", stale(gift.intent_id, "payment_intent")
    )
    parsed = json.loads(body)
    row = store_event(
        WebhookEvent(
            event_id, parsed["type"], parsed["created"], False, gift.intent_id, "payment_intent"
        ),
        body.decode(),
    )
    db.session.commit()
    env = make_env(database_url, simulator, free_port(), tmp_path)
    worker = subprocess.run(
        [sys.executable, "-c", KILLED_WORKER, json.dumps(env), str(row.id)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert worker.returncode == -9, worker.stderr.decode()[-2000:]
    processed = event_row(event_id)
    assert processed is not None
    assert processed.processed_at is not None
    assert gift.donation().status is DonationStatus.SUCCEEDED
    assert count(EmailMessage) == 1
    before = (processed.attempts, processed.processed_at)

    # The broker hands the task out again; Stripe, never told 2xx, delivers again.
    process_stripe_event.run(row.id)
    assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    again = event_row(event_id)
    assert again is not None
    assert (again.attempts, again.processed_at) == before
    assert again.deliveries == 2
    assert count(EmailMessage) == 1


def test_events_left_unprocessed_are_swept_up(client, ctx, simulator, monkeypatch) -> None:
    """A stored event whose task was lost (Redis flushed, say) is processed by the sweep."""
    gift = give(client, simulator, amount="10", record=False)
    body, _, event_id = event("payment_intent.succeeded", stale(gift.intent_id, "payment_intent"))
    parsed = json.loads(body)
    store_event(
        WebhookEvent(
            event_id, parsed["type"], parsed["created"], False, gift.intent_id, "payment_intent"
        ),
        body.decode(),
    )
    db.session.commit()
    assert process_pending_events() == 0  # too recent: its task may still be on its way
    assert process_pending_events(older_than=timedelta(0)) == 1
    assert gift.donation().status is DonationStatus.SUCCEEDED
    assert process_pending_events(older_than=timedelta(0)) == 0


def test_processing_twice_in_a_row_is_a_no_op(client, ctx, simulator) -> None:
    gift = give(client, simulator, amount="10", record=False)
    body, headers, event_id = event(
        "payment_intent.succeeded", stale(gift.intent_id, "payment_intent")
    )
    assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    row = event_row(event_id)
    assert row is not None
    process_event(row.id)
    process_event(row.id)
    again = event_row(event_id)
    assert again is not None
    assert again.attempts == 1
    assert count(EmailMessage) == 1
