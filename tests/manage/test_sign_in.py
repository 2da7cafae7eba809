"""Signing in to /manage: the emailed link (valid, expired, reused, unknown address),
links in our emails, rate limits, sessions and their end."""

from __future__ import annotations

import threading
from datetime import timedelta

import time_machine
from flask import Flask
from kombu import Connection
from sqlalchemy import event, select

from donations.db import db, utcnow
from donations.manage.models import ManageSession, SignInLink
from donations.manage.tasks import send_sign_in_link_task
from donations.staff.models import AuditEntry
from donations.tasks import celery_app
from tests.harness import change_settings
from tests.manage.flows import (
    ask_for_link,
    continue_with,
    csrf_token,
    emailed_link,
    links_in,
    other_browser,
    sign_in,
    supporter,
    text_of,
)

# Where a request without a live session is sent, and where a sign-in lands.
SIGN_IN = "/manage"
ACCOUNT = "/manage/account"


def redirect_of(answer) -> str:
    assert answer.status_code == 303, answer.status_code
    return str(answer.headers["Location"])


def actions(supporter_id: int) -> list[tuple[str, str]]:
    rows = db.session.scalars(
        select(AuditEntry).where(AuditEntry.supporter_id == supporter_id).order_by(AuditEntry.id)
    )
    return [(row.action, str(row.details.get("source"))) for row in rows]


def test_a_valid_link_signs_in_once(client, ctx, mailbox) -> None:
    member = supporter("member@example.org")
    asked = ask_for_link(client, "Member@Example.org")
    assert asked.status_code == 303
    assert asked.headers["Location"].endswith("/manage/sent")
    sent = client.get("/manage/sent").text
    assert "we have sent a sign-in link" in sent

    message = mailbox.wait_for(1)[0]
    assert message["To"].addresses[0].addr_spec == "member@example.org"
    assert message["Subject"] == "Your link to manage your support"
    assert "It works once, for 15 minutes" in text_of(message)
    # The sign-in email carries no other way in.
    assert links_in(message, "/manage/e/") == []
    link = emailed_link(mailbox)

    # Following the link (a mail scanner does) only asks; it spends nothing.
    page = client.get(link)
    assert page.status_code == 200
    assert "member@example.org" in page.text
    assert client.get(link).status_code == 200
    done = client.post(link, data={"csrf_token": csrf_token(page.text)})
    assert redirect_of(done) == ACCOUNT
    account = client.get("/manage/account")
    assert account.status_code == 200
    assert "Signed in as member@example.org." in account.text
    assert account.headers["Cache-Control"] == "no-store"

    db.session.expire_all()
    row = db.session.scalar(select(SignInLink))
    assert row is not None
    assert row.used_at is not None
    session = db.session.scalar(select(ManageSession))
    assert session is not None
    assert session.source == "sign_in_link"
    assert actions(member.id) == [
        ("manage.link_sent", "sign_in_form"),
        ("manage.signed_in", "sign_in_link"),
    ]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "manage.signed_in"))
    assert entry is not None
    assert entry.actor == "supporter (sign-in link)"


def test_a_used_link_signs_no_one_in_again(app: Flask, client, ctx, mailbox) -> None:
    supporter("member@example.org")
    ask_for_link(client, "member@example.org")
    link = emailed_link(mailbox)
    assert redirect_of(continue_with(client, link)) == ACCOUNT

    other = other_browser(app.test_client())
    again = other.get(link)
    assert again.status_code == 410
    assert "This link no longer works" in again.text
    # Nor by posting straight to it (with a valid form token of that browser).
    token = csrf_token(other.get("/manage").text)
    assert other.post(link, data={"csrf_token": token}).status_code == 410
    assert redirect_of(other.get("/manage/account")) == SIGN_IN
    assert db.session.query(ManageSession).count() == 1


def test_an_expired_link_signs_no_one_in(client, ctx, mailbox) -> None:
    supporter("member@example.org")
    ask_for_link(client, "member@example.org")
    link = emailed_link(mailbox)
    with time_machine.travel(utcnow() + timedelta(minutes=16), tick=False):
        page = client.get(link)
    assert page.status_code == 410
    assert "This link no longer works" in page.text
    assert db.session.query(ManageSession).count() == 0


def test_a_forged_or_mangled_link_signs_no_one_in(client, ctx, mailbox) -> None:
    supporter("member@example.org")
    ask_for_link(client, "member@example.org")
    link = emailed_link(mailbox)
    for bad in (
        link[:-2] + ("AA" if not link.endswith("AA") else "BB"),
        "/manage/link/1",
        "/manage/link/" + "x" * 2000,
        "/manage/e/garbage",
    ):
        page = client.get(bad)
        assert page.status_code == 410
        assert "This link no longer works" in page.text
    assert db.session.query(ManageSession).count() == 0


def test_an_unknown_address_gets_the_same_answer_and_no_email(client, ctx, mailbox) -> None:
    supporter("member@example.org")
    known = ask_for_link(client, "member@example.org")
    known_page = client.get("/manage/sent").text
    mailbox.wait_for(1)
    mailbox.messages.clear()

    unknown = ask_for_link(client, "stranger@example.org")
    unknown_page = client.get("/manage/sent").text
    assert redirect_of(unknown) == redirect_of(known) == "/manage/sent"
    assert unknown.headers["Location"] == known.headers["Location"]
    assert unknown_page.replace("stranger@example.org", "X") == known_page.replace(
        "member@example.org", "X"
    )
    assert mailbox.wait_for(1, timeout=1.5) == []
    assert db.session.query(SignInLink).count() == 1  # the known address's only


def test_the_request_does_the_same_work_for_any_address(app: Flask, client, ctx, mailbox) -> None:
    """What the request itself does (SQL, one task queued) does not depend on the address.

    With tasks going to a broker (as with workers in production) the request
    only queues the lookup; the known address's link is sent by the task.
    """
    supporter("member@example.org")
    celery_app.conf.task_always_eager = False
    statements: list[str] = []
    # This request's statements: the session's live server may be recording a
    # late webhook of another test's objects on the same engine meanwhile.
    me = threading.get_ident()

    def log(conn, cursor, statement, *args) -> None:
        if threading.get_ident() == me:
            statements.append(statement)

    try:
        with Connection(celery_app.conf.broker_url) as conn:
            conn.SimpleQueue("celery").clear()
        answers = {}
        for email in ("member@example.org", "nobody@example.org"):
            page = client.get("/manage")
            statements.clear()
            event.listen(db.engine, "before_cursor_execute", log)
            try:
                answer = client.post(
                    "/manage", data={"csrf_token": csrf_token(page.text), "email": email}
                )
            finally:
                event.remove(db.engine, "before_cursor_execute", log)
            answers[email] = (answer.status_code, answer.headers["Location"], list(statements))
        with Connection(celery_app.conf.broker_url) as conn:
            queue = conn.SimpleQueue("celery")
            queued = []
            while len(queued) < 2:
                message = queue.get(timeout=5)
                queued.append((message.headers["task"], message.decode()[0]))
                message.ack()
    finally:
        celery_app.conf.task_always_eager = True
    assert answers["member@example.org"] == answers["nobody@example.org"]
    assert queued == [
        ("manage.send_sign_in_link", ["member@example.org", "en"]),
        ("manage.send_sign_in_link", ["nobody@example.org", "en"]),
    ]
    assert mailbox.messages == []
    for _, args in queued:
        send_sign_in_link_task.run(*args)
    assert [m["To"].addresses[0].addr_spec for m in mailbox.wait_for(1)] == ["member@example.org"]


def test_an_erased_supporter_cannot_sign_in(client, ctx, mailbox) -> None:
    member = supporter("member@example.org")
    member.erased_at = utcnow()
    db.session.commit()
    ask_for_link(client, "member@example.org")
    assert mailbox.wait_for(1, timeout=1.5) == []


def test_links_are_rate_limited_per_address(app: Flask, client, ctx, mailbox) -> None:
    supporter("member@example.org")
    for _ in range(3):
        assert redirect_of(ask_for_link(client, "member@example.org")) == "/manage/sent"
    # A fourth link for the address, from anywhere, waits (default 3 per 10 minutes).
    other = other_browser(app.test_client())
    assert ask_for_link(other, "MEMBER@example.org").status_code == 429
    assert len(mailbox.wait_for(3)) == 3
    # Another address is not held back by it.
    assert redirect_of(ask_for_link(other, "reader@example.org")) == "/manage/sent"


def test_links_are_rate_limited_per_client(app: Flask, client, ctx, monkeypatch) -> None:
    change_settings(monkeypatch, app, manage_sign_in_ip_rate_limit="5 per hour")
    answers = [ask_for_link(client, f"reader{n}@example.org").status_code for n in range(8)]
    assert answers == [303] * 5 + [429] * 3


def test_bad_input_is_refused_with_a_message(client, ctx) -> None:
    token = csrf_token(client.get("/manage").text)
    for bad in ("", "not an address", "a" * 300 + "@example.org"):
        answer = client.post("/manage", data={"csrf_token": token, "email": bad})
        assert answer.status_code == 400
        assert 'class="field-errors"' in answer.text
    assert client.post("/manage", data={"email": "member@example.org"}).status_code == 400


def test_sign_out_ends_the_session(client, ctx, mailbox) -> None:
    member = supporter("member@example.org")
    account = sign_in(client, mailbox, "member@example.org")
    out = client.post("/manage/sign-out", data={"csrf_token": csrf_token(account)})
    assert redirect_of(out) == SIGN_IN
    assert "You have signed out." in client.get("/manage").text
    assert redirect_of(client.get("/manage/account")) == SIGN_IN
    db.session.expire_all()
    row = db.session.scalar(select(ManageSession))
    assert row is not None
    assert row.end_reason == "sign_out"
    assert ("manage.signed_out", "sign_in_link") in actions(member.id)


def test_sign_out_everywhere_ends_every_session(app: Flask, client, ctx, mailbox) -> None:
    supporter("member@example.org")
    phone, laptop = app.test_client(), client
    sign_in(phone, mailbox, "member@example.org")
    account = sign_in(other_browser(laptop), mailbox, "member@example.org")
    assert "You are signed in on 2 devices." in account
    out = laptop.post("/manage/sign-out-everywhere", data={"csrf_token": csrf_token(account)})
    assert redirect_of(out) == SIGN_IN
    assert "You have signed out on every device (2 sessions)." in laptop.get(SIGN_IN).text
    assert redirect_of(phone.get("/manage/account")) == SIGN_IN
    assert redirect_of(laptop.get("/manage/account")) == SIGN_IN
    db.session.expire_all()
    assert {s.end_reason for s in db.session.scalars(select(ManageSession))} == {
        "sign_out_everywhere"
    }


def test_sessions_end_after_idle_time_and_in_any_case(client, ctx, mailbox) -> None:
    supporter("member@example.org")
    sign_in(client, mailbox, "member@example.org")
    with time_machine.travel(utcnow() + timedelta(minutes=21), tick=False):
        assert redirect_of(client.get("/manage/account")) == SIGN_IN
    db.session.expire_all()
    assert db.session.scalar(select(ManageSession.end_reason)) == "idle_timeout"

    sign_in(client, mailbox, "member@example.org")
    start = utcnow()
    for minutes in range(15, 120, 15):  # active all along
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            assert client.get("/manage/account").status_code == 200
    with time_machine.travel(start + timedelta(minutes=121), tick=False):
        assert redirect_of(client.get("/manage/account")) == SIGN_IN
    db.session.expire_all()
    reasons = set(db.session.scalars(select(ManageSession.end_reason)))
    assert reasons == {"idle_timeout", "absolute_timeout"}


def test_forms_need_their_csrf_token(client, ctx, mailbox) -> None:
    supporter("member@example.org")
    sign_in(client, mailbox, "member@example.org")
    for path in ("/manage/sign-out", "/manage/sign-out-everywhere", "/manage/emails/newsletter"):
        assert client.post(path, data={"subscribe": "yes"}).status_code == 400
    assert client.get("/manage/account").status_code == 200  # still signed in
