"""Cover-the-fee keeps its promise: with Stripe's fee taken, all of the gift reaches the newsroom.

The cover is the gross-up of the processor's price for the method and
currency (donations.payments.pricing), worked out by the server and shown
before paying; the simulator charges the same standard prices, so through
the real checkout, the payment and its webhook, net equals the gift to the
cent. An international card costs more: the ledger report shows the shortfall
(tests/staff/reports/test_fee_shortfall.py).
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from donations.db import db
from donations.money import Money
from donations.payments.pricing import STANDARD_PRICING, Price
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.ledger import LEDGER_COLUMNS, ledger_rows
from donations.supporters.models import Donation, DonationStatus, RecurringPlan
from tests.payments.stripe_flows import Gift, deliver, hidden, stale, wait_until
from tests.payments.test_ledger import confirm_sepa, settled

PRICES = [price for by_currency in STANDARD_PRICING.values() for price in by_currency.values()]


# -- the arithmetic ----------------------------------------------------------------------


@given(
    amount=st.integers(min_value=1, max_value=100_000_000),
    price=st.sampled_from(
        [*PRICES, Price(80, 0, cap=500), Price(340, 50), Price(9_999, 0), Price(0, 0)]
    ),
)
def test_the_cover_nets_exactly_the_gift_and_no_less_would(amount: int, price: Price) -> None:
    cover = price.cover(amount)
    charged = amount + cover
    assert charged - price.fee(charged) == amount
    # The smallest such cover: one minor unit less and the newsroom is short.
    assert cover == 0 or (charged - 1) - price.fee(charged - 1) < amount


def test_the_page_s_example() -> None:
    # $10.00 by card at 2.9% + 30: 1030 / 0.971 = 1060.76.. -> 1061; Stripe takes 61.
    assert STANDARD_PRICING["card"]["USD"].cover(1000) == 61
    assert STANDARD_PRICING["card"]["EUR"].cover(1000) == 41  # 1.5% + 25
    assert STANDARD_PRICING["card"]["GBP"].cover(1000) == 36  # 1.5% + 20
    assert STANDARD_PRICING["sepa_debit"]["EUR"].cover(1000) == 35  # 0.35 a debit


# -- shown before paying -----------------------------------------------------------------


def details(client, amount: str, currency: str, lang: str = "en") -> str:
    page = client.get(
        f"/support/checkout?frequency=once&amount={amount}&currency={currency}&lang={lang}"
    )
    assert page.status_code == 200, page.text
    return " ".join(page.text.replace("\u00a0", " ").replace("\u202f", " ").split())


def test_the_cover_is_shown_before_paying_in_english_and_russian(client) -> None:
    page = details(client, "10", "USD")
    assert "Add $0.61 to cover the processing fee, so all of $10.00 reaches the newsroom" in page
    russian = details(client, "10", "USD", "ru")
    assert "Добавить 0,61 $ на оплату комиссии, чтобы редакция получила все 10,00 $" in russian


def test_euros_show_the_cover_for_each_method(client) -> None:
    page = details(client, "10", "EUR")
    assert "Cover the processing fee, so all of €10.00 reaches the newsroom" in page
    assert "Add €0.41, paying by card" in page
    assert "Add €0.35, paying by SEPA Direct Debit" in page
    russian = details(client, "10", "EUR", "ru")
    assert "Оплатить комиссию, чтобы редакция получила все 10,00 €" in russian
    assert "Добавить 0,41 € при оплате картой" in russian
    assert "Добавить 0,35 € при оплате прямым дебетованием SEPA" in russian


# -- through the checkout, the payment and its webhook -------------------------------


def checkout_with_cover(
    client, amount: str, currency: str, method: str = "card", **extra: str
) -> Gift:
    page = client.get(f"/support/checkout?frequency=once&amount={amount}&currency={currency}")
    form = {
        "csrf_token": hidden(page.text, "csrf_token"),
        "attempt": hidden(page.text, "attempt"),
        "amount": hidden(page.text, "amount"),
        "frequency": "once",
        "currency": currency,
        "email": "reader@example.org",
        "cover_fee": "y",
        "cover_method": method,
        **extra,
    }
    started = client.post("/support/checkout", data=form)
    assert started.status_code == 303, started.text
    pay = client.get(started.headers["Location"])
    secret = re.search(r'data-client-secret="([^"]+)"', pay.text)
    assert secret, pay.text
    return Gift(started.headers["Location"], secret.group(1))


@pytest.mark.parametrize(
    ("currency", "amount", "method"),
    [
        ("USD", "1", "card"),
        ("USD", "10", "card"),
        ("USD", "25", "card"),
        ("USD", "99.99", "card"),
        ("USD", "1000", "card"),
        ("EUR", "5", "card"),
        ("EUR", "37.50", "card"),
        ("EUR", "250", "card"),
        ("EUR", "10", "sepa_debit"),
        ("EUR", "120", "sepa_debit"),
        ("GBP", "3", "card"),
        ("GBP", "10", "card"),
        ("GBP", "333.33", "card"),
    ],
)
def test_with_the_simulator_s_fees_net_equals_the_gift(
    client, ctx, simulator, currency: str, amount: str, method: str
) -> None:
    gift_amount = Money.from_major(amount, currency).amount
    cover = STANDARD_PRICING[method][currency].cover(gift_amount)
    gift = checkout_with_cover(client, amount, currency, method)
    pay = client.get(gift.pay_url).text
    assert f"Including {Money(cover, currency).format('en')} to cover the processing fee" in pay
    assert ("sepa-mandate" in pay) is (method == "sepa_debit")  # offered by that method only
    if method == "sepa_debit":
        assert confirm_sepa(simulator, gift, "DE89370400440532013000")["status"] == "processing"
        settled(simulator, gift)
    else:
        assert simulator.confirm(gift.client_secret).json()["amount"] == gift_amount + cover
    assert (
        deliver(client, "payment_intent.succeeded", stale(gift.intent_id, "payment_intent")) == 200
    )
    donation = gift.donation()
    assert (donation.status, donation.method) == (DonationStatus.SUCCEEDED, method)
    assert (donation.amount, donation.fee_cover_amount) == (gift_amount, cover)
    assert donation.fee is not None
    assert donation.net == gift_amount  # to the cent
    assert donation.fee == cover


def test_the_client_never_sends_the_cover(client, ctx, simulator) -> None:
    gift = checkout_with_cover(
        client, "10", "USD", "sepa_debit", fee_cover_amount="5000", fee_cover="5000"
    )
    donation = gift.donation()
    # SEPA is not offered in dollars: the cover falls back to the one method offered.
    assert (donation.fee_cover_amount, donation.method) == (61, "card")


def test_no_cover_no_shortfall(client, ctx, simulator) -> None:
    from tests.payments.stripe_flows import give

    plain = give(client, simulator, amount="10").donation()
    db.session.expire_all()
    rows = list(ledger_rows(ReportFilters(), ZoneInfo("UTC")))
    names = [c.key for c in LEDGER_COLUMNS]
    row = dict(zip(names, next(r for r in rows if r[0] == plain.id), strict=True))
    assert row["fee_shortfall"] is None
    assert db.session.scalar(select(Donation.fee_cover_amount).where(Donation.id == plain.id)) == 0


def test_a_monthly_plan_s_payments_net_the_gift(client, ctx, simulator) -> None:
    from tests.support.test_recurring import thanks_url

    page = client.get("/support/checkout?frequency=monthly&amount=10&currency=GBP")
    form = {
        "csrf_token": hidden(page.text, "csrf_token"),
        "attempt": hidden(page.text, "attempt"),
        "amount": hidden(page.text, "amount"),
        "frequency": "monthly",
        "currency": "GBP",
        "email": "reader@example.org",
        "cover_fee": "y",
        "cover_method": "card",
    }
    pay_url = client.post("/support/checkout", data=form).headers["Location"]
    secret = re.search(r'data-client-secret="([^"]+)"', client.get(pay_url).text)
    assert secret
    assert simulator.confirm_setup(secret.group(1)).json()["status"] == "succeeded"
    thanks = client.get(thanks_url(pay_url))
    assert thanks.status_code == 200
    plan = db.session.scalar(select(RecurringPlan))
    assert (plan.amount, plan.fee_cover_amount) == (1000, 36)  # 1.5% + 20p, grossed up
    charged = Money(plan.amount + plan.fee_cover_amount, plan.currency).format()
    assert f"You will be charged {charged} every month." in thanks.text
    renewal = simulator.renew(plan.stripe_subscription_id)
    assert renewal["status"] == "paid"
    assert deliver(client, "invoice.paid", stale(renewal["id"], "invoice")) == 200
    paid: list[Donation] = []

    def recorded() -> bool:
        db.session.expire_all()
        paid[:] = db.session.scalars(select(Donation).order_by(Donation.id)).all()
        for donation in paid:
            if donation.stripe_payment_intent_id and donation.fee is None:
                deliver(
                    client,
                    "payment_intent.succeeded",
                    stale(donation.stripe_payment_intent_id, "payment_intent"),
                )
        return len(paid) == 2 and all(d.fee is not None for d in paid)

    wait_until(recorded)
    for donation in paid:
        assert (donation.amount, donation.fee_cover_amount, donation.fee) == (1000, 36, 36)
        assert donation.net == 1000
