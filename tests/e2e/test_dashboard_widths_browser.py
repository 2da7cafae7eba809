"""The dashboard's tables fit their cards at every back-office width, in English and Russian.

At 1280 px the period tables used to be wider than their cards and cut the
Net column ("€57."). Large amounts in four currencies, formatted in the
staff member's language, are the worst case: every table must fit inside
its card (no clipping, no horizontal scroll) and every cell must show its
whole text, from 1024 to 1920 px. Screenshots at each width are kept with
the test's files.
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

PASSWORD = "correct horse battery staple"
WIDTHS = (1024, 1280, 1440, 1920)
# Seven-figure gifts: the longest figures a newsroom's dashboard shows.
GIFTS = (("USD", 987_654_321), ("EUR", 876_543_210), ("GBP", 765_432_109), ("RUB", 654_321_098))

# For every table on the page: the table, its card, and any cell whose text
# does not fit, measured in the page's own layout.
MEASURE = """() => [...document.querySelectorAll('main table')]
  .filter(t => t.offsetParent !== null)
  .map(t => {
    const card = t.closest('.card');
    const box = t.getBoundingClientRect(), outer = card.getBoundingClientRect();
    const scroller = t.closest('.scroll');
    return {
      card: card.id,
      overflow: Math.max(0, box.right - outer.right + 1, outer.left - box.left + 1),
      scrolls: scroller ? scroller.scrollWidth - scroller.clientWidth : 0,
      clipped: [...t.querySelectorAll('th, td')]
        .filter(c => c.scrollWidth > c.clientWidth + 1)
        .map(c => c.textContent.trim()),
    };
  })"""


def _staff(app: Flask, locale: str) -> tuple[str, str]:
    email = f"finance-{locale}@newsroom.org"
    with app.app_context():
        staff = create_staff(email, Role.FINANCE, PASSWORD)
        staff.totp_secret = pyotp.random_base32()
        staff.totp_enrolled_at = utcnow()
        staff.locale = locale
        secret = staff.totp_secret
        commit()
        db.session.remove()
    return email, secret


@pytest.fixture
def seeded(app: Flask) -> None:
    with app.app_context():
        owner = factories.supporter("ada@example.org", "Ada Reader")
        now = utcnow()
        for currency, amount in GIFTS:
            factories.donation(
                owner, amount, currency, fee=amount // 30, method="card", succeeded_at=now
            )
            factories.plan(owner, amount // 100, currency)
        commit()
        db.session.remove()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
    finally:
        context.close()


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_the_dashboard_tables_fit_from_1024_to_1920_px(
    page: Page, live_server: LiveServer, app: Flask, seeded: None, locale: str, tmp_path
) -> None:
    email, secret = _staff(app, locale)
    base = live_server.url
    page.goto(f"{base}/staff/")
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.locator("input[name=code]").fill(pyotp.TOTP(secret).now())
    page.locator("form button[type=submit]").click()
    expect(page.locator("#totals-today")).to_be_visible()
    # The figures are there, in the staff member's language.
    net = page.locator("#totals-today tr[data-currency=USD] .net").inner_text()
    # 9,876,543.21 less a thirtieth in fees (329,218.10)
    assert net == ("$9,547,325.11" if locale == "en" else "9\xa0547\xa0325,11\xa0$")

    # The breakdowns and the charts' tables are measured open.
    page.evaluate("document.querySelectorAll('main details').forEach(d => { d.open = true; })")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        shot = tmp_path / f"dashboard-{locale}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        tables = page.evaluate(MEASURE)
        # Per period: totals, by frequency, by method; the recurring table; one per chart.
        assert len(tables) == page.locator(".periods > .card").count() * 3 + 1 + len(GIFTS)
        for table in tables:
            assert table["overflow"] <= 0, (width, table)
            assert table["scrolls"] <= 0, (width, table)
            assert table["clipped"] == [], (width, table)
        # Nor does the page itself scroll sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
