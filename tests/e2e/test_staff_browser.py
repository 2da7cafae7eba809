"""The back office in a real browser: enrol TOTP, sign in with it, read the dashboard."""

from __future__ import annotations

from collections.abc import Iterator

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from donations.db import commit, db, utcnow
from donations.staff.models import Role
from donations.staff.services import create_staff
from tests import factories
from tests.harness import LiveServer

pytestmark = pytest.mark.e2e

EMAIL = "finance@newsroom.org"
PASSWORD = "correct horse battery staple"
LAPTOP = {"width": 1280, "height": 900}


@pytest.fixture
def page(page: Page) -> Iterator[Page]:
    page.set_viewport_size(LAPTOP)
    page.set_default_timeout(15_000)
    return page


@pytest.fixture
def seeded(app: Flask) -> None:
    with app.app_context():
        create_staff(EMAIL, Role.FINANCE, PASSWORD)
        owner = factories.supporter("ada@example.org", "Ada Reader")
        now = utcnow()
        factories.donation(owner, 2500, fee=103, method="card", succeeded_at=now)
        factories.donation(owner, 1200, "EUR", fee=55, method="card", succeeded_at=now)
        factories.plan(owner, 500)
        commit()
        db.session.remove()


def sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/staff/")
    expect(page).to_have_url(f"{base}/staff/login?next=/staff/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()


def test_enrol_sign_in_with_totp_and_see_the_dashboard(
    page: Page, live_server: LiveServer, seeded: None, tmp_path
) -> None:
    base = live_server.url
    sign_in(page, base)
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    qr = page.locator("img.qr")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    secret = page.locator("#manual-key").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    page.get_by_label("Six-digit code from your authenticator app").fill(totp.now())
    page.get_by_role("button", name="Confirm and sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    page.goto(f"{base}/staff/")
    expect(page).to_have_url(f"{base}/staff/login?next=/staff/")

    # The second time only the code is asked for; the code just used is spent,
    # so take the next one (accepted one step ahead for clock drift).
    sign_in(page, base)
    expect(page.get_by_role("heading", name="Enter your two-factor code")).to_be_visible()
    page.get_by_label("Six-digit code from your authenticator app").fill(
        totp.at(utcnow(), counter_offset=1)
    )
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    today = page.locator("#totals-today")
    expect(today.locator("tr[data-currency=USD] .gross")).to_have_text("$25.00")
    expect(today.locator("tr[data-currency=USD] .net")).to_have_text("$23.97")
    expect(today.locator("tr[data-currency=EUR] .gross")).to_have_text("€12.00")
    expect(page.locator("#recurring tr[data-currency=USD] .mrr")).to_have_text("$5.00")

    chart = page.locator('svg.chart[data-currency="USD"]')
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 400
    assert box["height"] > 100
    assert chart.locator("rect.bar-gross").count() == 12
    tallest = max(
        float(h)
        for h in chart.locator("rect.bar-gross").evaluate_all(
            "bars => bars.map(b => b.getAttribute('height'))"
        )
    )
    assert tallest > 100

    shot = tmp_path / "staff-dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    chart.screenshot(path=str(tmp_path / "staff-chart.png"))
