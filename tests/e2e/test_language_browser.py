"""Languages in a real browser, at phone and desktop widths.

A reader who followed a ``?lang=ru`` link and then chooses English reads
English (the switch's return address drops ``lang``; the browser revalidates
the public page instead of showing its Russian copy). A staff member's
numbers, money and dates follow their own choice, not the browser's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from donations.db import commit, db, utcnow
from donations.staff.models import Role
from donations.staff.services import create_staff
from tests import factories
from tests.harness import LiveServer

pytestmark = pytest.mark.e2e

WIDTHS = [360, 1280]
EMAIL = "finance@newsroom.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def width(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def russian_browser_page(browser: Browser, width: int) -> Iterator[Page]:
    """A page whose browser asks for Russian first."""
    context = browser.new_context(
        viewport={"width": width, "height": 800}, locale="ru-RU", extra_http_headers={}
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def fits(page: Page, width: int) -> None:
    overflow = page.evaluate("() => document.documentElement.scrollWidth")
    assert overflow <= width, f"the page is {overflow}px wide in a {width}px window"


def test_choosing_english_after_a_russian_link(
    russian_browser_page: Page, live_server: LiveServer, width: int
) -> None:
    page, base = russian_browser_page, live_server.url
    page.goto(f"{base}/support?lang=ru&currency=EUR")
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    fits(page, width)

    page.get_by_role("navigation", name="Язык").get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.url == f"{base}/support?currency=EUR"
    expect(page.get_by_role("group", name="How often?")).to_be_visible()
    fits(page, width)
    # The choice stays: on reload, and on a page the browser saw in Russian before.
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.goto(f"{base}/support?currency=EUR")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.get_by_role("navigation", name="Language").get_by_role("link", name="Русский").click()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.get_by_role("group", name="Как часто?")).to_be_visible()


@pytest.fixture
def seeded(app: Flask) -> int:
    with app.app_context():
        create_staff(EMAIL, Role.FINANCE, PASSWORD)
        owner = factories.supporter("ada@example.org", "Ada Reader")
        factories.donation(
            owner,
            123456,
            fee=103,
            method="card",
            card_brand="visa",
            card_last4="4242",
            succeeded_at=utcnow(),
        )
        commit()
        supporter_id = owner.id
        db.session.remove()
    return supporter_id


def test_the_back_office_follows_the_staff_members_choice(
    russian_browser_page: Page, live_server: LiveServer, seeded: int, width: int
) -> None:
    page, base = russian_browser_page, live_server.url
    page.goto(f"{base}/staff/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    secret = page.locator("#manual-key").inner_text().replace(" ", "")
    page.get_by_label("Six-digit code from your authenticator app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm and sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # A Russian browser, an English back office: English numbers until they choose.
    page.goto(f"{base}/staff/supporters/{seeded}")
    expect(page.get_by_text("$1,234.56").first).to_be_visible()
    expect(page.get_by_text("Visa •••• 4242").first).to_be_visible()
    fits(page, width)

    page.get_by_role("link", name=f"{EMAIL} (finance)").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    fits(page, width)
    page.get_by_label("Numbers, money and dates in the back office").select_option("ru")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Your settings are saved.")).to_be_visible()
    expect(page.get_by_label("Numbers, money and dates in the back office")).to_have_value("ru")

    page.goto(f"{base}/staff/supporters/{seeded}")
    amounts = page.locator("body").inner_text().replace("\u00a0", " ").replace("\u202f", " ")
    assert "1 234,56 $" in amounts
    assert "$1,234.56" not in amounts
    expect(page.get_by_text("Visa •••• 4242").first).to_be_visible()
    fits(page, width)
