"""Pausing, resuming and cancelling in /manage in headless Chromium at 360 px, in English
and Russian: what the card says follows what the simulator confirmed, axe-core on each page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from donations.db import db
from tests.e2e.conftest import PHONE
from tests.e2e.flows import EXPECT_TIMEOUT, unique_email, watch_for_script_errors
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


def _subscription(simulator: Simulator, subscription_id: str) -> dict:
    answer = requests.get(
        f"{simulator.url}/v1/subscriptions/{subscription_id}",
        auth=("sk_test_local", ""),
        timeout=10,
    )
    assert answer.status_code == 200
    return dict(answer.json())


def test_pause_resume_and_cancel_on_a_phone_in_english_and_russian(
    page: Page, live_server: LiveServer, app: Flask, simulator: Simulator, mailbox: Mailbox
) -> None:
    if not AXE.is_file():
        pytest.fail("axe-core is missing: run `make install` (npm ci) first", pytrace=False)
    base = str(live_server.url)
    email = unique_email()
    with app.app_context():
        plan = subscribe(app.test_client(), simulator, amount="7", email=email)
        plan_id, subscription_id = plan.id, str(plan.stripe_subscription_id)
        db.session.remove()
    sign_in_by_keyboard(page, base, mailbox, email, "en")
    card = page.locator(f"#plan-{plan_id}")

    page.locator(f"#pause-link-{plan_id}").click()
    expect(page.locator("#pause-title")).to_have_text("Skip or pause a payment")
    check_page(page, AXE, "pause page")
    page.get_by_label("Pause for 2 months").check()
    page.get_by_role("button", name="Pause my support").click()
    expect(page).to_have_url(re.compile(r"/manage/account#plans$"))
    expect(page.locator("#manage-notice")).to_contain_text("Paused until")
    expect(card.locator(".plan-paused")).to_contain_text("Paused until")
    assert _subscription(simulator, subscription_id)["pause_collection"]["behavior"] == "void"
    check_page(page, AXE, "account page, paused")

    card.get_by_role("button", name="Resume now").click()
    expect(page.locator("#manage-notice")).to_contain_text("Your support continues as before.")
    expect(card.locator(".plan-paused")).to_have_count(0)
    assert _subscription(simulator, subscription_id)["pause_collection"] is None

    # In Russian: a reason, the offers once, then "no thanks" -- ends at the period's end.
    page.goto(f"{base}/manage/plans/{plan_id}/cancel?lang=ru")
    expect(page.locator("#cancel-title")).to_have_text("Отменить поддержку")
    check_page(page, AXE, "cancel page (ru)")
    page.get_by_label("Я теперь редко вас читаю").check()
    page.locator("#cancel-continue").click()
    expect(page.locator("#offers-title")).to_have_text("Прежде чем вы уйдёте")
    check_page(page, AXE, "offers page (ru)")
    page.locator("#offers-decline").click()
    expect(page.locator("#manage-notice")).to_contain_text("Ваша поддержка завершится")
    expect(card.locator(".plan-ends")).to_contain_text("Отменяется")
    at_stripe = _subscription(simulator, subscription_id)
    assert (at_stripe["cancel_at_period_end"], at_stripe["status"]) == (True, "active")
    check_page(page, AXE, "account page, ending (ru)")
