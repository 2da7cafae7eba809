"""Due reminders: sent once, on time, and never after someone has given."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from donations.db import commit, db, utcnow
from donations.mail.models import EmailMessage, EmailStatus, SuppressionReason
from donations.mail.suppression import address_hash, suppress
from donations.reminders import services
from donations.reminders.models import Reminder, ReminderStatus, SkipReason
from donations.reminders.services import forget_address, schedule_reminder
from donations.reminders.tasks import send_due_reminders
from donations.supporters.models import Donation, DonationStatus, Frequency
from tests import factories
from tests.factories import reminder
from tests.reminders.test_views import signup_form


def reminders() -> list[Reminder]:
    db.session.expire_all()
    return list(db.session.scalars(select(Reminder).order_by(Reminder.id)))


def plain(message) -> str:
    return str(message.get_body(("plain",)).get_content())


def test_from_signup_to_due_with_time_travel(client, ctx, mailbox) -> None:
    signed_up = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
    with time_machine.travel(signed_up, tick=False):
        assert client.post("/reminders/new", data=signup_form(client)).status_code == 303
    assert len(mailbox.wait_for(1)) == 1  # the confirmation
    mailbox.messages.clear()
    (row,) = reminders()
    assert row.due_at == datetime(2027, 2, 28, 9, 30, tzinfo=UTC)  # "next month", clamped

    for moment in (signed_up + timedelta(days=1), row.due_at - timedelta(minutes=1)):
        with time_machine.travel(moment, tick=False):
            assert send_due_reminders().claimed == 0
    assert mailbox.messages == []

    with time_machine.travel(row.due_at + timedelta(minutes=1), tick=False):
        result = send_due_reminders()
    assert (result.claimed, result.sent) == (1, 1)
    (message,) = mailbox.wait_for(1)
    assert message["To"].addresses[0].addr_spec == "Reader@Example.org"
    assert message["Subject"] == "Your reminder: support independent journalism"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(
        r"<http://127\.0\.0\.1:\d+/reminders/unsubscribe/[\w.-]+>", message["List-Unsubscribe"]
    )
    text = plain(message)
    assert "On January 31, 2027 you asked us to remind you" in text
    assert "You were looking at giving €20.00 every month." in text
    link = re.search(r"(http://\S+/support\?\S+)", text)
    assert link
    query = parse_qs(urlsplit(link.group(1)).query)
    assert (query["frequency"], query["currency"], query["amount"]) == (
        ["monthly"],
        ["EUR"],
        ["20.00"],
    )
    assert query["reminder"]

    (row,) = reminders()
    assert row.status is ReminderStatus.SENT
    assert row.sent_at == row.due_at + timedelta(minutes=1)
    # Later runs, even much later, never send it again.
    for later in (timedelta(minutes=2), timedelta(days=40)):
        with time_machine.travel(row.due_at + later, tick=False):
            assert send_due_reminders().claimed == 0
    assert len(mailbox.messages) == 1
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.template == "reminder")
        )
        == 1
    )


def test_reminder_email_is_in_the_readers_language(ctx, mailbox) -> None:
    reminder("ru@example.org", locale="ru", currency="EUR", amount=2000)
    commit()
    send_due_reminders()
    (message,) = mailbox.wait_for(1)
    text = plain(message)
    assert "напомнить" in text.lower()
    assert "Your reminder" not in message["Subject"]


def test_skipped_when_the_person_gave_since(ctx, mailbox) -> None:
    row = reminder("giver@example.org")
    donor = factories.supporter("Giver@Example.org")
    factories.donation(donor, created_at=row.created_at + timedelta(days=3))
    commit()
    result = send_due_reminders()
    assert (result.sent, dict(result.skipped)) == (0, {SkipReason.GAVE_SINCE: 1})
    db.session.refresh(row)
    assert (row.status, row.skip_reason) == (ReminderStatus.SKIPPED, SkipReason.GAVE_SINCE)
    assert mailbox.messages == []


def test_a_gift_before_asking_or_a_failed_one_does_not_count(ctx, mailbox) -> None:
    row = reminder("earlier@example.org")
    donor = factories.supporter("earlier@example.org")
    factories.donation(donor, created_at=row.created_at - timedelta(days=3))
    factories.donation(
        donor, created_at=row.created_at + timedelta(days=3), status=DonationStatus.FAILED
    )
    commit()
    assert send_due_reminders().sent == 1
    assert len(mailbox.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("reason", "skip"),
    [
        (SuppressionReason.UNSUBSCRIBED, SkipReason.UNSUBSCRIBED),
        (SuppressionReason.BOUNCED, SkipReason.BOUNCED),
        (SuppressionReason.ERASED, SkipReason.ERASED),
    ],
)
def test_skipped_when_the_address_is_suppressed(ctx, mailbox, reason, skip) -> None:
    # Suppressed after the reminder was claimed-for (no cancel ran): the send-time check holds.
    row = reminder("Quiet@Example.org")
    suppress(address_hash(" quiet@example.org "), reason)
    commit()
    result = send_due_reminders()
    assert dict(result.skipped) == {skip: 1}
    db.session.refresh(row)
    assert (row.status, row.skip_reason) == (ReminderStatus.SKIPPED, skip)
    assert mailbox.messages == []


def test_erasure_wipes_the_address_and_the_suppression_outlives_it(ctx, mailbox) -> None:
    row = reminder("erase.me@example.org")
    sent = reminder(
        "erase.me@example.org", status=ReminderStatus.SENT, due_at=utcnow() - timedelta(days=90)
    )
    other = reminder("keep@example.org")
    commit()
    assert forget_address("Erase.Me@example.org") == 2
    commit()
    for wiped in (row, sent):
        db.session.refresh(wiped)
        assert (wiped.email, wiped.email_key, wiped.address_hash, wiped.source) == (
            None,
            None,
            None,
            None,
        )
    result = send_due_reminders()
    assert dict(result.skipped) == {SkipReason.ERASED: 1}
    assert result.sent == 1
    (message,) = mailbox.wait_for(1)
    assert message["To"].addresses[0].addr_spec == other.email
    # Nothing but the hash is left, and it still says no.
    assert (
        services.suppression_for(address_hash("erase.me@example.org")).reason
        is SuppressionReason.ERASED
    )


def test_at_most_one_pending_reminder_per_person_and_period(ctx, mailbox) -> None:
    now = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
    first = schedule_reminder(email="Twice@example.org", months=1, locale="en", now=now)
    again = schedule_reminder(
        email="twice@example.org", months=1, locale="en", now=now + timedelta(days=2)
    )
    assert again.id == first.id
    later = schedule_reminder(email="twice@example.org", months=3, locale="en", now=now)
    assert later.id != first.id
    commit()
    # The database refuses a second pending row for the same period, whatever the code does.
    with pytest.raises(IntegrityError):
        reminder("twice@example.org", due_at=first.due_at + timedelta(days=1))
    db.session.rollback()
    # Once sent, the period is free again.
    first.move_to(ReminderStatus.SENT)
    commit()
    reminder("twice@example.org", due_at=first.due_at)
    commit()


def test_asking_again_does_not_lift_an_unsubscribe_by_itself(ctx) -> None:
    # Lifted only by the owner's click on the double opt-in link (tests/reminders/test_claims.py).
    suppress(address_hash("back@example.org"), SuppressionReason.UNSUBSCRIBED)
    schedule_reminder(email="back@example.org", months=1, locale="en")
    commit()
    entry = services.suppression_for(address_hash("back@example.org"))
    assert entry is not None
    assert entry.reason is SuppressionReason.UNSUBSCRIBED


def test_a_dispatcher_dying_mid_batch_loses_nothing(ctx, mailbox, monkeypatch) -> None:
    for n in range(5):
        reminder(f"reader{n}@example.org")
    commit()
    real_ask_url = services.ask_url
    calls = {"n": 0}

    def dies_on_the_third(row: Reminder) -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            raise SystemExit("worker killed")  # not an Exception: nothing catches it
        return real_ask_url(row)

    monkeypatch.setattr(services, "ask_url", dies_on_the_third)
    with pytest.raises(SystemExit):
        send_due_reminders()
    db.session.rollback()
    assert {r.status for r in reminders()} == {ReminderStatus.PENDING}
    assert db.session.scalar(select(func.count()).select_from(EmailMessage)) == 0
    monkeypatch.setattr(services, "ask_url", real_ask_url)
    assert send_due_reminders().sent == 5
    assert len(mailbox.wait_for(5)) == 5


def test_batches_are_sent_over_one_connection_each(ctx, mailbox) -> None:
    for n in range(7):
        reminder(f"batch{n}@example.org")
    commit()
    result = send_due_reminders(batch_size=3)
    assert (result.claimed, result.sent) == (7, 7)
    assert len(mailbox.wait_for(7)) == 7
    statuses = db.session.scalars(select(EmailMessage.status)).all()
    assert set(statuses) == {EmailStatus.SENT}


def test_a_gift_through_the_reminder_link_records_the_reminder(client, ctx, mailbox) -> None:
    row = reminder("convert@example.org", frequency=Frequency.ONCE, currency="USD", amount=1500)
    commit()
    send_due_reminders()
    (message,) = mailbox.wait_for(1)
    link = urlsplit(re.search(r"(http://\S+/support\?\S+)", plain(message)).group(1))
    ask = client.get(f"{link.path}?{link.query}")
    assert ask.status_code == 200
    assert re.search(r'id="frequency-once" value="once"\s+checked', ask.text)
    token = parse_qs(link.query)["reminder"][0]
    assert f'name="reminder" value="{token}"' in ask.text
    details = client.get(
        f"/support/checkout?frequency=once&currency=USD&amount=15.00&reminder={token}"
    )
    assert details.status_code == 200
    hidden = dict(re.findall(r'name="(\w+)" type="hidden" value="([^"]*)"', details.text))
    assert hidden["reminder"] == token
    form = {
        **{k: html.unescape(v) for k, v in hidden.items()},
        "email": "convert@example.org",
        "name": "Con Vert",
        "country": "GB",
    }
    started = client.post("/support/checkout", data=form)
    assert started.status_code == 303, started.text
    donation = db.session.scalar(select(Donation))
    assert donation.reminder_id == row.id


def test_a_forged_reminder_link_records_nothing(client, ctx) -> None:
    row = reminder("forge@example.org", status=ReminderStatus.SENT)
    commit()
    forged = services.link_token(row.id)[:-2] + "xx"
    details = client.get(
        f"/support/checkout?frequency=once&currency=USD&amount=15.00&reminder={forged}"
    )
    hidden = dict(re.findall(r'name="(\w+)" type="hidden" value="([^"]*)"', details.text))
    form = {**{k: html.unescape(v) for k, v in hidden.items()}, "email": "forge@example.org"}
    assert client.post("/support/checkout", data=form).status_code == 303
    assert db.session.scalar(select(Donation.reminder_id)) is None
    # A genuine link to a reminder never sent (still pending) counts for nothing either.
    assert services.reminder_from_link(services.link_token(row.id)) is not None
    pending = reminder("pending@example.org", due_at=utcnow() + timedelta(days=3))
    commit()
    assert services.reminder_from_link(services.link_token(pending.id)) is None


def test_the_cli_sends_what_is_due(app: Flask, ctx, mailbox) -> None:
    reminder("cli@example.org")
    reminder("later@example.org", due_at=utcnow() + timedelta(days=1))
    commit()
    result = app.test_cli_runner().invoke(args=["reminders", "send-due"])
    assert result.exit_code == 0, result.output
    assert "Reminders due: 1; sent: 1; skipped: 0." in result.output
    (message,) = mailbox.wait_for(1)
    assert message["To"].addresses[0].addr_spec == "cli@example.org"


@pytest.mark.sweep  # the scheduler is a thread with its own session
def test_the_embedded_scheduler_sends_due_reminders_by_itself(app: Flask, ctx, mailbox) -> None:
    from donations.tasks import EmbeddedScheduler

    reminder("embedded@example.org")
    commit()
    scheduler = EmbeddedScheduler(app, interval=0.2).start()
    try:
        (message,) = mailbox.wait_for(1)
    finally:
        scheduler.stop()
    assert message["To"].addresses[0].addr_spec == "embedded@example.org"
    assert [r.status for r in reminders()] == [ReminderStatus.SENT]
