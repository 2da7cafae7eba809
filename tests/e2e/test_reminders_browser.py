"""From "Remind me later" to a gift made through the reminder, in headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from donations.db import db
from donations.reminders.models import Reminder, ReminderStatus
from donations.reminders.tasks import send_due_reminders
from donations.supporters.models import Donation, DonationStatus
from tests.e2e.conftest import PHONE

pytestmark = pytest.mark.e2e

EMAIL = "later@example.org"


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(autouse=True)
def _expect_timeout() -> Iterator[None]:
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


def the_reminder(app: Flask) -> Reminder:
    with app.app_context():
        try:
            row = db.session.scalar(select(Reminder))
            assert row is not None
            db.session.expunge(row)
            return row
        finally:
            db.session.remove()


def test_remind_me_later_then_give_through_the_reminder(
    phone: Page, live_server, app: Flask, mailbox
) -> None:
    page, base = phone, live_server.url
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The ask: once, USD, an amount of the reader's own; then "Remind me later".
    page.goto(f"{base}/support")
    page.locator("label", has_text=re.compile(r"^Once$")).click()
    page.locator("#currency").select_option("USD")
    page.locator("#custom_amount").fill("15")
    page.get_by_role("link", name="Remind me later").click()

    expect(page).to_have_url(re.compile(r"/reminders/new\?"))
    expect(page.locator("#remind-gift")).to_have_text("$15.00 once")
    expect(page.get_by_role("radio", name=re.compile(r"^In a month"))).to_be_checked()
    expect(page.locator("#remind-consent")).to_contain_text("do not need an account or a password")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_role("button", name="Remind me", exact=True).click()

    expect(page).to_have_url(re.compile(r"/reminders/scheduled$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("We will remind you")
    expect(page.locator("#scheduled-when")).to_contain_text(f"We will email {EMAIL} on ")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    (confirmation,) = mailbox.wait_for(1)
    assert confirmation["To"].addresses[0].addr_spec == EMAIL
    mailbox.messages.clear()

    # A month later the dispatcher runs (as beat or the embedded scheduler would).
    reminder = the_reminder(app)
    with app.app_context():
        try:
            assert send_due_reminders(now=reminder.due_at - timedelta(minutes=1)).claimed == 0
            assert send_due_reminders(now=reminder.due_at + timedelta(minutes=1)).sent == 1
        finally:
            db.session.remove()
    (message,) = mailbox.wait_for(1)
    link = re.search(r"(http://\S+/support\?\S+)", message.get_body(("plain",)).get_content())
    assert link

    # The reminder's link: the ask as the reader left it, then the whole checkout.
    page.goto(link.group(1))
    expect(page.get_by_role("radio", name="Once", exact=True)).to_be_checked()
    expect(page.locator("#currency")).to_have_value("USD")
    expect(page.locator("#custom_amount")).to_have_value("15.00")
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(page).to_have_url(re.compile(r"/support/checkout\?"))
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Name", exact=True).fill("Later Reader")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page).to_have_url(re.compile(r"/support/pay/[\w-]+$"))
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry (MM / YY)").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Give $15.00").click()
    expect(page).to_have_url(re.compile(r"/support/thanks/[\w-]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you for your support!")

    with app.app_context():
        try:
            donation = db.session.scalar(select(Donation))
            assert donation is not None
            assert (donation.status, donation.amount, donation.currency) == (
                DonationStatus.SUCCEEDED,
                1500,
                "USD",
            )
            assert donation.reminder_id == reminder.id
            assert db.session.get(Reminder, reminder.id).status is ReminderStatus.SENT
        finally:
            db.session.remove()
    assert errors == []
