"""Unsubscribing: RFC 8058 one-click, the confirmation page, and bad links."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from donations.db import commit, db
from donations.mail.models import Suppression, SuppressionReason
from donations.mail.suppression import address_hash
from donations.reminders.models import ReminderStatus, SkipReason
from donations.reminders.services import unsubscribe_token
from tests.factories import reminder
from tests.reminders.test_views import csrf_token, signup_form

EMAIL = "reader@example.org"


def unsubscribe_path(email: str = EMAIL) -> str:
    return f"/reminders/unsubscribe/{unsubscribe_token(address_hash(email))}"


@pytest.fixture
def pending(ctx):
    row = reminder(EMAIL, due_at=None)
    commit()
    return row


def suppressions() -> list[Suppression]:
    return list(db.session.scalars(select(Suppression)))


def test_one_click_post_works_without_cookies_or_csrf(app: Flask, pending) -> None:
    fresh = app.test_client(use_cookies=False)
    reply = fresh.post(unsubscribe_path(), data={"List-Unsubscribe": "One-Click"})
    assert reply.status_code == 200
    assert "You are unsubscribed" in reply.text
    db.session.refresh(pending)
    assert (pending.status, pending.skip_reason) == (
        ReminderStatus.CANCELED,
        SkipReason.UNSUBSCRIBED,
    )
    (entry,) = suppressions()
    assert (entry.address_hash, entry.reason) == (
        address_hash(EMAIL),
        SuppressionReason.UNSUBSCRIBED,
    )
    # A replay (a second click, an old email) is still a 200 and changes nothing more.
    replay = fresh.post(unsubscribe_path(), data={"List-Unsubscribe": "One-Click"})
    assert replay.status_code == 200
    assert "unsubscribed" in replay.text
    assert len(suppressions()) == 1


def test_get_shows_a_question_and_changes_nothing(client, pending) -> None:
    page = client.get(unsubscribe_path())
    assert page.status_code == 200
    assert 'id="unsubscribe-form"' in page.text
    assert 'name="csrf_token"' in page.text
    db.session.refresh(pending)
    assert pending.status is ReminderStatus.PENDING
    assert suppressions() == []


def test_confirmation_button_unsubscribes(client, pending) -> None:
    page = client.get(unsubscribe_path())
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action
    done = client.post(action.group(1), data={"csrf_token": csrf_token(page.text)})
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    db.session.refresh(pending)
    assert pending.status is ReminderStatus.CANCELED
    again = client.get(unsubscribe_path())
    assert "already unsubscribed" in again.text


def test_confirmation_button_needs_its_csrf_token(client, pending) -> None:
    reply = client.post(unsubscribe_path() + "/confirm", data={})
    assert reply.status_code == 400
    db.session.refresh(pending)
    assert pending.status is ReminderStatus.PENDING
    assert suppressions() == []


def test_one_click_post_needs_the_rfc_8058_body(app: Flask, pending) -> None:
    fresh = app.test_client(use_cookies=False)
    reply = fresh.post(unsubscribe_path(), data={})
    assert reply.status_code == 400
    assert "This link does not work" in reply.text
    db.session.refresh(pending)
    assert pending.status is ReminderStatus.PENDING


@pytest.mark.parametrize(
    "mangle",
    [
        # signature changed (not its last character: base64 padding bits may not count)
        lambda t: t[:-3] + ("A" if t[-3] != "A" else "B") + t[-2:],
        lambda t: "x" + t[1:],  # payload changed
        lambda t: t.rsplit(".", 1)[0],  # signature dropped
        lambda t: "not-a-token",
        lambda t: t * 5,  # far too long
    ],
)
def test_tampered_token_gets_a_clear_page(app: Flask, client, pending, mangle) -> None:
    token = unsubscribe_token(address_hash(EMAIL))
    path = f"/reminders/unsubscribe/{mangle(token)}"
    page = client.get(path)
    assert page.status_code == 400
    assert "This link does not work" in page.text
    post = app.test_client(use_cookies=False).post(path, data={"List-Unsubscribe": "One-Click"})
    assert post.status_code == 400
    assert "This link does not work" in post.text
    db.session.refresh(pending)
    assert pending.status is ReminderStatus.PENDING
    assert suppressions() == []


def test_token_for_another_purpose_is_refused(client, ctx) -> None:
    from donations.reminders.services import link_token

    page = client.get(f"/reminders/unsubscribe/{link_token(1)}")
    assert page.status_code == 400
    assert "This link does not work" in page.text
    assert suppressions() == []


def test_the_link_in_the_confirmation_email_unsubscribes(app: Flask, client, ctx, mailbox) -> None:
    client.post("/reminders/new", data=signup_form(client))
    (message,) = mailbox.wait_for(1)
    path = urlsplit(message["List-Unsubscribe"].strip("<>")).path
    fresh = app.test_client(use_cookies=False)
    reply = fresh.post(path, data={"List-Unsubscribe": "One-Click"})
    assert reply.status_code == 200
    assert "You are unsubscribed" in reply.text
    (entry,) = suppressions()
    assert entry.address_hash == address_hash("reader@example.org")
