"""Manage my support in headless Chromium: sign in from the emailed link at 360 px, see
what the ledger records, every page in English and Russian with axe-core, everything
reachable and usable by keyboard, the receipt downloaded as a PDF, signing out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from donations.db import db
from donations.supporters.models import Donation, RecurringPlan
from tests.e2e.conftest import PHONE
from tests.e2e.flows import EXPECT_TIMEOUT, normalise, poll, unique_email, watch_for_script_errors
from tests.e2e.test_accessibility import AXE, check_page
from tests.harness import LiveServer, Mailbox, Simulator
from tests.manage.flows import links_in
from tests.payments.stripe_flows import charge_of, deliver, give, refund, stale, subscribe

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=EXPECT_TIMEOUT)


@pytest.fixture(scope="module")
def axe_source() -> Path:
    if not AXE.is_file():
        pytest.fail("axe-core is missing: run `make install` (npm ci) first", pytrace=False)
    return AXE


@pytest.fixture
def base(live_server: LiveServer) -> str:
    return str(live_server.url)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A phone-sized page; CSP bypassed only so that axe-core can be injected."""
    context = browser.new_context(viewport=PHONE, bypass_csp=True, accept_downloads=True)
    try:
        page = context.new_page()
        errors = watch_for_script_errors(page)
        yield page
        assert errors == [], f"script errors in the page: {errors}"
    finally:
        context.close()


def supporter_with_history(app: Flask, simulator: Simulator, email: str) -> tuple[int, int]:
    """A one-off gift refunded in part and a monthly plan, recorded as Stripe reported them."""
    client = app.test_client()
    with app.app_context():
        gift = give(client, simulator, amount="20", email=email)
        charge = charge_of(simulator, gift)
        refund(simulator, gift, 500)
        deliver(client, "charge.refunded", stale(charge, "charge", amount_refunded=500))
        plan = subscribe(client, simulator, amount="7", email=email)
        donation_id, plan_id = gift.donation().id, plan.id
        db.session.remove()
    return donation_id, plan_id


def sign_in_by_keyboard(page: Page, base: str, mailbox: Mailbox, email: str, lang: str) -> None:
    mailbox.messages.clear()
    page.goto(f"{base}/manage?lang={lang}")
    page.locator("body").focus()
    # The skip link, the language switch, then the address field: Tab to it, type, Enter.
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.type") == "email":
            break
    page.keyboard.type(email)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/manage/sent$"))
    messages = poll(lambda: [m for m in mailbox.messages if email in str(m["To"])], "the link")
    link = links_in(messages[0], "/manage/link/")[0]
    page.goto(base + link)
    page.locator("#link-submit").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/manage/account$"))


def unreachable_by_tab(page: Page) -> list[str]:
    """Links, buttons, fields and disclosure summaries that Tab never focuses."""
    page.evaluate(
        """() => document.querySelectorAll(
                'main a[href], main button, main input:not([type=hidden]), main summary')
              .forEach((e, i) => e.dataset.tabProbe = String(i))"""
    )
    wanted = set(
        page.evaluate(
            "() => [...document.querySelectorAll('[data-tab-probe]')].map(e => e.dataset.tabProbe)"
        )
    )
    page.locator("body").focus()
    seen: set[str] = set()
    for _ in range(len(wanted) + 20):
        page.keyboard.press("Tab")
        probe = page.evaluate("document.activeElement && document.activeElement.dataset.tabProbe")
        if probe:
            seen.add(probe)
    missing = wanted - seen
    return list(
        page.evaluate(
            """(ids) => ids.map(
                i => document.querySelector(`[data-tab-probe='${i}']`).outerHTML.slice(0, 80))""",
            sorted(missing),
        )
    )


def test_a_supporter_signs_in_on_a_phone_and_sees_the_ledger(
    page: Page, base: str, app: Flask, simulator: Simulator, mailbox: Mailbox, axe_source: Path
) -> None:
    email = unique_email()
    donation_id, plan_id = supporter_with_history(app, simulator, email)
    with app.app_context():
        plan = db.session.get(RecurringPlan, plan_id)
        donation = db.session.get(Donation, donation_id)
        assert plan is not None
        assert donation is not None
        next_day = plan.next_renewal_at
        reference = donation.stripe_payment_intent_id
        db.session.remove()

    page.goto(f"{base}/support")
    page.get_by_role("link", name="Manage your support").click()
    expect(page).to_have_url(re.compile(r"/manage$"))
    check_page(page, axe_source, "sign-in page")
    sign_in_by_keyboard(page, base, mailbox, email, "en")

    plan_card = page.locator(f"#plan-{plan_id}")
    expect(plan_card.locator(".plan-amount")).to_have_text("$7.00")
    expect(plan_card.locator(".plan-status")).to_have_text("Active")
    expect(plan_card.locator(".plan-method")).to_have_text("Visa •••• 4242")
    assert next_day is not None
    expect(plan_card.locator(".plan-next")).to_have_text(
        f"{next_day:%B} {next_day.day}, {next_day.year}"
    )
    gift_card = page.locator(f"#gift-{donation_id}")
    expect(gift_card.locator(".gift-amount")).to_have_text("$20.00")
    expect(gift_card.locator(".gift-state")).to_have_text("Partly refunded")
    expect(gift_card.locator(".refund")).to_contain_text("Refunded: $5.00")
    check_page(page, axe_source, "account page")
    assert unreachable_by_tab(page) == []

    # Open the recent activity by keyboard: the sign-in is there.
    page.locator("#activity summary").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#activity li").first).to_be_visible()
    expect(page.locator("#activity")).to_contain_text("Signed in with a sign-in link")

    gift_card.get_by_role("link", name=re.compile("View receipt")).click()
    expect(page.locator("#receipt-amount")).to_have_text("$20.00")
    expect(page.locator("#receipt-details")).to_contain_text(reference or "")
    check_page(page, axe_source, "receipt page")
    with page.expect_download() as download_info:
        page.locator("#receipt-pdf").click()
    download = download_info.value
    assert download.suggested_filename.startswith("receipt-")
    assert Path(download.path()).read_bytes().startswith(b"%PDF")

    page.goto(f"{base}/manage/erase")
    check_page(page, axe_source, "erase page")
    page.goto(f"{base}/manage/account")
    page.locator("#sign-out").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/manage$"))
    expect(page.locator("#manage-notice")).to_have_text("You have signed out.")
    page.goto(f"{base}/manage/account")
    expect(page).to_have_url(re.compile(r"/manage$"))


def test_the_portal_in_russian_at_360_px(
    page: Page, base: str, app: Flask, simulator: Simulator, mailbox: Mailbox, axe_source: Path
) -> None:
    email = unique_email()
    donation_id, plan_id = supporter_with_history(app, simulator, email)
    sign_in_by_keyboard(page, base, mailbox, email, "ru")
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.locator("#account-title")).to_have_text("Ваша поддержка")
    plan_card = page.locator(f"#plan-{plan_id}")
    expect(plan_card.locator(".plan-status")).to_have_text("Действует")
    assert normalise(plan_card.locator(".plan-amount").inner_text()) == "7,00 $"
    expect(page.locator(f"#gift-{donation_id} .gift-state")).to_have_text("Частично возвращено")
    check_page(page, axe_source, "account page (ru)")
    assert unreachable_by_tab(page) == []
    page.goto(f"{base}/manage/gifts/{donation_id}/receipt")
    expect(page.locator("h1")).to_have_text("Квитанция")
    check_page(page, axe_source, "receipt page (ru)")
    page.goto(f"{base}/manage/erase")
    check_page(page, axe_source, "erase page (ru)")
    # A spent link, in Russian.
    page.goto(f"{base}/manage/link/spent")
    expect(page.locator("h1")).to_have_text("Эта ссылка больше не работает")
    check_page(page, axe_source, "invalid link page (ru)")
    page.goto(f"{base}/manage/account")
    page.locator("#sign-out-everywhere").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/manage$"))
    check_page(page, axe_source, "sign-in page (ru)")
