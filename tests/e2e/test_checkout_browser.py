"""The reader's checkout in a real browser: the ask, the details, the payment.

Headless Chromium drives the live app; the page loads the simulator's mock
Stripe.js, which confirms against the simulator over HTTP, exactly as the
page's own code would against Stripe.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from sqlalchemy import select

from donations.db import db
from donations.mail.models import EmailMessage
from donations.payments.models import StripeEvent
from donations.supporters.models import Donation, DonationStatus
from tests.e2e.conftest import PHONE
from tests.harness import LiveServer, Mailbox, Simulator

pytestmark = pytest.mark.e2e

CARD_OK = "4242 4242 4242 4242"
CARD_3DS = "4000 0025 0000 3155"
CARD_DECLINED = "4000 0000 0000 0002"
CARD_FRAUD = "4100 0000 0000 0019"

GENERIC_DECLINE = "Your payment was declined. Please try another card or payment method."
AUTH_FAILED = "We could not authenticate your payment. Please try again or use another card."
THANKS = "Thank you for your support!"
CHARGED_10 = "We charged $10.00 to Visa •••• 4242."

# Words that would tell a card thief why the bank refused.
REVEALING = re.compile(r"fraud|stolen|lost|pick ?up|restricted|blacklist|security", re.IGNORECASE)

EXPECT_TIMEOUT = 15_000  # ms; the pay page makes two hops to the simulator


@pytest.fixture(autouse=True)
def _expect_timeout() -> Iterator[None]:
    expect.set_options(timeout=EXPECT_TIMEOUT)
    yield
    expect.set_options(timeout=5_000)  # Playwright's default, for other modules' tests


# -- state the browser cannot see ----------------------------------------------


@dataclass(frozen=True)
class DonationRow:
    status: DonationStatus
    amount: int
    currency: str
    stripe_payment_intent_id: str | None
    stripe_charge_id: str | None
    card_last4: str | None
    email: str


def donations(app: Flask) -> list[DonationRow]:
    with app.app_context():
        try:
            return [
                DonationRow(
                    d.status,
                    d.amount,
                    d.currency,
                    d.stripe_payment_intent_id,
                    d.stripe_charge_id,
                    d.card_last4,
                    d.supporter.email,
                )
                for d in db.session.scalars(select(Donation).order_by(Donation.id))
            ]
        finally:
            db.session.remove()


def receipts_recorded(app: Flask) -> int:
    with app.app_context():
        try:
            return len(db.session.scalars(select(EmailMessage.id)).all())
        finally:
            db.session.remove()


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


def webhook_processed(app: Flask, intent_id: str) -> bool:
    """The simulator's payment_intent.succeeded for this intent has been handled."""
    with app.app_context():
        try:
            rows = db.session.scalars(
                select(StripeEvent).where(
                    StripeEvent.object_id == intent_id,
                    StripeEvent.type == "payment_intent.succeeded",
                )
            ).all()
            return any(r.processed_at is not None for r in rows)
        finally:
            db.session.remove()


def simulator_charges(simulator: Simulator, customer_id: str) -> list[dict[str, Any]]:
    reply = requests.get(
        f"{simulator.url}/v1/charges",
        params={"customer": customer_id, "limit": 100},
        headers={"Authorization": "Bearer sk_test_local"},
        timeout=10,
    )
    reply.raise_for_status()
    return list(reply.json()["data"])


def simulator_charges_for(simulator: Simulator, app: Flask, intent_id: str) -> list[dict[str, Any]]:
    """The charges the simulator made for this PaymentIntent, failed ones included."""
    return [
        c
        for c in simulator_charges(simulator, customer_of(app, intent_id))
        if c.get("payment_intent") == intent_id
    ]


def customer_of(app: Flask, intent_id: str) -> str:
    with app.app_context():
        try:
            donation = db.session.scalar(
                select(Donation).where(Donation.stripe_payment_intent_id == intent_id)
            )
            assert donation is not None
            customer = donation.supporter.stripe_customer_id
            assert customer
            return customer
        finally:
            db.session.remove()


# -- the reader's steps --------------------------------------------------------


def unique_email() -> str:
    return f"reader-{uuid.uuid4().hex[:8]}@example.org"


def choose_gift(
    page: Page, base: str, *, amount: str = "10", currency: str = "USD", frequency: str = "Once"
) -> None:
    page.goto(f"{base}/support")
    # The radios are visually hidden behind their labels: click what the reader sees.
    page.locator("label", has_text=re.compile(rf"^{frequency}$")).click()
    expect(page.get_by_role("radio", name=frequency, exact=True)).to_be_checked()
    page.locator("#currency").select_option(currency)
    page.locator("#custom_amount").fill(amount)
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(page).to_have_url(re.compile(r"/support/checkout\?"))


def fill_details(page: Page, email: str, name: str = "Ada Reader") -> None:
    expect(page.locator("#gift-summary")).to_have_text("$10.00 once")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Name", exact=True).fill(name)


def go_to_payment(page: Page, base: str, email: str | None = None) -> str:
    """Ask → details → payment page; returns the email used."""
    email = email or unique_email()
    choose_gift(page, base)
    fill_details(page, email)
    page.get_by_role("button", name="Continue to payment").click()
    expect(page).to_have_url(re.compile(r"/support/pay/[\w-]+$"))
    expect(page.get_by_label("Card number")).to_be_visible()
    return email


def enter_card(page: Page, number: str, expiry: str = "12 / 34", cvc: str = "123") -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry (MM / YY)").fill(expiry)
    page.get_by_label("CVC").fill(cvc)


def give_button(page: Page) -> Locator:
    return page.get_by_role("button", name="Give $10.00")


def expect_thanks(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"/support/thanks/[\w-]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(THANKS)
    expect(page.locator("#charged")).to_have_text(CHARGED_10)


def intent_on_page(page: Page) -> str:
    return page.locator(".reference code").inner_text().strip()


def expect_one_receipt(app: Flask, mailbox: Mailbox, intent_id: str, email: str) -> None:
    """One receipt, even after the simulator's webhook for the same payment."""
    messages = mailbox.wait_for(1)
    assert len(messages) >= 1, "no receipt arrived"
    poll(lambda: webhook_processed(app, intent_id), "the payment_intent.succeeded webhook")
    assert receipts_recorded(app) == 1
    assert len(mailbox.messages) == 1, [m["Subject"] for m in mailbox.messages]
    message = mailbox.messages[0]
    assert "$10.00" in message["Subject"]
    assert message["To"].addresses[0].addr_spec == email


# -- fixtures -----------------------------------------------------------------


@pytest.fixture
def base(live_server: LiveServer) -> str:
    return str(live_server.url)


def watch_for_script_errors(page: Page) -> list[str]:
    """Uncaught exceptions in the page's scripts; a test ends by asserting none."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


@pytest.fixture
def page(page: Page) -> Iterator[Page]:
    errors = watch_for_script_errors(page)
    yield page
    assert errors == [], f"script errors in the page: {errors}"


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context: BrowserContext = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    try:
        page = context.new_page()
        errors = watch_for_script_errors(page)
        yield page
        assert errors == [], f"script errors in the page: {errors}"
    finally:
        context.close()


# -- 1. the plain gift, on a phone ------------------------------------------------


def test_one_off_gift_on_a_phone(
    phone: Page, base: str, app: Flask, mailbox: Mailbox, tmp_path: Path
) -> None:
    page = phone
    email = go_to_payment(page, base)
    expect(give_button(page)).to_be_enabled()
    enter_card(page, CARD_OK)
    give_button(page).click()

    expect_thanks(page)
    screenshot = tmp_path / "thanks-360.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0
    # Nothing on the thank-you page is wider than the phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    intent_id = intent_on_page(page)
    expect_one_receipt(app, mailbox, intent_id, email)
    (row,) = donations(app)
    assert row.status is DonationStatus.SUCCEEDED
    assert (row.amount, row.currency, row.card_last4, row.email) == (1000, "USD", "4242", email)
    assert row.stripe_payment_intent_id == intent_id
    assert (row.stripe_charge_id or "").startswith("ch_")


# -- 2. 3D Secure -------------------------------------------------------------------


def three_d_secure_dialog(page: Page) -> Locator:
    return page.get_by_role("dialog", name="3D Secure")


def test_three_d_secure_completed(page: Page, base: str, app: Flask, mailbox: Mailbox) -> None:
    email = go_to_payment(page, base)
    enter_card(page, CARD_3DS)
    give_button(page).click()

    dialog = three_d_secure_dialog(page)
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Complete authentication").click()

    expect(page).to_have_url(re.compile(r"/support/thanks/[\w-]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(THANKS)
    intent_id = intent_on_page(page)
    expect_one_receipt(app, mailbox, intent_id, email)
    (row,) = donations(app)
    assert row.status is DonationStatus.SUCCEEDED


def test_three_d_secure_failed_then_another_card(
    page: Page, base: str, app: Flask, mailbox: Mailbox
) -> None:
    email = go_to_payment(page, base)
    enter_card(page, CARD_3DS)
    give_button(page).click()
    dialog = three_d_secure_dialog(page)
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Fail authentication").click()

    message = page.locator("#payment-message")
    expect(message).to_be_visible()
    expect(message).to_have_text(AUTH_FAILED)
    expect(page).to_have_url(re.compile(r"/support/pay/[\w-]+$"))
    expect(give_button(page)).to_be_enabled()
    assert mailbox.messages == []
    assert [r.status for r in donations(app)] != [DonationStatus.SUCCEEDED]

    enter_card(page, CARD_OK)
    give_button(page).click()
    expect_thanks(page)
    expect_one_receipt(app, mailbox, intent_on_page(page), email)
    (row,) = donations(app)
    assert row.status is DonationStatus.SUCCEEDED
    assert row.card_last4 == "4242"


# -- 3. declines ----------------------------------------------------------------------


def expect_generic_decline(page: Page) -> None:
    message = page.locator("#payment-message")
    expect(message).to_be_visible()
    expect(message).to_have_text(GENERIC_DECLINE)
    expect(give_button(page)).to_be_enabled()
    assert not REVEALING.search(page.locator("body").inner_text())


def test_declines_read_as_plain_declines_then_a_good_card_works(
    page: Page,
    base: str,
    app: Flask,
    mailbox: Mailbox,
    simulator: Simulator,
) -> None:
    email = go_to_payment(page, base)
    message = page.locator("#payment-message")

    secret = page.locator("#payment-form").get_attribute("data-client-secret") or ""
    intent_id = secret.split("_secret_")[0]

    def failed_charges() -> int:
        charges = simulator_charges_for(simulator, app, intent_id)
        return sum(c["status"] == "failed" for c in charges)

    enter_card(page, CARD_DECLINED)
    give_button(page).click()
    expect_generic_decline(page)
    expect(message).to_have_attribute("role", "alert")
    assert failed_charges() == 1

    # A card the bank reports as fraudulent reads exactly like any decline.
    enter_card(page, CARD_FRAUD)
    give_button(page).click()
    # The page may still show the first message: wait until the bank has refused again.
    poll(lambda: failed_charges() == 2, "the second declined charge")
    expect_generic_decline(page)
    assert mailbox.messages == []

    enter_card(page, CARD_OK)
    give_button(page).click()
    expect_thanks(page)
    assert intent_on_page(page) == intent_id
    expect_one_receipt(app, mailbox, intent_id, email)
    (row,) = donations(app)
    assert row.status is DonationStatus.SUCCEEDED
    assert row.stripe_payment_intent_id == intent_id
    charges = simulator_charges_for(simulator, app, intent_id)
    assert sorted(c["status"] for c in charges) == ["failed", "failed", "succeeded"]
    assert [c["id"] for c in charges if c["status"] == "succeeded"] == [row.stripe_charge_id]


# -- 4. double clicks -------------------------------------------------------------------


def test_double_clicks_make_one_donation_and_one_charge(
    page: Page,
    base: str,
    app: Flask,
    mailbox: Mailbox,
    simulator: Simulator,
) -> None:
    email = unique_email()
    choose_gift(page, base)
    fill_details(page, email)
    # Two posts of the same details form: the attempt key makes them one.
    page.get_by_role("button", name="Continue to payment").dblclick()
    expect(page).to_have_url(re.compile(r"/support/pay/[\w-]+$"))
    expect(page.get_by_label("Card number")).to_be_visible()
    assert len(donations(app)) == 1

    enter_card(page, CARD_OK)
    give_button(page).dblclick()
    expect_thanks(page)
    intent_id = intent_on_page(page)
    expect_one_receipt(app, mailbox, intent_id, email)

    (row,) = donations(app)
    assert row.status is DonationStatus.SUCCEEDED
    assert row.stripe_payment_intent_id == intent_id
    charges = simulator_charges_for(simulator, app, intent_id)
    assert [c["id"] for c in charges] == [row.stripe_charge_id]
    assert charges[0]["status"] == "succeeded"

    # Back to the payment page after paying: it says thank you, it does not ask again.
    page.go_back()
    expect_thanks(page)
    assert len(donations(app)) == 1
    assert len(simulator_charges_for(simulator, app, intent_id)) == 1
    assert len(mailbox.messages) == 1


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="(\w+)" type="hidden" value="([^"]*)"', html))


def test_two_posts_of_one_details_form_at_once_make_one_donation(base: str, app: Flask) -> None:
    """What a double click can do: the same attempt posted twice, both in flight at once."""
    reader = requests.Session()
    page = reader.get(f"{base}/support/checkout?frequency=once&currency=USD&amount=10", timeout=10)
    assert page.status_code == 200
    form = {**hidden_fields(page.text), "email": unique_email(), "name": "Ada Reader"}
    assert {"csrf_token", "attempt", "amount"} <= form.keys()

    barrier = threading.Barrier(2)
    answers: list[requests.Response] = []

    def post() -> None:
        twin = requests.Session()
        twin.cookies.update(reader.cookies)
        barrier.wait(timeout=10)
        answers.append(
            twin.post(f"{base}/support/checkout", data=form, allow_redirects=False, timeout=30)
        )

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [a.status_code for a in answers] == [303, 303], [a.text[:300] for a in answers]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    assert len(donations(app)) == 1


# -- 5. the keyboard ------------------------------------------------------------------------


def tab_until(page: Page, selector: str, limit: int = 15) -> None:
    """Press Tab until the element matching ``selector`` has focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(
            "s => document.activeElement && document.activeElement.matches(s)", selector
        ):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def test_the_ask_works_with_the_keyboard(page: Page, base: str) -> None:
    page.goto(f"{base}/support")
    for name in ("Once", "Monthly", "Annual"):
        expect(page.get_by_role("radio", name=name, exact=True)).to_be_attached()
    monthly = page.get_by_role("radio", name="Monthly", exact=True)
    once = page.get_by_role("radio", name="Once", exact=True)
    expect(monthly).to_be_checked()  # the configured default

    # Tab reaches the frequency group (its checked radio), and the focus shows on the label.
    tab_until(page, "input[name=frequency]")
    expect(monthly).to_be_focused()
    outline = page.locator("label[for=frequency-monthly]").evaluate(
        "e => getComputedStyle(e).outlineStyle"
    )
    assert outline != "none"

    # Arrow keys choose within the group; the amounts follow the frequency.
    page.keyboard.press("ArrowLeft")
    expect(once).to_be_checked()
    expect(once).to_be_focused()
    once_amounts = page.locator("fieldset.amounts[data-currency=USD][data-frequency=once]")
    expect(once_amounts).to_be_visible()
    expect(
        page.locator("fieldset.amounts[data-currency=USD][data-frequency=monthly]")
    ).to_be_hidden()

    # Tab on to the amounts: one stop for the group, at the chosen preset.
    tab_until(page, "input[name=amount]")
    amounts = once_amounts.get_by_role("radio")
    names = [
        amounts.nth(i).evaluate("e => e.labels[0].textContent.trim()")
        for i in range(amounts.count())
    ]
    assert names == ["$10.00", "$25.00", "$50.00", "$100.00"], names
    for name in names:
        expect(once_amounts.get_by_role("radio", name=name, exact=True)).to_be_attached()
    twenty_five = once_amounts.get_by_role("radio", name="$25.00", exact=True)
    ten = once_amounts.get_by_role("radio", name="$10.00", exact=True)
    expect(twenty_five).to_be_focused()
    expect(twenty_five).to_be_checked()
    page.keyboard.press("ArrowLeft")
    expect(ten).to_be_checked()
    expect(ten).to_be_focused()

    # On to the button, and Enter submits the choice.
    tab_until(page, "button[type=submit]")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/support/checkout\?"))
    expect(page.locator("#gift-summary")).to_have_text("$10.00 once")
