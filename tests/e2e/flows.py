"""The reader's steps and the state the browser cannot see, shared by the browser tests
of recurring support and of accessibility.
"""

from __future__ import annotations

import re
import time
import unicodedata
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from flask import Flask
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from donations.db import db
from donations.mail.models import EmailMessage as EmailRow
from donations.supporters.models import Donation, RecurringPlan

CARD_OK = "4242 4242 4242 4242"
CARD_3DS = "4000 0025 0000 3155"
IBAN_OK = "DE89 3704 0044 0532 0130 00"

EXPECT_TIMEOUT = 15_000  # ms; a plan's pay and thank-you pages make several hops to Stripe

PAY_URL = re.compile(r"/support/pay/[\w-]+$")
THANKS_URL = re.compile(r"/support/thanks/[\w-]+$")
DETAILS_URL = re.compile(r"/support/checkout\?")


def normalise(text: str) -> str:
    """Babel's U+00A0 / U+202F spaces (Russian amounts, for one) as plain spaces."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def unique_email() -> str:
    return f"reader-{uuid.uuid4().hex[:8]}@example.org"


def poll(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Wait until ``check()`` returns something truthy (state outside the page)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def watch_for_script_errors(page: Page) -> list[str]:
    """Uncaught exceptions in the page's scripts; a test ends by asserting none."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


# -- the reader's steps ---------------------------------------------------------------


def choose(
    page: Page,
    base: str,
    *,
    frequency: str = "Once",
    amount: str = "10",
    currency: str = "USD",
    continue_label: str = "Continue",
) -> None:
    """On the ask: a frequency (by its visible label), a currency, a typed amount; Continue."""
    page.goto(f"{base}/support")
    choose_on_ask(page, frequency=frequency, amount=amount, currency=currency)
    page.get_by_role("button", name=continue_label, exact=True).click()


def choose_on_ask(page: Page, *, frequency: str, amount: str, currency: str) -> None:
    # The radios are visually hidden behind their labels: click what the reader sees.
    page.locator("label", has_text=re.compile(rf"^{re.escape(frequency)}$")).click()
    expect(page.get_by_role("radio", name=frequency, exact=True)).to_be_checked()
    page.locator("#currency").select_option(currency)
    page.locator("#custom_amount").fill(amount)


def fill_details(
    page: Page,
    email: str,
    *,
    name: str = "Ada Reader",
    email_label: str = "Email",
    name_label: str = "Name",
    submit_label: str = "Continue to payment",
) -> None:
    expect(page).to_have_url(DETAILS_URL)
    page.get_by_label(email_label).fill(email)
    page.get_by_label(name_label, exact=True).fill(name)
    page.get_by_role("button", name=submit_label).click()
    expect(page).to_have_url(PAY_URL)


def enter_card(page: Page, number: str, expiry: str = "12 / 34", cvc: str = "123") -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry (MM / YY)").fill(expiry)
    page.get_by_label("CVC").fill(cvc)


def label_texts(radios: Locator) -> list[str]:
    """The visible label of each radio, in order (what its accessible name comes from)."""
    return [
        normalise(radios.nth(i).evaluate("e => e.labels[0].textContent"))
        for i in range(radios.count())
    ]


def three_d_secure(page: Page) -> Locator:
    return page.get_by_role("dialog", name="3D Secure")


# -- state the browser cannot see -------------------------------------------------------


def plans(app: Flask) -> list[RecurringPlan]:
    """Every plan, detached from the session (read-only use)."""
    with app.app_context():
        try:
            rows = list(db.session.scalars(select(RecurringPlan).order_by(RecurringPlan.id)))
            for row in rows:
                db.session.expunge(row)
            return rows
        finally:
            db.session.remove()


def donations(app: Flask) -> list[Donation]:
    with app.app_context():
        try:
            rows = list(db.session.scalars(select(Donation).order_by(Donation.id)))
            for row in rows:
                db.session.expunge(row)
            return rows
        finally:
            db.session.remove()


def email_rows(app: Flask, template: str) -> list[EmailRow]:
    with app.app_context():
        try:
            rows = list(
                db.session.scalars(
                    select(EmailRow).where(EmailRow.template == template).order_by(EmailRow.id)
                )
            )
            for row in rows:
                db.session.expunge(row)
            return rows
        finally:
            db.session.remove()


def subjects(messages: list[EmailMessage]) -> list[str]:
    return [normalise(str(m["Subject"])) for m in messages]


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None, "a message without a text part"
    return normalise(part.get_content())
