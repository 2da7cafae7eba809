"""After a mixed run with some webhooks dropped, reconcile makes the ledger agree with Stripe.

One-off gifts in two currencies (some covering the fee), plans with paid and
failed renewals, refunds and a lost dispute go through the simulator with its
webhooks delivered to a live app -- except while muted, when every event is
dropped. ``--dry-run`` then lists what the dropped events left out, a repair
records it, and then, to the cent: the ledger's totals per currency equal the
simulator's; the dashboard's figures for today and the ledger report's totals
equal them too; every covered gift nets what the reader chose; and every
succeeded gift has exactly one receipt stating what was charged.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select

from donations.db import db
from donations.payments.models import Dispute, Refund, StripeEvent
from donations.staff.dashboard import dashboard
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.ledger import ledger_totals as report_totals
from donations.staff.reports.sql import major_units
from donations.supporters.models import Donation, DonationStatus
from tests.harness import Simulator
from tests.payments.stripe_flows import (
    DISPUTE_CARD,
    charge_of,
    close_dispute,
    dispute_of,
    fail_future_charges,
    give,
    refund,
    subscribe,
)


@pytest.fixture
def fresh(simulator, live_server) -> None:
    """A simulator holding only this test's objects, sending its events to the live app."""
    simulator.reset()
    simulator.register_webhook(f"{live_server.url}/webhooks/stripe")


def reconcile(app, *args: str):
    today = datetime.now(UTC).date().isoformat()
    result = app.test_cli_runner().invoke(args=["stripe", "reconcile", "--since", today, *args])
    db.session.expire_all()
    return result


def settle(seconds: float = 2.5) -> None:
    """Wait until the live app has processed no new event for ``seconds``."""
    last, quiet_since = -1, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() - quiet_since < seconds:
        assert time.monotonic() < deadline, "webhooks never settled"
        time.sleep(0.25)
        db.session.expire_all()
        done = len(db.session.scalars(select(StripeEvent.processed_at)).all())
        if done != last:
            last, quiet_since = done, time.monotonic()


def get(simulator: Simulator, path: str, **params: object) -> dict:
    response = requests.get(
        f"{simulator.url}{path}",
        params=params,
        headers={"Authorization": "Bearer sk_test_local"},
        timeout=10,
    )
    response.raise_for_status()
    return dict(response.json())


def stripe_totals(simulator: Simulator) -> dict[str, Counter[str]]:
    """Per currency, from the simulator's own objects: charged, fees, refunded, disputes."""
    totals: dict[str, Counter[str]] = {}
    for intent in get(simulator, "/v1/payment_intents", limit=100)["data"]:
        if intent["status"] != "succeeded":
            continue
        charge = get(
            simulator,
            f"/v1/charges/{intent['latest_charge']}",
            **{"expand[]": "balance_transaction"},
        )
        money = totals.setdefault(intent["currency"].upper(), Counter())
        money["charged"] += intent["amount"]
        money["fees"] += charge["balance_transaction"]["fee"]
        money["payments"] += 1
    for item in get(simulator, "/v1/refunds", limit=100)["data"]:
        if item["status"] != "failed":
            totals[item["currency"].upper()]["refunded"] += item["amount"]
    for item in get(simulator, "/v1/disputes", limit=100)["data"]:
        money = totals[item["currency"].upper()]
        money["disputed"] += item["amount"]
        money["dispute fees"] += sum(t["fee"] for t in item["balance_transactions"])
        money["dispute net"] += sum(t["net"] for t in item["balance_transactions"])
    return totals


def ledger_totals() -> dict[str, Counter[str]]:
    db.session.expire_all()
    totals: dict[str, Counter[str]] = {}
    for donation in db.session.scalars(select(Donation)):
        if donation.status is not DonationStatus.SUCCEEDED:
            continue
        money = totals.setdefault(donation.currency, Counter())
        money["charged"] += donation.charge_total.amount
        money["fees"] += donation.fee or 0
        money["payments"] += 1
        money["refunded"] += donation.refunded_amount
    for dispute in db.session.scalars(select(Dispute)):
        money = totals[dispute.currency]
        money["disputed"] += dispute.amount
        money["dispute fees"] += dispute.fee
        money["dispute net"] += dispute.net
    return totals


def board_row(row) -> tuple[object, ...]:
    c = row.currency
    return (
        c,
        row.count,
        major_units(row.gross, c),
        major_units(row.fees, c),
        major_units(row.refunds, c),
        major_units(row.net, c),
    )


def test_dry_run_and_ledger_agree_with_the_simulator_to_the_cent(
    app, client, ctx, simulator, fresh, mailbox
) -> None:
    # Delivered: the webhooks record these.
    kept = [
        give(client, simulator, amount=a, currency=c, record=False)
        for a, c in (("10", "USD"), ("25.50", "EUR"), ("7", "USD"))
    ]
    covered = [give(client, simulator, amount="20", cover=True, record=False)]
    plan = subscribe(client, simulator, amount="12", email="kept-plan@example.org")
    simulator.renew(plan.stripe_subscription_id)
    refund(simulator, kept[0], 300)
    disputed = give(client, simulator, amount="30", card=DISPUTE_CARD)
    settle()
    # Dropped: every event of these is lost.
    with simulator.muted():
        lost = [
            give(client, simulator, amount=a, currency=c, record=False)
            for a, c in (("40", "USD"), ("9.99", "EUR"))
        ]
        covered.append(
            give(client, simulator, amount="15", currency="EUR", cover=True, record=False)
        )
        quiet_plan = subscribe(client, simulator, amount="15", email="quiet-plan@example.org")
        failing = subscribe(client, simulator, amount="8", email="failing-plan@example.org")
        fail_future_charges(simulator, failing)
        paid = simulator.renew(quiet_plan.stripe_subscription_id)
        failed = simulator.renew(failing.stripe_subscription_id)
        second = simulator.renew(plan.stripe_subscription_id)
        refund(simulator, kept[1])  # all of it
        refund(simulator, lost[0], 1000)
        close_dispute(simulator, dispute_of(simulator, charge_of(simulator, disputed))["id"], False)
        time.sleep(2)  # the simulator sends each event about a second later
    settle()

    check = reconcile(app, "--dry-run")
    assert check.exit_code == 1, check.output
    for missing in (*(g.intent_id for g in lost), paid["id"], failed["id"], second["id"]):
        assert missing in check.output, (missing, check.output)
    assert ledger_totals() != stripe_totals(simulator)

    repaired = reconcile(app)
    assert repaired.exit_code == 0, repaired.output
    after = reconcile(app, "--dry-run")
    assert after.exit_code == 0, after.output
    assert "0 differences, 0 repaired, 0 remaining" in after.output
    expected = stripe_totals(simulator)
    assert set(expected) == {"USD", "EUR"}
    assert ledger_totals() == expected
    db.session.expire_all()
    assert len(db.session.scalars(select(Refund)).all()) == 3

    # What finance sees: the dashboard (today) and the ledger report, from the same measures.
    utc = ZoneInfo("UTC")
    rows = [
        (
            c,
            t["payments"],
            major_units(t["charged"], c),
            major_units(t["fees"], c),
            major_units(t["refunded"], c),
            major_units(t["charged"] - t["fees"] - t["refunded"], c),
        )
        for c, t in sorted(expected.items())
    ]
    board = dashboard(utc, datetime.now(UTC))
    today = next(p for p in board.periods if p.key == "today")
    assert [board_row(r) for r in board.totals["today"]] == rows
    day = today.start.date()
    assert report_totals(ReportFilters(start=day, end=day), utc).rows == rows

    # Cover-the-fee kept its promise: charged minus Stripe's fee is the chosen amount.
    for gift in covered:
        donation = db.session.scalar(
            select(Donation).where(Donation.stripe_payment_intent_id == gift.intent_id)
        )
        assert donation is not None
        assert donation.fee_cover_amount > 0
        assert donation.charge_total.amount - (donation.fee or 0) == donation.amount

    # Every email agrees: one receipt per succeeded gift, for what was charged.
    succeeded = db.session.scalars(
        select(Donation).where(Donation.status == DonationStatus.SUCCEEDED)
    ).all()
    mailbox.wait_for(len(succeeded), timeout=30)
    receipts = Counter(
        str(m["Subject"]) for m in mailbox.messages if str(m["Subject"]).startswith("Your receipt")
    )
    assert receipts == Counter(
        f"Your receipt: {d.charge_total.format('en')} to support our journalism" for d in succeeded
    )
