"""The whole of "Manage my support" on a phone in Russian, as one supporter goes through it.

A monthly supporter follows the link in their receipt, raises their amount,
replaces their card with a 3D Secure one, pauses for a month, resumes,
downloads last year's giving statement, then cancels after declining the
offers. After every step the page, the simulator (Stripe) and the ledger
are compared, and the step is on the supporter's timeline in the back
office (the audit log, with the supporter as its actor).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from pypdf import PdfReader
from sqlalchemy import select

from donations.db import commit, db
from donations.staff.models import AuditEntry
from donations.supporters.models import PlanStatus, RecurringPlan
from tests import factories
from tests.e2e.conftest import PHONE
from tests.e2e.flows import (
    CARD_3DS,
    EXPECT_TIMEOUT,
    enter_card,
    normalise,
    poll,
    three_d_secure,
    unique_email,
    watch_for_script_errors,
)
from tests.harness import LiveServer, Mailbox, Simulator
from tests.manage.flows import links_in
from tests.payments.stripe_flows import subscribe

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=EXPECT_TIMEOUT)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A Russian phone."""
    context = browser.new_context(viewport=PHONE, locale="ru-RU", accept_downloads=True)
    try:
        page = context.new_page()
        errors = watch_for_script_errors(page)
        yield page
        assert errors == [], f"script errors in the page: {errors}"
    finally:
        context.close()


class Ledger:
    """What the ledger and the audit log hold for one plan, read afresh each time."""

    def __init__(self, app: Flask, plan_id: int) -> None:
        self.app, self.plan_id = app, plan_id

    def plan(self) -> RecurringPlan:
        with self.app.app_context():
            plan = db.session.get(RecurringPlan, self.plan_id)
            assert plan is not None
            db.session.expunge(plan)
            return plan

    def actions(self) -> list[str]:
        plan = self.plan()
        with self.app.app_context():
            return list(
                db.session.scalars(
                    select(AuditEntry.action)
                    .where(AuditEntry.supporter_id == plan.supporter_id)
                    .where(AuditEntry.actor.like("supporter%"))
                    .order_by(AuditEntry.id)
                )
            )


def test_a_supporter_manages_their_support_from_the_receipt_on_a_russian_phone(
    page: Page, live_server: LiveServer, app: Flask, simulator: Simulator, mailbox: Mailbox
) -> None:
    base = str(live_server.url)
    email = unique_email()
    last_year = datetime.now(UTC).year - 1
    with app.app_context():
        plan = subscribe(app.test_client(), simulator, amount="7", email=email)
        plan_id, subscription_id = plan.id, str(plan.stripe_subscription_id)
        # A gift of last year, for the statement.
        owner = plan.supporter
        factories.donation(
            owner, 2500, fee=103, method="card", succeeded_at=datetime(last_year, 6, 15, tzinfo=UTC)
        )
        commit()
        db.session.remove()
    ledger = Ledger(app, plan_id)

    def at_stripe() -> dict:
        return simulator.api("GET", f"/v1/subscriptions/{subscription_id}")

    # 1. The link in the receipt signs them in.
    receipt = poll(
        lambda: [
            m for m in mailbox.messages if email in str(m["To"]) and links_in(m, "/manage/e/")
        ],
        "the receipt with its manage link",
    )[0]
    page.goto(base + links_in(receipt, "/manage/e/")[0])
    expect(page).to_have_url(re.compile(r"/manage/account$"))
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    card = page.locator(f"#plan-{plan_id}")
    assert normalise(card.locator(".plan-amount").inner_text()) == "7,00 $"
    assert "manage.signed_in" in ledger.actions()

    # 2. A higher amount, from the next payment.
    page.locator(f"#change-plan-{plan_id}").click()
    page.locator("#change-amount").fill("12")
    page.locator("#change-review").click()
    assert normalise(page.locator("#change-to").inner_text()).startswith("12,00 $")
    page.locator("#change-confirm").click()
    expect(page).to_have_url(re.compile(r"/manage/account#plan-\d+$"))
    expect(card.locator(".plan-amount")).to_have_text(re.compile(r"12,00\s\$"))
    assert at_stripe()["items"]["data"][0]["price"]["unit_amount"] == 1200
    assert ledger.plan().amount == 1200
    assert ledger.actions()[-1] == "manage.plan_changed"

    # 3. A new card that the bank confirms (3D Secure), saved in the page.
    page.locator(f"#replace-method-{plan_id}").click()
    enter_card(page, CARD_3DS)
    page.locator("#pay-button").click()
    dialog = three_d_secure(page)
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Complete authentication").click()
    # The page can say so before the server has finished (its URL is already
    # the one it returns to): wait for the ledger, then compare it with Stripe.
    expect(card).to_contain_text("3155")
    poll(lambda: ledger.plan().card_last4 == "3155", "the ledger to record the new card")
    expect(page).to_have_url(re.compile(r"/manage/account#plan-\d+$"))
    method = simulator.api("GET", f"/v1/payment_methods/{at_stripe()['default_payment_method']}")
    assert method["card"]["last4"] == "3155"
    assert ledger.actions()[-1] == "manage.payment_method_replaced"

    # 4. A month's pause, confirmed by Stripe, then resumed.
    page.locator(f"#pause-link-{plan_id}").click()
    page.locator("#pause-1").check()
    page.locator("#pause-submit").click()
    expect(page).to_have_url(re.compile(r"/manage/account#plans$"))
    paused = at_stripe()["pause_collection"]
    assert paused["behavior"] == "void"
    stored = ledger.plan()
    assert stored.paused_until is not None
    assert int(stored.paused_until.replace(tzinfo=UTC).timestamp()) == paused["resumes_at"]
    expect(card.locator(".plan-paused")).to_be_visible()
    assert ledger.actions()[-1] == "manage.plan_paused"
    page.locator(f"#resume-{plan_id}").click()
    expect(card.locator(".plan-paused")).to_have_count(0)
    assert at_stripe()["pause_collection"] is None
    assert ledger.plan().paused_until is None
    assert ledger.actions()[-1] == "manage.plan_resumed"

    # 5. Last year's statement: the gift of last year, in Russian.
    link = page.locator(".statement-pdf-link", has_text=str(last_year))
    with page.expect_download() as download:
        link.click()
    pdf = PdfReader(BytesIO(download.value.path().read_bytes()))
    text = normalise("\n".join(p.extract_text() for p in pdf.pages))
    assert str(last_year) in text
    assert "25,00 $" in text
    assert "12,00 $" not in text  # this year's plan is not last year's giving

    # 6. Cancel: a reason, the offers declined, the end confirmed by Stripe.
    page.locator(f"#cancel-link-{plan_id}").click()
    page.locator("#cancel-form input[name=reason]").first.check()
    page.locator("#timing-period-end").check()
    page.locator("#cancel-continue").click()
    expect(page.locator("#offer-pause")).to_be_visible()
    page.locator("#offers-decline").click()
    expect(card.locator(".plan-ends")).to_be_visible()
    stripe_side = at_stripe()
    assert (stripe_side["cancel_at_period_end"], stripe_side["status"]) == (True, "active")
    stored = ledger.plan()
    assert (stored.cancel_at_period_end, stored.status) == (True, PlanStatus.ACTIVE)
    # Every step is on the supporter's timeline, in order, once.
    assert ledger.actions() == [
        "manage.signed_in",
        "manage.plan_changed",
        "manage.payment_method_replaced",
        "manage.plan_paused",
        "manage.plan_resumed",
        "manage.statement_downloaded",
        "manage.cancellation_started",
        "manage.plan_cancelled",
    ]
