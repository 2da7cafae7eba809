"""The signup from the ask, its confirmation page and email."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from donations.db import db, utcnow
from donations.mail.models import EmailMessage
from donations.reminders.models import Reminder, ReminderStatus
from donations.reminders.services import add_months
from donations.supporters.models import Frequency, Supporter


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def signup_form(client, query: str = "frequency=monthly&currency=EUR&amount=20", **fields: str):
    page = client.get(f"/reminders/new?{query}")
    assert page.status_code == 200, page.text
    hidden = dict(
        re.findall(
            r'name="(frequency|currency|amount|source)" type="hidden" value="([^"]*)"', page.text
        )
    )
    return {
        "csrf_token": csrf_token(page.text),
        "email": "Reader@Example.org",
        "months": "1",
        **{k: html.unescape(v) for k, v in hidden.items()},
        **fields,
    }


def reminders() -> list[Reminder]:
    return list(db.session.scalars(select(Reminder).order_by(Reminder.id)))


def test_the_ask_links_to_the_signup_with_what_the_reader_looks_at(client) -> None:
    page = client.get("/support?frequency=once&currency=EUR&amount=50").text
    link = re.search(r'<a href="([^"]+)" id="remind-link">Remind me later</a>', page)
    assert link
    url = urlsplit(html.unescape(link.group(1)))
    assert url.path == "/reminders/new"
    assert parse_qs(url.query) == {"frequency": ["once"], "currency": ["EUR"], "amount": ["50.00"]}


def test_the_signup_keeps_the_page_that_sent_the_reader(client) -> None:
    page = client.get("/reminders/new", headers={"Referer": "https://news.example/story"}).text
    assert 'name="source" type="hidden" value="https://news.example/story"' in page
    # The ask (our own page) is not a source worth keeping.
    page = client.get("/reminders/new", headers={"Referer": "http://localhost/support"}).text
    assert 'name="source" type="hidden" value=""' in page


def test_an_amount_that_is_not_a_preset_is_prefilled_as_typed(client) -> None:
    page = client.get("/support?frequency=once&currency=USD&amount=15").text
    assert re.search(r'id="custom_amount"[^>]*value="15.00"', page)
    preset = client.get("/support?frequency=once&currency=USD&amount=25").text
    assert re.search(r'value="25.00"\s+checked', preset)
    assert not re.search(r'id="custom_amount"[^>]*value=', preset)


def test_signup_page_offers_when_and_says_what_we_do(client) -> None:
    page = client.get("/reminders/new?frequency=once&currency=EUR&amount=50")
    assert page.status_code == 200
    text = page.text
    for label in ("In a month", "In 3 months", "In 6 months", "Remind me", "unsubscribe"):
        assert label in text
    assert re.search(r'id="months-0"[^>]*value="1"[^>]*checked|checked[^>]*id="months-0"', text)
    assert "password" in text  # "You do not need an account or a password"
    assert "€50.00 once" in text


def test_signup_schedules_a_reminder_and_confirms_it(client, ctx, mailbox) -> None:
    before = utcnow()
    form = signup_form(client, source="https://news.example/story")
    done = client.post("/reminders/new", data=form)
    assert done.status_code == 303
    page = client.get(done.headers["Location"])
    assert page.status_code == 200

    (row,) = reminders()
    assert row.status is ReminderStatus.PENDING
    assert (row.email, row.email_key, row.locale) == (
        "Reader@Example.org",
        "reader@example.org",
        "en",
    )
    assert (row.frequency, row.currency, row.amount) == (Frequency.MONTHLY, "EUR", 2000)
    assert row.source == "https://news.example/story"
    assert add_months(before, 1) <= row.due_at <= add_months(utcnow(), 1)
    # A prospect in the ledger: no gift, one address.
    assert db.session.scalar(select(Supporter.email_key)) == "reader@example.org"

    due_text = f"{row.due_at:%B} {row.due_at.day}, {row.due_at.year}"
    assert f"We will email Reader@Example.org on {due_text}." in page.text

    (message,) = mailbox.wait_for(1)
    assert message["To"].addresses[0].addr_spec == "Reader@Example.org"
    assert message["Subject"] == f"We will remind you on {due_text}"
    unsubscribe = message["List-Unsubscribe"]
    assert re.fullmatch(r"<http://127\.0\.0\.1:\d+/reminders/unsubscribe/[\w.-]+>", unsubscribe)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe.strip("<>") in message.get_body(("plain",)).get_content()


def test_one_pending_reminder_per_person_and_period(client, ctx, mailbox) -> None:
    client.post("/reminders/new", data=signup_form(client))
    # The same request again (another tab, other case): still one reminder, one confirmation.
    client.post(
        "/reminders/new",
        data=signup_form(
            client, "frequency=once&currency=USD&amount=25", email="reader@example.ORG"
        ),
    )
    (row,) = reminders()
    assert (row.frequency, row.currency, row.amount) == (Frequency.ONCE, "USD", 2500)
    # Another period is another reminder.
    client.post("/reminders/new", data=signup_form(client, months="3"))
    assert [r.months for r in reminders()] == [1, 3]
    assert db.session.scalar(select(func.count()).select_from(EmailMessage)) == 2
    assert len(mailbox.wait_for(2)) == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": ""}, "Enter your email address"),
        ({"email": "not-an-email"}, "Enter an email address like"),
        ({"email": "a@example.org\r\nBcc: victim@example.org"}, "Enter an email address like"),
        ({"months": "2"}, "Not a valid choice"),
        ({"months": ""}, "Choose when we should remind you"),
    ],
)
def test_bad_input_gets_a_message_and_changes_nothing(
    client, ctx, mailbox, fields, message
) -> None:
    page = client.post("/reminders/new", data=signup_form(client, **fields))
    assert page.status_code == 400
    assert message in page.text
    assert reminders() == []
    assert mailbox.messages == []


def test_signup_without_csrf_token_is_refused(client, ctx) -> None:
    form = signup_form(client)
    del form["csrf_token"]
    assert client.post("/reminders/new", data=form).status_code == 400
    assert reminders() == []


@pytest.mark.parametrize(
    "query",
    [
        "frequency=weekly&currency=EUR&amount=20",
        "frequency=once&currency=XXX&amount=20",
        "frequency=once&currency=EUR&amount=-5",
        "frequency=once&currency=EUR&amount=NaN",
        "frequency=once&currency=EUR&amount=1e9",
    ],
)
def test_tampered_prefill_is_dropped_not_refused(client, ctx, query) -> None:
    page = client.post("/reminders/new", data=signup_form(client, query))
    assert page.status_code == 303
    assert page.headers["Location"].endswith("/reminders/scheduled")
    (row,) = reminders()
    assert row.amount is None


def test_a_source_that_is_not_a_web_page_is_not_kept(client, ctx) -> None:
    client.post("/reminders/new", data=signup_form(client, source="javascript:alert(1)"))
    assert reminders()[0].source is None


def test_signup_in_russian(client, ctx, mailbox) -> None:
    client.get("/support?lang=ru")
    page = client.get("/reminders/new?frequency=monthly&currency=EUR&amount=20")
    assert "Напомнить" in page.text
    client.post("/reminders/new", data=signup_form(client))
    assert reminders()[0].locale == "ru"
    (message,) = mailbox.wait_for(1)
    assert "напомним" in message["Subject"].lower()


def test_scheduled_page_without_a_signup_goes_to_the_form(client) -> None:
    page = client.get("/reminders/scheduled")
    assert page.status_code == 303
    assert page.headers["Location"].endswith("/reminders/new")
