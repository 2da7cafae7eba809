"""Changing one's plan in /manage in headless Chromium at 360 px: a higher amount through
the confirm page, then a new card with 3D Secure saved in the page (mock Stripe.js) --
with what the simulator and the ledger record, and axe-core on each page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from donations.db import db
from donations.supporters.models import RecurringPlan
from tests.e2e.conftest import PHONE
from tests.e2e.flows import (
    CARD_3DS,
    EXPECT_TIMEOUT,
    enter_card,
    normalise,
    three_d_secure,
    unique_email,
    watch_for_script_errors,
)
from tests.e2e.test_accessibility import AXE, check_page
from tests.e2e.test_manage_browser import sign_in_by_keyboard
from tests.harness import LiveServer, Mailbox, Simulator
from tests.payments.stripe_flows import subscribe

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=EXPECT_TIMEOUT)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, bypass_csp=True)
    try:
        page = context.new_page()
        errors = watch_for_script_errors(page)
        yield page
        assert errors == [], f"script errors in the page: {errors}"
    finally:
        context.close()


def test_a_supporter_raises_the_amount_and_replaces_the_card_with_3d_secure(
    page: Page, live_server: LiveServer, app: Flask, simulator: Simulator, mailbox: Mailbox
) -> None:
    if not AXE.is_file():
        pytest.fail("axe-core is missing: run `make install` (npm ci) first", pytrace=False)
    base = str(live_server.url)
    email = unique_email()
    with app.app_context():
        plan = subscribe(app.test_client(), simulator, amount="7", email=email)
        plan_id, subscription_id = plan.id, plan.stripe_subscription_id
        db.session.remove()
    sign_in_by_keyboard(page, base, mailbox, email, "en")

    page.locator(f"#change-plan-{plan_id}").click()
    expect(page.locator("#change-title")).to_have_text("Change your support")
    check_page(page, AXE, "change page")
    page.get_by_label("Amount (USD)").fill("1.00")
    page.get_by_role("button", name="Review the change").click()
    expect(page.locator("#change-error")).to_have_text("The smallest gift is $2.00.")
    page.get_by_label("Amount (USD)").fill("12")
    page.get_by_role("button", name="Review the change").click()
    expect(page.locator("#change-to")).to_have_text("$12.00, monthly")
    expect(page.locator("#change-then")).to_have_text(
        "Then $12.00 every month. Nothing is charged now."
    )
    check_page(page, AXE, "confirm page")
    page.get_by_role("button", name="Confirm the change").click()
    expect(page).to_have_url(re.compile(r"/manage/account#plan-\d+$"))
    expect(page.locator("#manage-notice")).to_contain_text("Your support is changed")
    expect(page.locator(f"#plan-{plan_id} .plan-amount")).to_have_text("$12.00")
    subscription = simulator.api("GET", f"/v1/subscriptions/{subscription_id}")
    assert subscription["items"]["data"][0]["price"]["unit_amount"] == 1200

    page.locator(f"#replace-method-{plan_id}").click()
    expect(page.locator("#method-title")).to_have_text("Replace the card")
    check_page(page, AXE, "payment method page")
    enter_card(page, CARD_3DS)
    page.get_by_role("button", name="Save the new card").click()
    dialog = three_d_secure(page)
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Complete authentication").click()
    expect(page).to_have_url(re.compile(r"/manage/account#plan-\d+$"))
    expect(page.locator("#manage-notice")).to_contain_text(
        "Your new card is saved. We will use it for your next payment."
    )
    subscription = simulator.api("GET", f"/v1/subscriptions/{subscription_id}")
    method = simulator.api("GET", f"/v1/payment_methods/{subscription['default_payment_method']}")
    assert method["card"]["last4"] == "3155"
    with app.app_context():
        row = db.session.get(RecurringPlan, plan_id)
        assert row is not None
        assert (row.amount, row.method) == (1200, "card")
        db.session.remove()
    assert normalise(page.locator(f"#plan-{plan_id} .plan-status").inner_text()) == "Active"
