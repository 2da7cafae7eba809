"""Where a gift, plan or reminder came from, through the checkout and the reminder's link."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from donations.db import commit, db, utcnow
from donations.reminders.models import Reminder
from donations.reminders.tasks import send_due_reminders
from donations.supporters.attribution import Attribution, clean_url
from donations.supporters.models import Donation, RecurringPlan
from tests.reminders.test_tasks import plain

PLACE = "article=budget-vote&campaign=winter&variant=b&source=https%3A%2F%2Fnews.example%2Fbudget"


def hidden_fields(page: str) -> dict[str, str]:
    return {
        k: html.unescape(v)
        for k, v in re.findall(r'name="(\w+)" type="hidden" value="([^"]*)"', page)
    }


def checkout(client, query: str, email: str = "reader@example.org"):
    details = client.get(f"/support/checkout?{query}")
    assert details.status_code == 200, details.text
    form = {**hidden_fields(details.text), "email": email, "name": "Ada", "country": "GB"}
    started = client.post("/support/checkout", data=form)
    assert started.status_code == 303, started.text
    return started


@pytest.mark.parametrize(("frequency", "model"), [("once", Donation), ("monthly", RecurringPlan)])
def test_a_gift_and_a_plan_record_their_article_campaign_and_variant(
    client, ctx, frequency, model
) -> None:
    checkout(client, f"frequency={frequency}&currency=USD&amount=10&{PLACE}")
    row = db.session.scalar(select(model))
    assert (row.article, row.campaign, row.variant) == ("budget-vote", "winter", "b")
    assert row.source == "https://news.example/budget"


def test_junk_attribution_is_dropped_not_refused(client, ctx) -> None:
    long = "x" * 301
    checkout(
        client,
        f"frequency=once&currency=USD&amount=10&article={long}&campaign={'c' * 101}&variant=ok"
        "&source=javascript%3Aalert(1)",
    )
    row = db.session.scalar(select(Donation))
    assert (row.article, row.campaign, row.variant, row.source) == (None, None, "ok", None)


def test_a_reminder_carries_its_article_to_the_gift_through_its_link(client, ctx, mailbox) -> None:
    page = client.get(f"/reminders/new?frequency=once&currency=USD&amount=15&{PLACE}")
    form = {**hidden_fields(page.text), "email": "later@example.org", "months": "1"}
    form["csrf_token"] = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)[1]
    assert client.post("/reminders/new", data=form).status_code == 303
    reminder = db.session.scalar(select(Reminder))
    assert (reminder.article, reminder.campaign, reminder.variant) == ("budget-vote", "winter", "b")
    assert reminder.source == "https://news.example/budget"

    # A month later: the email's link carries the reminder and where it was asked.
    reminder.due_at = utcnow() - timedelta(minutes=1)
    commit()
    mailbox.messages.clear()
    send_due_reminders()
    (message,) = mailbox.wait_for(1)
    link = urlsplit(re.search(r"(http://\S+/support\?\S+)", plain(message)).group(1))
    query = parse_qs(link.query)
    assert (query["article"], query["campaign"], query["variant"]) == (
        ["budget-vote"],
        ["winter"],
        ["b"],
    )
    ask = client.get(f"{link.path}?{link.query}")
    assert 'name="article" value="budget-vote"' in ask.text

    # The reader goes on from the ask (as its form submits it) and gives.
    checkout(
        client,
        f"frequency=once&currency=USD&amount=15.00&reminder={query['reminder'][0]}"
        "&article=budget-vote&campaign=winter&variant=b",
        email="later@example.org",
    )
    donation = db.session.scalar(select(Donation))
    assert donation.reminder_id == reminder.id
    assert (donation.article, donation.campaign, donation.variant) == ("budget-vote", "winter", "b")
    # No source in the link: the gift keeps the reminder's article page.
    assert donation.source == "https://news.example/budget"


def test_attribution_values() -> None:
    assert Attribution.from_args({"article": " a ", "campaign": "", "variant": 3}).as_args() == {
        "article": "a"
    }
    assert clean_url("https://news.example/x") == "https://news.example/x"
    assert clean_url("ftp://news.example/x") is None
    assert clean_url("http://[::1") is None
    assert clean_url(None) is None
