"""Notices before a plan charges: the annual renewal reminder and the expiring card."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from donations.db import commit, db
from donations.mail.models import EmailMessage
from donations.payments import notices
from donations.payments.models import StripeEvent
from donations.payments.tasks import send_plan_notices_task
from donations.supporters.models import PlanStatus, RecurringPlan
from tests.harness import Simulator, signed_event
from tests.manage.flows import links_in, text_of
from tests.payments.stripe_flows import WEBHOOK, event_row, stripe_api, wait_until
from tests.support.test_checkout import client_secret_of, details_form


@pytest.fixture
def quiet(simulator) -> Iterator[None]:
    """The simulator's own events never reach the app: the test delivers each one."""
    with simulator.muted():
        yield


def confirm_card(simulator: Simulator, client_secret: str, exp_month: str, exp_year: str) -> None:
    intent_id = client_secret.split("_secret_")[0]
    confirmed = requests.post(
        f"{simulator.url}/v1/setup_intents/{intent_id}/confirm",
        json={
            "key": "pk_test_local",
            "client_secret": client_secret,
            "payment_method_data": {
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": exp_month,
                    "exp_year": exp_year,
                    "cvc": "123",
                },
            },
        },
        timeout=10,
    )
    assert confirmed.json()["status"] == "succeeded", confirmed.text


def start_plan(
    client,
    simulator: Simulator,
    frequency: str,
    email: str,
    card_expiry: tuple[str, str] = ("12", "2034"),
) -> RecurringPlan:
    """A plan through the checkout, its first payment made with a card of this expiry."""
    form = details_form(client, amount="60", currency="USD", frequency=frequency)
    started = client.post("/support/checkout", data={**form, "email": email})
    assert started.status_code == 303, started.text
    pay_url = started.headers["Location"]
    confirm_card(simulator, client_secret_of(client.get(pay_url).text), *card_expiry)
    assert client.get(pay_url.replace("/pay/", "/thanks/")).status_code == 200
    db.session.expire_all()
    plan = db.session.scalar(select(RecurringPlan).order_by(RecurringPlan.id.desc()))
    assert plan is not None
    assert plan.status is PlanStatus.ACTIVE
    return plan


def upcoming(plan: RecurringPlan, event_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """Stripe's invoice.upcoming: a preview invoice with no id, naming the subscription."""
    return signed_event(
        "invoice.upcoming",
        {
            "object": "invoice",
            "amount_due": plan.charge_total.amount,
            "currency": plan.currency.lower(),
            "customer": plan.supporter.stripe_customer_id,
            "billing_reason": "upcoming",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": plan.stripe_subscription_id},
            },
        },
        event_id=event_id,
    )


def some_days_before_renewal(
    monkeypatch: pytest.MonkeyPatch, plan: RecurringPlan, days: int = 10
) -> datetime:
    """The notices' clock set ``days`` before the plan renews (Stripe's clock is not ours)."""
    assert plan.next_renewal_at is not None
    renewal = plan.next_renewal_at
    renewal = renewal if renewal.tzinfo else renewal.replace(tzinfo=UTC)
    now = renewal - timedelta(days=days)
    monkeypatch.setattr(notices, "utcnow", lambda: now)
    return now


def outbox(template: str) -> list[EmailMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(EmailMessage).where(EmailMessage.template == template)))


def test_renewal_notice_sent_once_for_duplicate_events_and_the_sweep(
    client, ctx, simulator, quiet, mailbox, monkeypatch
) -> None:
    plan = start_plan(client, simulator, "annual", "annual@example.org")
    some_days_before_renewal(monkeypatch, plan)
    mailbox.messages.clear()

    body, headers = upcoming(plan, event_id="evt_upcoming_once")
    for _ in range(3):  # the same delivery again and again: one stored event
        assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    assert event_row("evt_upcoming_once").processed_at is not None
    body2, headers2 = upcoming(plan)  # another event for the same renewal
    assert client.post(WEBHOOK, data=body2, headers=headers2).status_code == 200
    send_plan_notices_task.run()  # the periodic sweep finds the same plan
    send_plan_notices_task.run()

    (notice,) = outbox("renewal_notice")
    assert notice.supporter_id == plan.supporter_id
    messages = [m for m in mailbox.wait_for(1) if "renews" in str(m["Subject"])]
    assert len(messages) == 1
    text = text_of(messages[0])
    assert "$60.00" in text
    renewal = plan.next_renewal_at
    assert renewal is not None
    assert renewal.strftime("%B") in text
    assert str(renewal.year) in text
    assert links_in(messages[0], "/manage/e/"), text
    assert outbox("card_expiring") == []


def test_no_renewal_notice_outside_the_window_or_for_monthly_plans(
    client, ctx, simulator, quiet, mailbox, monkeypatch
) -> None:
    annual = start_plan(client, simulator, "annual", "early@example.org")
    some_days_before_renewal(monkeypatch, annual, days=20)  # RENEWAL_NOTICE_DAYS is 14
    body, headers = upcoming(annual)
    assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    send_plan_notices_task.run()
    assert outbox("renewal_notice") == []

    monthly = start_plan(client, simulator, "monthly", "monthly@example.org")
    some_days_before_renewal(monkeypatch, monthly, days=5)
    body, headers = upcoming(monthly)
    assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    send_plan_notices_task.run()
    assert outbox("renewal_notice") == []
    assert outbox("card_expiring") == []


def test_card_expiring_before_the_renewal_gets_a_notice_with_the_update_link(
    client, ctx, simulator, quiet, mailbox, monkeypatch
) -> None:
    plan = start_plan(client, simulator, "annual", "expiring@example.org", ("06", "2027"))
    (first,) = plan.donations
    assert (first.card_exp_month, first.card_exp_year, first.card_last4) == (6, 2027, "4242")
    assert (plan.card_exp_month, plan.card_exp_year, plan.card_last4) == (6, 2027, "4242")
    plan.locale = "ru"
    commit()
    some_days_before_renewal(monkeypatch, plan)
    mailbox.messages.clear()

    send_plan_notices_task.run()
    body, headers = upcoming(plan)
    assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    send_plan_notices_task.run()

    assert len(outbox("card_expiring")) == 1
    assert len(outbox("renewal_notice")) == 1
    received = mailbox.wait_for(2)
    (card_notice,) = [m for m in received if "4242" in text_of(m)]
    text = text_of(card_notice)
    assert "06/2027" in text
    assert "Visa •••• 4242" in text
    assert "Ваш ежегодный взнос" in text, text  # in the plan's language
    (link,) = links_in(card_notice, "/support/plan/")
    assert link.endswith("/payment-method")
    assert client.get(link).status_code == 200  # the page that takes another card
    assert links_in(card_notice, "/manage/e/")


def test_card_valid_until_the_end_of_its_month() -> None:
    assert notices.card_valid_until(6, 2027) == datetime(2027, 7, 1, tzinfo=UTC)
    assert notices.card_valid_until(12, 2027) == datetime(2028, 1, 1, tzinfo=UTC)


def test_upcoming_invoice_names_its_subscription(app) -> None:
    gateway = app.extensions["payment_gateway"]
    body = {"data": {"object": {"object": "invoice", "parent": {"subscription_details": {}}}}}
    assert gateway.upcoming_invoice_subscription(json.dumps(body)) is None
    body["data"]["object"]["parent"]["subscription_details"]["subscription"] = "sub_123"
    assert gateway.upcoming_invoice_subscription(json.dumps(body)) == "sub_123"
    assert gateway.upcoming_invoice_subscription("not json") is None


def test_no_card_notice_when_the_card_was_replaced_at_stripe(
    client, ctx, simulator, quiet, mailbox, monkeypatch
) -> None:
    plan = start_plan(client, simulator, "monthly", "replaced@example.org", ("12", "2026"))
    assert (plan.card_exp_month, plan.card_exp_year) == (12, 2026)
    # The supporter gave another card since (from /manage, say): Stripe charges that one.
    card = stripe_api(
        simulator,
        "POST",
        "/v1/payment_methods",
        type="card",
        **{
            "card[number]": "5555555555554444",
            "card[exp_month]": "3",
            "card[exp_year]": "2031",
            "card[cvc]": "123",
        },
    )
    stripe_api(
        simulator,
        "POST",
        f"/v1/payment_methods/{card['id']}/attach",
        customer=plan.supporter.stripe_customer_id,
    )
    stripe_api(
        simulator,
        "POST",
        f"/v1/subscriptions/{plan.stripe_subscription_id}",
        default_payment_method=card["id"],
    )
    some_days_before_renewal(monkeypatch, plan, days=5)

    send_plan_notices_task.run()
    send_plan_notices_task.run()
    assert outbox("card_expiring") == []
    db.session.expire_all()
    renewed = db.session.get(RecurringPlan, plan.id)
    assert renewed is not None
    assert (renewed.card_last4, renewed.card_exp_month, renewed.card_exp_year) == ("4444", 3, 2031)


def test_invoice_upcoming_from_the_simulator_sends_one_notice(
    client, ctx, simulator, live_server, mailbox, monkeypatch
) -> None:
    plan = start_plan(client, simulator, "annual", "simulated@example.org")
    some_days_before_renewal(monkeypatch, plan)
    for _ in range(2):  # two events for the one renewal, as Stripe may send
        sent = requests.post(
            f"{simulator.url}/_simulator/subscriptions/{plan.stripe_subscription_id}/upcoming",
            timeout=10,
        )
        assert sent.status_code == 200, sent.text
    wait_until(
        lambda: len([e for e in events_of("invoice.upcoming") if e.processed_at is not None]) == 2,
        timeout=20,
    )
    assert len(outbox("renewal_notice")) == 1


def events_of(event_type: str) -> list[StripeEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(StripeEvent).where(StripeEvent.type == event_type)))


def test_no_renewal_notice_for_a_plan_stripe_ends_first(
    client, ctx, simulator, quiet, mailbox, monkeypatch
) -> None:
    plan = start_plan(client, simulator, "annual", "ending@example.org")
    assert plan.next_renewal_at is not None
    ends = int(plan.next_renewal_at.replace(tzinfo=UTC).timestamp()) - 86400
    stripe_api(
        simulator, "POST", f"/v1/subscriptions/{plan.stripe_subscription_id}", cancel_at=ends
    )
    some_days_before_renewal(monkeypatch, plan)
    body, headers = upcoming(plan)  # the subscription re-read: it ends before renewing
    assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    send_plan_notices_task.run()
    db.session.expire_all()
    ending = db.session.get(RecurringPlan, plan.id)
    assert ending is not None
    assert ending.cancel_at is not None
    assert outbox("renewal_notice") == []


def test_no_notices_for_a_plan_paused_on_its_renewal(
    client, ctx, simulator, quiet, mailbox, monkeypatch
) -> None:
    plan = start_plan(client, simulator, "annual", "paused@example.org", ("06", "2027"))
    assert plan.next_renewal_at is not None
    resumes = int(plan.next_renewal_at.replace(tzinfo=UTC).timestamp()) + 30 * 86400
    stripe_api(
        simulator,
        "POST",
        f"/v1/subscriptions/{plan.stripe_subscription_id}",
        **{"pause_collection[behavior]": "void", "pause_collection[resumes_at]": resumes},
    )
    some_days_before_renewal(monkeypatch, plan)
    body, headers = upcoming(plan)
    assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    send_plan_notices_task.run()
    db.session.expire_all()
    paused = db.session.get(RecurringPlan, plan.id)
    assert paused is not None
    assert paused.is_paused
    assert outbox("renewal_notice") == []
    assert outbox("card_expiring") == []
