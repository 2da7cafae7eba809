"""A stranger cannot undo a suppression through "Remind me later" (issue 11 item 2).

Erased and bounced addresses are never lifted from the public form; an
unsubscribe is lifted only when the address's owner confirms the double
opt-in email (real SMTP, the aiosmtpd fixture). The page the form answers
with is the same whatever the address's history.
"""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import func, select

from donations.db import commit, db
from donations.mail.models import EmailMessage, SuppressionReason
from donations.mail.suppression import address_hash, suppress, suppression_for
from donations.reminders.models import Reminder, ReminderStatus, SkipReason
from donations.reminders.services import opt_in_token
from donations.reminders.tasks import send_due_reminders
from donations.supporters.models import Consent, ConsentStatus, ConsentTopic
from tests.reminders.test_views import csrf_token, signup_form

ADDRESS = "gone@example.org"


def suppressed(reason: SuppressionReason) -> None:
    suppress(address_hash(ADDRESS), reason)
    commit()


def sign_up(client, lang: str = "en"):
    client.get(f"/support?lang={lang}")
    done = client.post("/reminders/new", data=signup_form(client, email=ADDRESS.upper()))
    assert done.status_code == 303
    return client.get(done.headers["Location"])


def reason_now() -> SuppressionReason | None:
    db.session.expire_all()
    entry = suppression_for(address_hash(ADDRESS))
    return entry.reason if entry is not None else None


def page_text(html: str) -> str:
    main = re.search(r"<main.*?</main>", html, re.S)
    return main.group(0) if main else html


@pytest.mark.parametrize("reason", [SuppressionReason.ERASED, SuppressionReason.BOUNCED])
def test_erased_and_bounced_addresses_are_never_lifted(client, ctx, mailbox, reason) -> None:
    suppressed(reason)
    page = sign_up(client)
    fresh = sign_up_fresh(client)
    assert page.status_code == 200
    # The same page as for an address we know nothing about: nothing is revealed.
    assert page_text(page.text).replace(ADDRESS.upper(), "X") == page_text(fresh).replace(
        "FRESH@EXAMPLE.ORG", "X"
    )
    assert reason_now() is reason
    # Nothing stored for the address, nothing sent to it.
    assert (
        db.session.scalar(
            select(func.count()).select_from(Reminder).where(Reminder.email_key == ADDRESS)
        )
        == 0
    )
    time.sleep(0.3)
    assert all(m["To"].addresses[0].addr_spec != ADDRESS.upper() for m in mailbox.messages)
    assert not db.session.scalar(
        select(func.count())
        .select_from(EmailMessage)
        .where(func.lower(EmailMessage.to_address) == ADDRESS)
    )


def sign_up_fresh(client) -> str:
    done = client.post("/reminders/new", data=signup_form(client, email="FRESH@EXAMPLE.ORG"))
    return str(client.get(done.headers["Location"]).text)


def opt_in_link(mailbox) -> str:
    (message,) = [
        m for m in mailbox.wait_for(1) if m["To"].addresses[0].addr_spec == ADDRESS.upper()
    ]
    body = message.get_body(("plain",)).get_content()
    link = re.search(r"http://127\.0\.0\.1:\d+(/reminders/again/[\w.-]+)", body)
    assert link, body
    assert "List-Unsubscribe" not in message  # a question, not a mailing
    return link.group(1)


def test_an_unsubscribe_is_lifted_only_by_the_owners_click(client, ctx, mailbox) -> None:
    suppressed(SuppressionReason.UNSUBSCRIBED)
    page = sign_up(client)
    assert page.status_code == 200
    assert reason_now() is SuppressionReason.UNSUBSCRIBED
    (reminder,) = db.session.scalars(select(Reminder)).all()
    assert reminder.status is ReminderStatus.PENDING
    consent = db.session.scalar(select(Consent))
    assert consent is not None
    assert (consent.topic, consent.status, consent.source) == (
        ConsentTopic.REMINDERS,
        ConsentStatus.PENDING,
        "reminder_form",
    )

    link = opt_in_link(mailbox)
    # Opening the link (a mail scanner does) only asks.
    opened = client.get(link)
    assert opened.status_code == 200
    assert reason_now() is SuppressionReason.UNSUBSCRIBED
    # A changed token changes nothing.
    assert client.post(link + "x", data={"csrf_token": csrf_token(opened.text)}).status_code == 400
    # A POST without the page's CSRF token changes nothing.
    assert client.post(link, data={}).status_code == 400
    assert reason_now() is SuppressionReason.UNSUBSCRIBED

    confirmed = client.post(link, data={"csrf_token": csrf_token(opened.text)})
    assert confirmed.status_code == 200
    assert 'id="opt-in-state"' in confirmed.text
    assert reason_now() is None
    db.session.expire_all()
    assert (consent.status, consent.proof) == (ConsentStatus.APPLIED, "email_link")
    # A second click is a no-op.
    assert client.post(link, data={"csrf_token": csrf_token(opened.text)}).status_code == 200


def test_an_unconfirmed_signup_is_skipped_when_due(client, ctx, mailbox) -> None:
    suppressed(SuppressionReason.UNSUBSCRIBED)
    sign_up(client)
    opt_in_link(mailbox)
    reminder = db.session.scalar(select(Reminder))
    assert reminder is not None
    reminder.due_at = reminder.created_at
    commit()
    result = send_due_reminders()
    assert result.sent == 0
    assert result.skipped[SkipReason.UNSUBSCRIBED] == 1


def test_the_link_cannot_lift_an_erasure_made_since(client, ctx, mailbox) -> None:
    suppressed(SuppressionReason.UNSUBSCRIBED)
    sign_up(client)
    link = opt_in_link(mailbox)
    suppressed(SuppressionReason.ERASED)
    opened = client.get(link)
    client.post(link, data={"csrf_token": csrf_token(opened.text)})
    assert reason_now() is SuppressionReason.ERASED


def test_unsubscribing_again_spends_the_link(client, ctx, mailbox) -> None:
    suppressed(SuppressionReason.UNSUBSCRIBED)
    sign_up(client)
    link = opt_in_link(mailbox)
    consent = db.session.scalar(select(Consent))
    assert consent is not None
    from donations.reminders.services import unsubscribe

    token = csrf_token(client.get(link).text)
    unsubscribe(address_hash(ADDRESS))  # the owner, from an earlier email
    commit()
    assert client.get(link).status_code == 400
    assert client.post(link, data={"csrf_token": token}).status_code == 400
    assert reason_now() is SuppressionReason.UNSUBSCRIBED
    withdrawals = db.session.scalars(select(Consent).where(Consent.granted.is_(False))).all()
    assert [(w.source, w.status) for w in withdrawals] == [
        ("unsubscribe_link", ConsentStatus.APPLIED)
    ]


def test_one_opt_in_email_per_address_and_day(client, ctx, mailbox) -> None:
    suppressed(SuppressionReason.UNSUBSCRIBED)
    for months in ("1", "3", "6"):
        page = client.post("/reminders/new", data=signup_form(client, email=ADDRESS, months=months))
        assert page.status_code == 303, page.text
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.template == "reminder_opt_in")
        )
        == 1
    )


def test_the_opt_in_email_and_page_in_russian(client, ctx, mailbox) -> None:
    suppressed(SuppressionReason.UNSUBSCRIBED)
    sign_up(client, lang="ru")
    (message,) = mailbox.wait_for(1)
    assert re.search("[а-я]", message["Subject"])
    link = re.search(r"/reminders/again/[\w.-]+", message.get_body(("plain",)).get_content())
    assert link
    page = client.get(link.group(0) + "?lang=ru")
    assert "Да, присылайте мне напоминания снова" in page.text


def test_a_forged_or_expired_link_is_refused(client, ctx, app) -> None:
    assert client.get("/reminders/again/nonsense").status_code == 400
    assert client.get("/reminders/again/" + opt_in_token(12345)).status_code == 400
