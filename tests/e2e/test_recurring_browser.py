"""Monthly and annual support, currencies, Russian and the amount limits, in a real browser.

Headless Chromium drives the live app; the pay page loads the simulator's mock
Stripe.js, which saves the payment method (confirmSetup) or authenticates the
first payment (handleNextAction) against the simulator over HTTP. The
thank-you page then creates the subscription on the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from donations.supporters.models import DonationStatus, Frequency, PlanStatus
from tests.e2e.conftest import PHONE
from tests.e2e.flows import (
    CARD_3DS,
    CARD_OK,
    EXPECT_TIMEOUT,
    IBAN_OK,
    PAY_URL,
    THANKS_URL,
    choose,
    choose_on_ask,
    donations,
    email_rows,
    enter_card,
    fill_details,
    label_texts,
    normalise,
    plain_text,
    plans,
    poll,
    subjects,
    three_d_secure,
    unique_email,
    watch_for_script_errors,
)
from tests.harness import LiveServer, Mailbox

pytestmark = pytest.mark.e2e

PLAN_THANKS = "Thank you for becoming a supporter!"
CHARGED_VISA = "We charged {amount} to Visa •••• {last4}."


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=EXPECT_TIMEOUT)


@pytest.fixture
def base(live_server: LiveServer) -> str:
    return str(live_server.url)


@pytest.fixture
def page(page: Page) -> Iterator[Page]:
    errors = watch_for_script_errors(page)
    yield page
    assert errors == [], f"script errors in the page: {errors}"


def give_button(page: Page, label: str = "Give $10.00") -> None:
    button = page.get_by_role("button", name=label, exact=True)
    expect(button).to_be_enabled()
    button.click()


def start_plan(page: Page, base: str, frequency: str, currency: str = "USD") -> str:
    """Ask → details → the pay page in setup mode; returns the email used."""
    email = unique_email()
    choose(page, base, frequency=frequency, currency=currency)
    wording = {"Monthly": "every month", "Annual": "every year"}[frequency]
    symbol = {"USD": "$", "EUR": "€"}[currency]
    expect(page.locator("#gift-summary")).to_have_text(f"{symbol}10.00 {wording}")
    fill_details(page, email)
    expect(page.locator("#payment-form")).to_have_attribute("data-mode", "setup")
    expect(page.get_by_label("Card number")).to_be_visible()
    return email


def expect_plan_thanks(page: Page, charged: str, every: str) -> None:
    expect(page).to_have_url(THANKS_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text(PLAN_THANKS)
    expect(page.locator("#charged")).to_have_text(charged)
    expect(page.locator("#next")).to_contain_text(every)


def wait_for_subjects(mailbox: Mailbox, *wanted: str, timeout: float = 15.0) -> list[str]:
    """Wait until a message whose subject starts with each of ``wanted`` has arrived."""

    def arrived() -> list[str] | None:
        got = subjects(mailbox.messages)
        return got if all(any(s.startswith(w) for s in got) for w in wanted) else None

    return list(poll(arrived, f"emails {wanted}", timeout))


# -- monthly and annual by card ----------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "every", "interval"),
    [("Monthly", "every month", Frequency.MONTHLY), ("Annual", "every year", Frequency.ANNUAL)],
)
def test_plan_by_card(
    page: Page,
    base: str,
    app: Flask,
    mailbox: Mailbox,
    frequency: str,
    every: str,
    interval: Frequency,
) -> None:
    email = start_plan(page, base, frequency)
    # Dollars: no method choice, only the card.
    expect(page.get_by_role("radio", name="SEPA Direct Debit")).to_be_hidden()
    enter_card(page, CARD_OK)
    give_button(page)

    expect_plan_thanks(
        page,
        CHARGED_VISA.format(amount="$10.00", last4="4242"),
        f"You will be charged $10.00 {every}.",
    )

    (plan,) = plans(app)
    assert plan.status is PlanStatus.ACTIVE
    assert (plan.frequency, plan.amount, plan.currency) == (interval, 1000, "USD")
    assert (plan.stripe_subscription_id or "").startswith("sub_")
    assert plan.next_renewal_at is not None
    (first,) = donations(app)
    assert (first.recurring_plan_id, first.status) == (plan.id, DonationStatus.SUCCEEDED)
    assert (first.amount, first.currency, first.card_last4) == (1000, "USD", "4242")

    welcome = f"Welcome: your {interval.value} support of $10.00"
    wait_for_subjects(mailbox, "Your receipt: $10.00", welcome)
    assert all(m["To"].addresses[0].addr_spec == email for m in mailbox.messages)

    # The thank-you page again (a refresh): nothing more is created or sent.
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text(PLAN_THANKS)
    assert len(plans(app)) == 1
    assert len(donations(app)) == 1
    assert len(email_rows(app, "receipt")) == 1
    assert len(email_rows(app, "welcome")) == 1


# -- monthly by SEPA Direct Debit: pending until the debit settles ------------------------


def test_monthly_by_sepa_receipt_only_after_settlement(
    page: Page, base: str, app: Flask, mailbox: Mailbox
) -> None:
    email = start_plan(page, base, "Monthly", currency="EUR")
    sepa = page.get_by_role("radio", name="SEPA Direct Debit")
    expect(sepa).to_be_visible()
    expect(page.get_by_role("radio", name="Card", exact=True)).to_be_checked()
    # The mandate is for SEPA only: it shows once SEPA is chosen.
    expect(page.locator("#sepa-mandate")).to_be_hidden()
    sepa.check()
    expect(page.locator("#sepa-mandate")).to_be_visible()
    expect(page.get_by_label("Card number")).to_be_hidden()
    page.get_by_label("IBAN").fill(IBAN_OK)
    give_button(page, "Give €10.00")

    expect(page).to_have_url(THANKS_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text(PLAN_THANKS)
    expect(page.locator("#charged")).to_have_text(
        "Your bank is processing the first payment of €10.00. "
        f"We will email your receipt to {email} once it has gone through."
    )
    expect(page.locator("#next")).to_contain_text("You will be charged €10.00 every month.")
    # The debit takes a while (about a second here): no "paid" receipt yet.
    assert not any(s.startswith("Your receipt") for s in subjects(mailbox.messages))
    assert email_rows(app, "receipt") == []

    # The simulator settles the debit; its webhook reaches the app; then the receipt.
    wait_for_subjects(mailbox, "Your receipt: €10.00")
    (first,) = donations(app)
    assert first.status is DonationStatus.SUCCEEDED
    assert first.method == "sepa_debit"
    assert (first.amount, first.currency) == (1000, "EUR")
    (receipt,) = email_rows(app, "receipt")
    assert first.succeeded_at is not None
    assert receipt.created_at >= first.succeeded_at

    page.reload()
    expect(page.locator("#charged")).to_have_text("We charged €10.00.")


# -- 3D Secure when saving the card and on the first payment -------------------------------


def test_three_d_secure_on_the_first_payment_of_a_plan(
    page: Page, base: str, app: Flask, mailbox: Mailbox
) -> None:
    start_plan(page, base, "Monthly")
    enter_card(page, CARD_3DS)
    give_button(page)

    # Saving the card asks the bank first.
    dialog = three_d_secure(page)
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Complete authentication").click()

    # The subscription exists, but its first payment waits for the reader's bank:
    # the thank-you page sends the browser back to confirm it.
    expect(page).to_have_url(PAY_URL)
    form = page.locator("#payment-form")
    expect(form).to_have_attribute("data-mode", "authenticate")
    assert (form.get_attribute("data-client-secret") or "").startswith("pi_")
    expect(page.get_by_label("Card number")).to_have_count(0)
    (plan,) = plans(app)
    assert plan.status is PlanStatus.INCOMPLETE
    assert not any(s.startswith("Your receipt") for s in subjects(mailbox.messages))

    page.get_by_role("button", name="Confirm payment").click()
    dialog = three_d_secure(page)
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Complete authentication").click()

    expect_plan_thanks(
        page,
        CHARGED_VISA.format(amount="$10.00", last4="3155"),
        "You will be charged $10.00 every month.",
    )
    (plan,) = plans(app)
    assert plan.status is PlanStatus.ACTIVE
    (first,) = donations(app)
    assert first.status is DonationStatus.SUCCEEDED
    wait_for_subjects(mailbox, "Your receipt: $10.00", "Welcome: your monthly support")


# -- currencies -------------------------------------------------------------------------------


def amount_names(page: Page) -> list[str]:
    """The accessible names of the amount choices the reader can see."""
    return label_texts(page.get_by_role("group", name="Amount").get_by_role("radio"))


def test_switching_the_currency(page: Page, base: str) -> None:
    page.goto(f"{base}/support")
    expect(page.get_by_role("radio", name="Monthly", exact=True)).to_be_checked()
    expect(page.locator("#currency")).to_have_value("USD")
    assert amount_names(page) == ["$5.00", "$10.00", "$20.00", "$50.00"]

    page.locator("#currency").select_option("EUR")
    expect(page.get_by_role("radio", name="€10.00", exact=True)).to_be_checked()
    assert amount_names(page) == ["€5.00", "€10.00", "€20.00", "€50.00"]
    expect(page.get_by_role("radio", name="$10.00", exact=True)).to_have_count(0)
    expect(page.get_by_role("group", name="Amount").locator(".hint")).to_have_text(
        "Between €2.00 and €1,000.00."
    )

    page.locator("label", has_text=re.compile(r"^€20\.00$")).click()
    page.get_by_role("button", name="Continue", exact=True).click()
    expect(page.locator("#gift-summary")).to_have_text("€20.00 every month")
    expect(page.locator(".methods")).to_contain_text("SEPA Direct Debit")

    # Back to the ask with "Change": the euros are kept.
    page.get_by_role("link", name="Change").click()
    expect(page.locator("#currency")).to_have_value("EUR")
    expect(page.get_by_role("radio", name="€20.00", exact=True)).to_be_checked()


# -- Russian, end to end ------------------------------------------------------------------------


def test_russian_end_to_end(page: Page, base: str, app: Flask, mailbox: Mailbox) -> None:
    page.set_viewport_size(PHONE)
    page.goto(f"{base}/support")
    page.get_by_role("link", name="Русский").click()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Независимой журналистике нужна ваша поддержка"
    )
    choose_on_ask(page, frequency="Разово", amount="10", currency="USD")
    page.get_by_role("button", name="Продолжить", exact=True).click()

    summary = page.locator("#gift-summary")
    expect(summary).to_be_visible()
    assert normalise(summary.inner_text()) == "10,00 $ разово"
    email = unique_email()
    fill_details(
        page,
        email,
        name="Анна Читатель",
        email_label="Электронная почта",
        name_label="Имя",
        submit_label="Перейти к оплате",
    )
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    enter_card(page, CARD_OK)
    pay = page.locator("#pay-button")
    assert normalise(pay.inner_text()) == "Пожертвовать 10,00 $"
    pay.click()

    expect(page).to_have_url(THANKS_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text("Спасибо за вашу поддержку!")
    charged = normalise(page.locator("#charged").inner_text())
    assert charged == "Мы списали 10,00 $ с карты Visa •••• 4242."
    expect(page.locator(".thanks")).to_contain_text(
        "Это разовое пожертвование: больше никаких списаний не будет."
    )

    (subject,) = wait_for_subjects(mailbox, "Ваша квитанция")
    assert subject == "Ваша квитанция: 10,00 $ в поддержку нашей журналистики"
    (message,) = mailbox.messages
    assert message["To"].addresses[0].addr_spec == email
    body = plain_text(message)
    assert "Здравствуйте, Анна Читатель!" in body
    assert "Спасибо за ваше пожертвование! Это ваша квитанция." in body
    assert "Это разовое пожертвование: больше никаких списаний не будет." in body
    (row,) = email_rows(app, "receipt")
    assert row.locale == "ru"
    (donation,) = donations(app)
    assert (donation.locale, donation.status) == ("ru", DonationStatus.SUCCEEDED)


# -- amounts outside the limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        pytest.param("1.50", "The smallest gift is $2.00.", id="below-minimum"),
        pytest.param("1000.01", "The largest gift online is $1,000.00.", id="above-maximum"),
    ],
)
def test_monthly_amounts_outside_the_limits_are_refused(
    page: Page, base: str, app: Flask, amount: str, message: str
) -> None:
    choose(page, base, frequency="Monthly", amount=amount, currency="USD")

    # Still the ask, with the reason where the reader (and a screen reader) finds it.
    errors = page.get_by_role("alert")
    expect(errors).to_have_text(message)
    expect(errors).to_be_visible()
    custom = page.get_by_label("Other amount")
    expect(custom).to_have_attribute("aria-invalid", "true")
    expect(custom).to_have_attribute("aria-describedby", "custom_amount-errors")
    expect(custom).to_have_accessible_description(message)
    expect(page.get_by_role("radio", name="Monthly", exact=True)).to_be_checked()
    expect(page.get_by_role("button", name="Continue to payment")).to_have_count(0)
    assert plans(app) == []
    assert donations(app) == []
