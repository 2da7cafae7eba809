"""The outbox against real SMTP servers that fail on purpose."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from donations.db import commit, db, utcnow
from donations.mail.models import (
    AttemptOutcome,
    EmailAttempt,
    EmailMessage,
    EmailStatus,
    Suppression,
    SuppressionReason,
)
from donations.mail.sender import MAX_ATTEMPTS, deliver_many, retry_delay, send_pending_emails
from donations.mail.services import queue_email
from donations.mail.suppression import address_hash, suppress
from donations.mail.transport import SMTPTransport
from tests.harness import free_port
from tests.mail.smtp_peers import HangingPeer, RecordingPeer, serve

ADDRESS = "reader@example.org"


def queue(to: str = ADDRESS, *, key: str = "test:1", name: str = "", **extra) -> EmailMessage:
    message = queue_email(
        "reminder_confirmation",
        dedupe_key=key,
        to_address=to,
        to_name=name,
        context={"due_at": "2027-01-31T09:30:00+00:00", "unsubscribe_url": "http://127.0.0.1/u/x"},
        **extra,
    )
    assert message is not None
    return message


def row(message_id: int) -> EmailMessage:
    db.session.expire_all()
    found = db.session.get(EmailMessage, message_id)
    assert found is not None
    return found


def attempts(message_id: int) -> list[EmailAttempt]:
    return list(
        db.session.scalars(
            select(EmailAttempt)
            .where(EmailAttempt.message_id == message_id)
            .order_by(EmailAttempt.number)
        )
    )


@pytest.fixture
def use_smtp(app: Flask, monkeypatch: pytest.MonkeyPatch):
    def point_at(url: str, timeout: float = 5.0) -> None:
        monkeypatch.setitem(app.extensions, "mail_transport", lambda: SMTPTransport(url, timeout))

    return point_at


@pytest.mark.parametrize("reply", ["421 4.3.2 busy, closing", "451 4.7.1 greylisted, try later"])
def test_temporary_refusal_is_retried_with_backoff(ctx, mailbox, reply: str) -> None:
    mailbox.script.append(reply)
    started = utcnow()
    message_id = queue().id
    commit()  # the first try runs right after the commit (inline)
    first = row(message_id)
    assert (first.status, first.attempts) == (EmailStatus.QUEUED, 1)
    assert first.next_attempt_at is not None
    assert (
        started + timedelta(minutes=1) <= first.next_attempt_at <= utcnow() + timedelta(minutes=1)
    )
    assert reply.split()[0] in (first.last_error or "")
    assert send_pending_emails() == 0  # not due yet
    assert mailbox.messages == []

    with time_machine.travel(first.next_attempt_at + timedelta(seconds=1), tick=False):
        assert send_pending_emails() == 1
    done = row(message_id)
    assert (done.status, done.attempts, done.next_attempt_at) == (EmailStatus.SENT, 2, None)
    assert len(mailbox.messages) == 1
    tries = attempts(message_id)
    assert [(a.number, a.outcome, a.smtp_code) for a in tries] == [
        (1, AttemptOutcome.RETRY, int(reply[:3])),
        (2, AttemptOutcome.SENT, None),
    ]


def test_backoff_doubles_up_to_a_cap_then_gives_up(ctx, mailbox) -> None:
    assert [retry_delay(n) for n in range(1, 11)] == [
        timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 64, 128, 240, 240)
    ]
    mailbox.script.extend(["451 4.3.0 try later"] * MAX_ATTEMPTS)
    message_id = queue().id
    commit()
    previous = None
    for _ in range(MAX_ATTEMPTS - 1):
        current = row(message_id)
        assert current.status is EmailStatus.QUEUED
        assert current.next_attempt_at is not None
        if previous is not None:
            waited = current.next_attempt_at - previous
            assert waited >= retry_delay(current.attempts)
        previous = current.next_attempt_at
        with time_machine.travel(current.next_attempt_at + timedelta(seconds=1), tick=False):
            send_pending_emails()
    gave_up = row(message_id)
    assert (gave_up.status, gave_up.attempts) == (EmailStatus.FAILED, MAX_ATTEMPTS)
    outcomes = [a.outcome for a in attempts(message_id)]
    assert outcomes == [AttemptOutcome.RETRY] * (MAX_ATTEMPTS - 1) + [AttemptOutcome.GAVE_UP]
    with time_machine.travel(utcnow() + timedelta(days=2), tick=False):
        assert send_pending_emails() == 0
    assert mailbox.messages == []


def test_550_fails_and_suppresses_the_address(ctx, mailbox) -> None:
    mailbox.script.append("550 5.1.1 no such mailbox")
    message_id = queue("Gone@Example.org").id
    commit()
    failed = row(message_id)
    assert failed.status is EmailStatus.FAILED
    assert [(a.outcome, a.smtp_code) for a in attempts(message_id)] == [
        (AttemptOutcome.REFUSED, 550)
    ]
    entry = db.session.scalar(select(Suppression))
    assert (entry.address_hash, entry.reason) == (
        address_hash("gone@example.org"),
        SuppressionReason.BOUNCED,
    )
    # Optional mail to it now stops before the server; receipts still go.
    later = queue("gone@example.org", key="test:2", suppressible=True).id
    receipt = queue("gone@example.org", key="test:3").id
    commit()
    assert row(later).status is EmailStatus.SUPPRESSED
    assert [a.outcome for a in attempts(later)] == [AttemptOutcome.SUPPRESSED]
    assert row(receipt).status is EmailStatus.SENT
    assert len(mailbox.messages) == 1


def test_other_permanent_refusals_do_not_suppress(ctx, mailbox) -> None:
    mailbox.script.append("554 5.7.1 message rejected as spam")
    message_id = queue().id
    commit()
    assert row(message_id).status is EmailStatus.FAILED
    assert db.session.scalar(select(Suppression)) is None


def test_unsubscribe_between_queueing_and_sending_wins(ctx, mailbox, use_smtp) -> None:
    message_id = queue(suppressible=True, send_after_commit=False).id
    commit()
    suppress(address_hash(ADDRESS), SuppressionReason.UNSUBSCRIBED)
    commit()
    assert deliver_many([message_id]) == {message_id: EmailStatus.SUPPRESSED}
    assert mailbox.messages == []


def test_a_hanging_server_times_out_and_is_retried(ctx, use_smtp) -> None:
    peer = HangingPeer()
    with serve(peer) as url:
        use_smtp(url, timeout=0.5)
        message_id = queue().id
        started = time.monotonic()
        commit()
        took = time.monotonic() - started
    assert peer.data_started.is_set()
    assert took < 5
    hung = row(message_id)
    assert (hung.status, hung.attempts) == (EmailStatus.QUEUED, 1)
    assert hung.next_attempt_at is not None
    (attempt,) = attempts(message_id)
    assert attempt.outcome is AttemptOutcome.RETRY
    assert "timed out" in (attempt.detail or "")


def test_a_refused_connection_is_retried(ctx, use_smtp) -> None:
    use_smtp(f"smtp://127.0.0.1:{free_port()}", timeout=1)
    message_id = queue().id
    commit()
    refused = row(message_id)
    assert refused.status is EmailStatus.QUEUED
    assert attempts(message_id)[0].outcome is AttemptOutcome.RETRY


def test_line_breaks_in_names_and_headers_inject_nothing(ctx, use_smtp) -> None:
    peer = RecordingPeer()
    with serve(peer) as url:
        use_smtp(url)
        queue(
            name="Ada\r\nBcc: victim@example.org\r\n\r\nHello",
            headers={
                "List-Unsubscribe": "<http://127.0.0.1/u>\r\nBcc: victim@example.org",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click\nX-Evil: 1",
            },
        )
        commit()
    ((recipients, raw),) = peer.envelopes
    assert recipients == [ADDRESS]
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [
        line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line[:1] not in b" \t"
    ]
    assert b"bcc" not in names
    assert b"x-evil" not in names
    (message,) = peer.parsed()
    assert message["Bcc"] is None
    assert message["To"].addresses[0].addr_spec == ADDRESS
    assert message["To"].addresses[0].display_name == "Ada Bcc: victim@example.org Hello"
    # Long headers are sent as one line, never as RFC 2047 encoded words.
    assert b"List-Unsubscribe: <http://127.0.0.1/u> Bcc: victim@example.org\r\n" in head


@pytest.mark.parametrize(
    ("to", "headers"),
    [
        ("reader@example.org\r\nBcc: victim@example.org", {}),
        (ADDRESS, {"Bcc\r\nX": "victim@example.org"}),
        (ADDRESS, {"Bcc": "victim@example.org"}),
    ],
)
def test_what_cannot_be_made_safe_is_not_sent(
    ctx, use_smtp, to: str, headers: dict[str, str]
) -> None:
    peer = RecordingPeer()
    with serve(peer) as url:
        use_smtp(url)
        message_id = queue(to, headers=headers).id
        commit()
    assert peer.envelopes == []
    assert row(message_id).status is EmailStatus.FAILED
    assert attempts(message_id)[0].outcome is AttemptOutcome.REFUSED


def test_a_batch_uses_one_connection(ctx, use_smtp) -> None:
    peer = RecordingPeer()
    with serve(peer) as url:
        use_smtp(url)
        ids = [
            queue(f"r{n}@example.org", key=f"test:{n}", send_after_commit=False).id
            for n in range(5)
        ]
        commit()
        assert set(deliver_many(ids).values()) == {EmailStatus.SENT}
        assert deliver_many(ids) == {}  # a second call sends nothing
    assert peer.connections == 1
    assert sorted(r[0] for r, _ in peer.envelopes) == sorted(f"r{n}@example.org" for n in range(5))


def test_sends_left_behind_by_a_dead_worker_are_picked_up(ctx, mailbox) -> None:
    stuck = queue(key="test:stuck", send_after_commit=False)
    recent = queue(key="test:recent", send_after_commit=False)
    orphan = queue(key="test:orphan", send_after_commit=False)
    fresh = queue(key="test:fresh", send_after_commit=False)
    now = utcnow()
    stuck.status, stuck.claimed_at, stuck.attempts = (
        EmailStatus.SENDING,
        now - timedelta(minutes=11),
        1,
    )
    recent.status, recent.claimed_at, recent.attempts = (
        EmailStatus.SENDING,
        now - timedelta(minutes=5),
        1,
    )
    orphan.created_at = now - timedelta(minutes=3)  # queued, but its send task never ran
    commit()
    assert send_pending_emails() == 2
    assert row(stuck.id).status is EmailStatus.SENT
    assert row(orphan.id).status is EmailStatus.SENT
    assert row(recent.id).status is EmailStatus.SENDING
    assert row(fresh.id).status is EmailStatus.QUEUED
    assert len(mailbox.messages) == 2


def test_claims_not_sent_in_time_are_released(ctx, mailbox, monkeypatch) -> None:
    from donations.mail import sender

    ids = [
        queue(f"slow{n}@example.org", key=f"test:{n}", send_after_commit=False).id for n in range(3)
    ]
    commit()
    monkeypatch.setattr(sender, "HOLD_CLAIMS", timedelta(0))
    assert deliver_many(ids) == {}
    released = [row(i) for i in ids]
    assert {(r.status, r.attempts, r.claimed_at) for r in released} == {
        (EmailStatus.QUEUED, 0, None)
    }
    assert attempts(ids[0]) == []
    monkeypatch.undo()
    assert send_pending_emails() == 3
    assert len(mailbox.messages) == 3
