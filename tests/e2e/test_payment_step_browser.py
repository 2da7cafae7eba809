"""The payment step in a real browser: the SEPA Direct Debit mandate is shown to a
reader paying by SEPA, and only then; without JavaScript it stays readable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import PHONE
from tests.e2e.flows import (
    EXPECT_TIMEOUT,
    IBAN_OK,
    THANKS_URL,
    choose,
    fill_details,
    unique_email,
    watch_for_script_errors,
)
from tests.harness import LiveServer

pytestmark = pytest.mark.e2e

WORDS = {
    "en": {
        "frequency": "Once",
        "continue": "Continue",
        "email": "Email",
        "name": "Name",
        "to_payment": "Continue to payment",
        "mandate": "By paying by SEPA Direct Debit you authorise",
        "cover_sepa": "paying by SEPA Direct Debit",
        "cover": "Cover the processing fee",
    },
    "ru": {
        "frequency": "Разово",
        "continue": "Продолжить",
        "email": "Электронная почта",
        "name": "Имя",
        "to_payment": "Перейти к оплате",
        "mandate": "Оплачивая прямым дебетованием SEPA, вы разрешаете",
        "cover_sepa": "при оплате прямым дебетованием SEPA",
        "cover": "Оплатить комиссию",
    },
}


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=EXPECT_TIMEOUT)


@pytest.fixture
def base(live_server: LiveServer) -> str:
    return str(live_server.url)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        errors = watch_for_script_errors(page)
        yield page
        assert errors == [], errors
    finally:
        context.close()


def to_payment(page: Page, base: str, lang: str, currency: str) -> None:
    words = WORDS[lang]
    page.goto(f"{base}/support?lang={lang}")
    choose(
        page,
        base,
        frequency=words["frequency"],
        amount="10",
        currency=currency,
        continue_label=words["continue"],
    )
    fill_details(
        page,
        unique_email(),
        email_label=words["email"],
        name_label=words["name"],
        submit_label=words["to_payment"],
    )


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_the_mandate_shows_while_sepa_is_the_method_chosen(
    page: Page, base: str, lang: str
) -> None:
    to_payment(page, base, lang, "EUR")
    sepa = page.get_by_role("radio", name="SEPA Direct Debit")
    card = page.get_by_role("radio", name="Card")
    expect(sepa).to_be_visible()
    mandate = page.locator("#sepa-mandate")
    pay = page.locator("#pay-button")

    # Card chosen (first): no mandate.
    expect(card).to_be_checked()
    expect(mandate).to_be_hidden()
    expect(pay).not_to_have_attribute("aria-describedby", "sepa-mandate")

    # SEPA chosen: the mandate, before the button, which it describes.
    sepa.check()
    expect(mandate).to_be_visible()
    expect(mandate).to_contain_text(WORDS[lang]["mandate"])
    expect(pay).to_have_attribute("aria-describedby", "sepa-mandate")
    assert page.evaluate(
        "document.querySelector('#sepa-mandate').compareDocumentPosition("
        "document.querySelector('#pay-button')) & Node.DOCUMENT_POSITION_FOLLOWING"
    )

    # Back to the card: gone again.
    card.check()
    expect(mandate).to_be_hidden()

    # And paying by SEPA with it shown goes through.
    sepa.check()
    page.get_by_label("IBAN").fill(IBAN_OK)
    pay.click()
    expect(page).to_have_url(THANKS_URL)


def test_no_mandate_where_sepa_is_not_offered(page: Page, base: str) -> None:
    to_payment(page, base, "en", "USD")
    expect(page.get_by_label("Card number")).to_be_visible()
    expect(page.locator("#sepa-mandate")).to_have_count(0)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_sepa_as_the_only_method_shows_the_mandate_at_once(
    page: Page, base: str, lang: str
) -> None:
    """Covering the fee at SEPA's price makes SEPA the only method offered."""
    words = WORDS[lang]
    page.goto(f"{base}/support?lang={lang}")
    choose(
        page, base, frequency=words["frequency"], currency="EUR", continue_label=words["continue"]
    )
    page.get_by_label(words["cover"]).check()
    page.get_by_label(words["cover_sepa"], exact=False).check()
    fill_details(
        page,
        unique_email(),
        email_label=words["email"],
        name_label=words["name"],
        submit_label=words["to_payment"],
    )
    expect(page.get_by_label("IBAN")).to_be_attached()
    mandate = page.locator("#sepa-mandate")
    expect(mandate).to_be_visible()
    expect(page.locator("#pay-button")).to_have_attribute("aria-describedby", "sepa-mandate")


def test_without_javascript_the_mandate_stays_readable(
    browser: Browser, base: str, live_server: LiveServer
) -> None:
    """Paying needs Stripe.js; without it the page says so, and the mandate (whose
    words are conditional: "by paying by SEPA Direct Debit") is not hidden."""
    with_js = browser.new_context(viewport=PHONE)
    try:
        page = with_js.new_page()
        to_payment(page, base, "en", "EUR")
        pay_url = page.url
    finally:
        with_js.close()
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(pay_url)
        expect(page.locator("#sepa-mandate")).to_be_visible()
        # (Chromium parses <noscript> as if scripts ran when they are only switched
        # off for the page, so the notice is checked in the markup.)
        assert "Payment needs JavaScript" in page.locator("noscript").inner_html()
    finally:
        context.close()
