"""The README's screenshots, taken by going through the product as its people do.

A reader gives on a phone (the ask, the payment step, the thank-you page),
the ask is shown on a desktop, and a finance person reads the dashboard and
that reader's record. In the suite the pictures go to the test's own folder
and each page is checked on the way; ``make screenshots`` sets
SCREENSHOTS_DIR=docs/screenshots to refresh the ones the README shows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from donations.db import commit, db, utcnow
from donations.staff.models import Role
from donations.staff.services import create_staff
from tests import factories
from tests.e2e.conftest import PHONE
from tests.e2e.flows import EXPECT_TIMEOUT, choose, enter_card, fill_details, unique_email
from tests.harness import LiveServer

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1280, "height": 800}
STAFF = "finance@newsroom.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser_page(browser: Browser) -> Iterator[tuple[Page, Page]]:
    phone = browser.new_context(viewport=PHONE, device_scale_factor=2)
    desktop = browser.new_context(viewport=DESKTOP)
    try:
        yield phone.new_page(), desktop.new_page()
    finally:
        phone.close()
        desktop.close()


@pytest.fixture
def history(app: Flask) -> str:
    """A few months of gifts, so that the dashboard has something to show."""
    with app.app_context():
        staff = create_staff(STAFF, Role.FINANCE, PASSWORD)
        staff.totp_secret = pyotp.random_base32()
        staff.totp_enrolled_at = utcnow()
        secret = staff.totp_secret
        now = utcnow()
        for number, (amount, currency, method) in enumerate(
            [(2500, "USD", "card"), (1000, "EUR", "sepa_debit"), (5000, "USD", "card")] * 4
        ):
            owner = factories.supporter(f"reader{number}@example.org", f"Reader {number}")
            factories.donation(
                owner,
                amount + number * 100,
                currency,
                fee=amount // 30,
                method=method,
                succeeded_at=now - timedelta(days=30 * (number + 1)),
            )
            if number % 3 == 0:
                factories.plan(owner, 500 + number * 100, currency)
        commit()
        db.session.remove()
    return str(secret)


def snap(page: Page, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, name


def test_the_readme_screenshots(
    browser_page: tuple[Page, Page], live_server: LiveServer, history: str, shots: Path
) -> None:
    phone, desktop = browser_page
    expect.set_options(timeout=EXPECT_TIMEOUT)
    base = live_server.url

    desktop.goto(f"{base}/support")
    expect(desktop.get_by_role("button", name="Continue", exact=True)).to_be_visible()
    snap(desktop, shots, "ask-desktop")

    phone.goto(f"{base}/support")
    expect(phone.get_by_role("button", name="Continue", exact=True)).to_be_visible()
    snap(phone, shots, "ask-phone")

    email = unique_email()
    choose(phone, base, frequency="Once", amount="25")
    fill_details(phone, email, name="Ada Reader")
    enter_card(phone, "4242 4242 4242 4242")
    give = phone.get_by_role("button", name="Give $25.00")
    expect(give).to_be_enabled()
    snap(phone, shots, "payment-step")
    give.click()
    expect(phone).to_have_url(re.compile(r"/support/thanks/[\w-]+$"))
    expect(phone.locator("#charged")).to_have_text("We charged $25.00 to Visa •••• 4242.")
    snap(phone, shots, "thank-you")

    desktop.goto(f"{base}/staff/")
    desktop.get_by_label("Email").fill(STAFF)
    desktop.get_by_label("Password").fill(PASSWORD)
    desktop.get_by_role("button", name="Continue").click()
    desktop.get_by_label("Six-digit code from your authenticator app").fill(
        pyotp.TOTP(history).now()
    )
    desktop.get_by_role("button", name="Sign in").click()
    expect(desktop.get_by_role("heading", name="Dashboard")).to_be_visible()
    # Today's only gift is the reader's (the earlier ones are a month or more old).
    expect(desktop.locator("#totals-today tr[data-currency=USD] .gross")).to_have_text("$25.00")
    snap(desktop, shots, "dashboard")

    desktop.get_by_role("navigation", name="Back office").get_by_role(
        "link", name="Supporters"
    ).click()
    desktop.get_by_role("searchbox").fill(email)
    desktop.keyboard.press("Enter")
    desktop.get_by_role("link", name=email).click()
    expect(desktop.get_by_role("heading", name="Ada Reader")).to_be_visible()
    expect(desktop.get_by_text("$25.00").first).to_be_visible()
    snap(desktop, shots, "supporter")
