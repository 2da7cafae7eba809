"""Changing one's own plan in /manage, through the simulator: amount, interval, the card,
and paying a past-due plan now -- with what Stripe records and what the ledger records."""

from __future__ import annotations

import re

from flask_babel import refresh
from sqlalchemy import func, select

from donations.db import db
from donations.mail.models import EmailMessage
from donations.money import Money
from donations.staff.models import AuditEntry
from donations.supporters.models import Donation, DonationStatus, PlanStatus, RecurringPlan
from tests.harness import signed_event
from tests.manage.flows import csrf_token, sign_in
from tests.payments.stripe_flows import fail_future_charges, renewals, subscribe
from tests.support.test_checkout import client_secret_of


def squash(text: str) -> str:
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"[\s\u00a0\u202f]+", " ", text)


def signed_in_plan(client, simulator, mailbox, email="member@example.org", amount="10"):
    plan = subscribe(client, simulator, amount=amount, email=email)
    sign_in(client, mailbox, email)
    return plan


def review(client, plan_id: int, amount: str, frequency: str):
    page = client.get(f"/manage/plans/{plan_id}/change")
    assert page.status_code == 200, page.text
    return client.post(
        f"/manage/plans/{plan_id}/change",
        data={"csrf_token": csrf_token(page.text), "amount": amount, "frequency": frequency},
    )


def confirm(client, plan_id: int, reviewed: str):
    fields = dict(
        re.findall(r'<input type="hidden" name="(amount|frequency)" value="([^"]*)"', reviewed)
    )
    return client.post(
        f"/manage/plans/{plan_id}/change/confirm",
        data={"csrf_token": csrf_token(reviewed), **fields},
    )


def stripe_item(simulator, plan: RecurringPlan) -> dict:
    subscription = simulator.api("GET", f"/v1/subscriptions/{plan.stripe_subscription_id}")
    (item,) = subscription["items"]["data"]
    return dict(item)


def fresh(plan: RecurringPlan) -> RecurringPlan:
    db.session.expire_all()
    found = db.session.get(RecurringPlan, plan.id)
    assert found is not None
    return found


def test_raising_the_amount_from_the_next_payment(client, ctx, simulator, mailbox) -> None:
    plan = signed_in_plan(client, simulator, mailbox)
    account = client.get("/manage/account").text
    assert f'href="/manage/plans/{plan.id}/change"' in account
    period_end = stripe_item(simulator, plan)["current_period_end"]

    reviewed = review(client, plan.id, "25", "monthly")
    assert reviewed.status_code == 200, reviewed.text
    shown = squash(reviewed.text)
    assert "$10.00, monthly" in shown
    assert "From your next payment $25.00, monthly" in shown
    assert "Then $25.00 every month. Nothing is charged now." in shown
    assert "Next payment" in shown
    # Reviewing changes nothing, at Stripe or in the ledger.
    assert stripe_item(simulator, plan)["price"]["unit_amount"] == 1000
    assert fresh(plan).amount == 1000

    mailbox.messages.clear()
    done = confirm(client, plan.id, reviewed.text)
    assert done.status_code == 303, done.text
    item = stripe_item(simulator, plan)
    assert (item["price"]["unit_amount"], item["price"]["recurring"]["interval"]) == (2500, "month")
    assert item["current_period_end"] == period_end
    plan = fresh(plan)
    assert (plan.amount, str(plan.frequency), plan.status) == (2500, "monthly", PlanStatus.ACTIVE)
    assert plan.stripe_price_id == item["price"]["id"]
    # Nothing was charged at the change: still one payment.
    assert len(renewals(plan)) == 1
    page = squash(client.get("/manage/account").text)
    assert "Your support is changed" in page
    assert "Monthly: $25.00" in page
    # The same confirmation sent again (a double click, the back button) changes nothing more.
    again = confirm(client, plan.id, reviewed.text)
    assert again.status_code == 400
    assert "That is what you give already." in squash(again.text)
    assert stripe_item(simulator, plan)["price"]["id"] == plan.stripe_price_id

    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "manage.plan_changed"))
    assert entry is not None
    assert entry.supporter_id == plan.supporter_id
    assert entry.details["by"] == "supporter (manage)"
    assert entry.details["previous_amount"] == {"amount": 1000, "currency": "USD"}
    assert entry.details["amount"] == {"amount": 2500, "currency": "USD"}
    (message,) = mailbox.wait_for(1)
    assert "Your support is now $25.00 a month" in str(message["Subject"])
    assert "You will be charged $25.00 every month." in message.get_body(("plain",)).get_content()

    # The next renewal charges the new amount, in full (no proration credit).
    invoice = simulator.renew(plan.stripe_subscription_id)
    assert (invoice["amount_due"], invoice["amount_paid"]) == (2500, 2500)


def test_monthly_to_annual_keeps_the_next_payment_date(client, ctx, simulator, mailbox) -> None:
    plan = signed_in_plan(client, simulator, mailbox)
    period_end = stripe_item(simulator, plan)["current_period_end"]
    reviewed = review(client, plan.id, "120", "annual")
    assert reviewed.status_code == 200, reviewed.text
    assert "Then $120.00 every year. Nothing is charged now." in squash(reviewed.text)
    confirmed = confirm(client, plan.id, reviewed.text)
    assert confirmed.status_code == 303
    assert confirmed.headers["Location"] == f"/manage/account#plan-{plan.id}"

    item = stripe_item(simulator, plan)
    assert (item["price"]["unit_amount"], item["price"]["recurring"]["interval"]) == (12000, "year")
    assert item["current_period_end"] == period_end
    plan = fresh(plan)
    assert (plan.amount, str(plan.frequency)) == (12000, "annual")
    assert int(plan.next_renewal_at.timestamp()) == period_end
    assert len(renewals(plan)) == 1  # nothing charged at the change
    account = squash(client.get("/manage/account").text)
    assert "Your support is changed. We have emailed you a confirmation." in account
    assert f"Annual: {Money(plan.amount, plan.currency).format()}" in account

    invoice = simulator.renew(plan.stripe_subscription_id)
    assert invoice["amount_paid"] == 12000


def test_limits_are_refused_and_change_nothing(client, ctx, simulator, mailbox) -> None:
    plan = signed_in_plan(client, simulator, mailbox)
    price = stripe_item(simulator, plan)["price"]["id"]
    for amount, frequency, message in [
        ("1.50", "monthly", "The smallest gift is $2.00."),
        ("1000.01", "monthly", "The largest gift online is $1,000.00."),
        ("5", "annual", "The smallest gift is $10.00."),
        ("abc", "monthly", "Enter an amount such as"),
        ("10", "weekly", "Choose how often you would like to give."),
        ("10", "monthly", "That is what you give already."),
        # NUL bytes: refused before the view (PostgreSQL could not store them).
        ("1\x00", "monthly", ""),
    ]:
        answer = review(client, plan.id, amount, frequency)
        assert answer.status_code == 400, (amount, answer.text)
        assert message in squash(answer.text), (amount, squash(answer.text))
    # A tampered confirm form is checked again too.
    page = client.get(f"/manage/plans/{plan.id}/change")
    tampered = client.post(
        f"/manage/plans/{plan.id}/change/confirm",
        data={"csrf_token": csrf_token(page.text), "amount": "100000", "frequency": "monthly"},
    )
    assert tampered.status_code == 400
    assert "The largest gift online" in squash(tampered.text)
    # Without the CSRF token: refused.
    assert (
        client.post(
            f"/manage/plans/{plan.id}/change/confirm", data={"amount": "20", "frequency": "monthly"}
        ).status_code
        == 400
    )
    assert stripe_item(simulator, plan)["price"]["id"] == price
    plan = fresh(plan)
    assert (plan.amount, str(plan.frequency)) == (1000, "monthly")
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "manage.plan_changed")
        )
        == 0
    )


def test_another_supporters_plan_is_404(client, ctx, simulator, mailbox) -> None:
    theirs = subscribe(client, simulator, email="other@example.org")
    signed_in_plan(client, simulator, mailbox)
    for path in (
        f"/manage/plans/{theirs.id}/change",
        f"/manage/plans/{theirs.id}/payment-method",
        f"/manage/plans/{theirs.id}/payment-method/done",
        "/manage/plans/999999/change",
    ):
        assert client.get(path).status_code == 404, path
    page = client.get("/manage/account")
    answer = client.post(
        f"/manage/plans/{theirs.id}/change/confirm",
        data={"csrf_token": csrf_token(page.text), "amount": "50", "frequency": "monthly"},
    )
    assert answer.status_code == 404
    assert stripe_item(simulator, theirs)["price"]["unit_amount"] == 1000
    assert fresh(theirs).amount == 1000


def test_signed_out_goes_to_sign_in(client, ctx) -> None:
    answer = client.get("/manage/plans/1/change")
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/manage")


def replace_card(client, simulator, plan: RecurringPlan, card: str):
    page = client.get(f"/manage/plans/{plan.id}/payment-method")
    assert page.status_code == 200, page.text
    assert 'data-mode="setup"' in page.text
    secret = client_secret_of(page.text)
    assert secret.startswith("seti_")
    return page, secret


def test_replacing_the_card_with_a_3d_secure_card(client, ctx, simulator, mailbox) -> None:
    plan = signed_in_plan(client, simulator, mailbox)
    old_method = simulator.api("GET", f"/v1/subscriptions/{plan.stripe_subscription_id}")[
        "default_payment_method"
    ]
    _page, secret = replace_card(client, simulator, plan, "4000002500003155")
    # Visiting again reuses the open SetupIntent.
    assert client_secret_of(client.get(f"/manage/plans/{plan.id}/payment-method").text) == secret
    assert simulator.confirm_setup(secret, "4000002500003155").json()["status"] == "requires_action"
    # Not authenticated yet: nothing saved, back to the page.
    early = client.get(f"/manage/plans/{plan.id}/payment-method/done")
    assert early.status_code == 303
    assert early.headers["Location"].endswith(f"/manage/plans/{plan.id}/payment-method")
    assert simulator.complete_setup_authentication(secret).json()["status"] == "succeeded"

    done = client.get(f"/manage/plans/{plan.id}/payment-method/done")
    assert done.status_code == 303, done.text
    subscription = simulator.api("GET", f"/v1/subscriptions/{plan.stripe_subscription_id}")
    setup = simulator.api("GET", f"/v1/setup_intents/{secret.split('_secret_')[0]}")
    assert subscription["default_payment_method"] == setup["payment_method"] != old_method
    customer = simulator.api("GET", f"/v1/customers/{plan.supporter.stripe_customer_id}")
    assert customer["invoice_settings"]["default_payment_method"] == setup["payment_method"]
    account = squash(client.get("/manage/account").text)
    assert "Your new card is saved" in account
    assert "Visa •••• 3155" in account, re.findall(r"Paid with.{0,60}", account)
    plan = fresh(plan)
    assert plan.status is PlanStatus.ACTIVE
    assert len(renewals(plan)) == 1  # nothing charged
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "manage.payment_method_replaced")
        )
        == 1
    )


def past_due(client, simulator, plan: RecurringPlan) -> dict:
    fail_future_charges(simulator, plan)
    invoice = simulator.renew(plan.stripe_subscription_id)
    assert invoice["status"] == "open"
    body, headers = signed_event(
        "invoice.payment_failed", {"id": invoice["id"], "object": "invoice"}
    )
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 200
    assert fresh(plan).status is PlanStatus.PAST_DUE
    return dict(invoice)


def test_past_due_plan_paid_now_with_the_new_card(client, ctx, simulator, mailbox) -> None:
    plan = signed_in_plan(client, simulator, mailbox)
    invoice = past_due(client, simulator, plan)
    account = client.get("/manage/account").text
    assert "Pay now with a new card" in account
    assert f'href="/manage/plans/{plan.id}/change"' not in account
    unchangeable = client.get(f"/manage/plans/{plan.id}/change")
    assert unchangeable.status_code == 303
    assert unchangeable.headers["Location"] == f"/manage/account#plan-{plan.id}"
    assert "This plan cannot be changed now." in squash(client.get("/manage/account").text)

    page, secret = replace_card(client, simulator, plan, "4242424242424242")
    assert "we will charge that payment to it straight away" in squash(page.text)
    assert simulator.confirm_setup(secret).json()["status"] == "succeeded"
    done = client.get(f"/manage/plans/{plan.id}/payment-method/done")
    assert done.status_code == 303, done.text
    assert done.headers["Location"] == f"/manage/account#plan-{plan.id}"
    assert "the payment that failed is now paid" in squash(client.get("/manage/account").text)

    assert simulator.api("GET", f"/v1/invoices/{invoice['id']}")["status"] == "paid"
    plan = fresh(plan)
    assert plan.status is PlanStatus.ACTIVE
    renewal = db.session.scalar(select(Donation).where(Donation.stripe_invoice_id == invoice["id"]))
    assert renewal is not None
    assert renewal.status is DonationStatus.SUCCEEDED
    # Loading the page again pays nothing twice.
    client.get(f"/manage/plans/{plan.id}/payment-method/done")
    assert len(renewals(plan)) == 2


def test_past_due_paid_now_with_a_card_the_bank_must_confirm(
    client, ctx, simulator, mailbox
) -> None:
    plan = signed_in_plan(client, simulator, mailbox)
    invoice = past_due(client, simulator, plan)
    _, secret = replace_card(client, simulator, plan, "4000002500003155")
    assert simulator.confirm_setup(secret, "4000002500003155").json()["status"] == "requires_action"
    assert simulator.complete_setup_authentication(secret).json()["status"] == "succeeded"
    page = client.get(f"/manage/plans/{plan.id}/payment-method/done")
    if page.status_code == 200:
        # The invoice's payment waits for the bank: the page confirms it in place.
        assert 'data-mode="authenticate"' in page.text
        intent_secret = client_secret_of(page.text)
        assert simulator.authenticate(intent_secret, True).json()["status"] == "succeeded"
        page = client.get(f"/manage/plans/{plan.id}/payment-method/done")
    assert page.status_code == 303, page.text
    assert simulator.api("GET", f"/v1/invoices/{invoice['id']}")["status"] == "paid"
    assert fresh(plan).status is PlanStatus.ACTIVE


def test_changes_are_rate_limited(client, ctx, simulator, mailbox, monkeypatch, app) -> None:
    from tests.harness import change_settings

    change_settings(monkeypatch, app, manage_change_rate_limit="2 per hour")
    plan = signed_in_plan(client, simulator, mailbox)
    answers = [client.get(f"/manage/plans/{plan.id}/payment-method").status_code for _ in range(3)]
    assert answers == [200, 200, 429]


def test_the_russian_pages(client, ctx, simulator, mailbox) -> None:
    plan = signed_in_plan(client, simulator, mailbox)
    refresh()  # the test's app context (ctx) keeps the locale Flask-Babel chose before
    page = client.get(f"/manage/plans/{plan.id}/change?lang=ru")
    assert "Изменить вашу поддержку" in page.text
    reviewed = client.post(
        f"/manage/plans/{plan.id}/change?lang=ru",
        data={"csrf_token": csrf_token(page.text), "amount": "12,50", "frequency": "monthly"},
    )
    assert reviewed.status_code == 200, reviewed.text
    assert "Подтвердите изменение" in reviewed.text
    assert "12,50" in squash(reviewed.text)
    assert db.session.scalar(select(func.count()).select_from(EmailMessage)) >= 1
