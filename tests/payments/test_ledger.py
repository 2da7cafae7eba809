"""Refunds, disputes, payouts and fees: each event type through the webhook, on the simulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from donations.db import db
from donations.mail.models import EmailMessage
from donations.money import Money
from donations.payments import ledger
from donations.payments.gateway import DisputeSnapshot
from donations.payments.models import (
    Dispute,
    DisputeStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundStatus,
)
from donations.supporters.models import Donation, DonationStatus
from tests.payments.stripe_flows import (
    DISPUTE_CARD,
    charge_of,
    close_dispute,
    count,
    deliver,
    dispute_of,
    give,
    payout,
    refund,
    stale,
    start_gift,
    stripe_api,
    wait_until,
)


def refunds_of(donation: Donation) -> list[Refund]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Refund).where(Refund.donation_id == donation.id).order_by(Refund.amount)
        )
    )


# -- fees and net ------------------------------------------------------------------


def test_fee_and_net_come_from_the_balance_transaction(client, ctx, simulator) -> None:
    donation = give(client, simulator, amount="10").donation()
    # The simulator charges Stripe's 2.9% + 30: 29 + 30 on $10.00.
    assert (donation.fee, donation.net) == (59, 941)


def test_payment_intent_succeeded_webhook_records_the_fee(client, ctx, simulator) -> None:
    gift = give(client, simulator, amount="25", record=False)
    assert gift.donation().fee is None
    assert (
        deliver(client, "payment_intent.succeeded", stale(gift.intent_id, "payment_intent")) == 200
    )
    donation = gift.donation()
    assert donation.status is DonationStatus.SUCCEEDED
    assert (donation.fee, donation.net) == (103, 2397)


def test_payment_intent_canceled(client, ctx, simulator) -> None:
    gift = start_gift(client)
    stripe_api(simulator, "POST", f"/v1/payment_intents/{gift.intent_id}/cancel")
    assert (
        deliver(client, "payment_intent.canceled", stale(gift.intent_id, "payment_intent")) == 200
    )
    assert gift.donation().status is DonationStatus.CANCELED


def confirm_sepa(simulator, gift, iban: str) -> dict:
    response = requests.post(
        f"{simulator.url}/v1/payment_intents/{gift.intent_id}/confirm",
        json={
            "key": "pk_test_local",
            "client_secret": gift.client_secret,
            "payment_method_data": {
                "type": "sepa_debit",
                "sepa_debit": {"iban": iban},
                "billing_details": {"name": "Ada Reader", "email": "reader@example.org"},
            },
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def settled(simulator, gift) -> str:
    intent = f"/v1/payment_intents/{gift.intent_id}"
    wait_until(lambda: stripe_api(simulator, "GET", intent)["status"] != "processing")
    return str(stripe_api(simulator, "GET", intent)["status"])


@pytest.mark.parametrize(
    ("iban", "outcome", "final"),
    [
        ("DE89370400440532013000", "payment_intent.succeeded", DonationStatus.SUCCEEDED),
        ("DE62370400440532013001", "payment_intent.payment_failed", DonationStatus.FAILED),
    ],
)
def test_sepa_debit_is_processing_until_it_settles(
    client, ctx, simulator, iban: str, outcome: str, final: DonationStatus
) -> None:
    gift = start_gift(client, amount="20", currency="EUR")
    assert confirm_sepa(simulator, gift, iban)["status"] == "processing"
    assert (
        deliver(client, "payment_intent.processing", stale(gift.intent_id, "payment_intent")) == 200
    )
    donation = gift.donation()
    assert (donation.status, donation.method, donation.fee) == (
        DonationStatus.PROCESSING,
        "sepa_debit",
        None,
    )
    assert count(EmailMessage) == 0  # no "paid" receipt while the debit is pending

    settled(simulator, gift)
    assert deliver(client, outcome, stale(gift.intent_id, "payment_intent")) == 200
    donation = gift.donation()
    assert donation.status is final
    if final is DonationStatus.SUCCEEDED:
        # SEPA Direct Debit: EUR 0.35 a debit (Stripe's EEA pricing) in the simulator.
        assert (donation.fee, donation.net) == (35, 1965)
        assert count(EmailMessage) == 1
    else:
        assert (donation.fee, count(EmailMessage)) == (None, 0)


def test_charge_succeeded_alone_records_the_payment_once(client, ctx, simulator) -> None:
    gift = give(client, simulator, record=False)
    charge = charge_of(simulator, gift)
    for _ in range(2):
        assert deliver(client, "charge.succeeded", stale(charge, "charge")) == 200
    donation = gift.donation()
    assert donation.status is DonationStatus.SUCCEEDED
    assert (donation.stripe_charge_id, donation.fee) == (charge, 59)
    assert count(EmailMessage) == 1


# -- refunds -------------------------------------------------------------------------------


def test_partial_then_full_refund(client, ctx, simulator) -> None:
    gift = give(client, simulator, amount="10")
    charge = charge_of(simulator, gift)
    refund(simulator, gift, 300)
    assert deliver(client, "charge.refunded", stale(charge, "charge", amount_refunded=300)) == 200
    donation = gift.donation()
    assert donation.refunded_amount == 300
    assert [(r.amount, r.status) for r in refunds_of(donation)] == [(300, RefundStatus.SUCCEEDED)]

    refund(simulator, gift)  # the rest
    assert deliver(client, "charge.refunded", stale(charge, "charge", refunded=True)) == 200
    donation = gift.donation()
    assert donation.refunded_amount == 1000
    assert [r.amount for r in refunds_of(donation)] == [300, 700]
    assert donation.status is DonationStatus.SUCCEEDED  # a refund is its own movement
    assert (donation.fee, donation.net) == (59, 941)


def test_several_refunds_reported_by_one_event(client, ctx, simulator) -> None:
    gift = give(client, simulator, amount="50")
    for amount in (100, 200, 300):
        refund(simulator, gift, amount)
    assert deliver(client, "charge.refunded", stale(charge_of(simulator, gift), "charge")) == 200
    donation = gift.donation()
    assert [r.amount for r in refunds_of(donation)] == [100, 200, 300]
    assert donation.refunded_amount == 600


def test_refund_events_in_any_order_and_replayed_end_the_same(client, ctx, simulator) -> None:
    gift = give(client, simulator, amount="10")
    charge = charge_of(simulator, gift)
    first = refund(simulator, gift, 400)
    second = refund(simulator, gift, 100)
    # The later refund's event first, then the earlier one's, then replays.
    deliveries = [
        ("charge.refund.updated", stale(second["id"], "refund"), "evt_refund_b"),
        ("refund.created", stale(first["id"], "refund"), "evt_refund_a"),
        ("charge.refunded", stale(charge, "charge"), "evt_refunded"),
    ]
    for _ in range(3):
        for event_type, obj, event_id in reversed(deliveries):
            assert deliver(client, event_type, obj, event_id) == 200
    donation = gift.donation()
    assert donation.refunded_amount == 500
    assert [r.stripe_refund_id for r in refunds_of(donation)] == [second["id"], first["id"]]


def test_refund_arriving_before_the_payment_succeeded_event(
    client, ctx, simulator, mailbox
) -> None:
    gift = give(client, simulator, record=False)
    assert gift.donation().status is DonationStatus.PENDING
    refund(simulator, gift, 250)
    assert deliver(client, "charge.refunded", stale(charge_of(simulator, gift), "charge")) == 200
    donation = gift.donation()
    assert donation.status is DonationStatus.SUCCEEDED
    assert donation.refunded_amount == 250
    # The late payment_intent.succeeded changes nothing more.
    assert (
        deliver(client, "payment_intent.succeeded", stale(gift.intent_id, "payment_intent")) == 200
    )
    # One receipt, and one refund confirmation.
    assert sorted(db.session.scalars(select(EmailMessage.template))) == ["receipt", "refund"]
    assert gift.donation().refunded_amount == 250


def test_refund_of_someone_elses_payment_is_acknowledged(client, ctx, simulator) -> None:
    customer = stripe_api(simulator, "POST", "/v1/customers", email="other@example.org")
    intent = stripe_api(
        simulator,
        "POST",
        "/v1/payment_intents",
        amount=700,
        currency="usd",
        customer=customer["id"],
    )
    confirmed = simulator.confirm(intent["client_secret"])
    assert confirmed.json()["status"] == "succeeded"
    charge = confirmed.json()["latest_charge"]
    stripe_api(simulator, "POST", "/v1/refunds", charge=charge)
    assert deliver(client, "charge.refunded", stale(charge, "charge")) == 200
    assert (count(Donation), count(Refund)) == (0, 0)


def test_refund_of_our_payment_with_no_row_is_retried_then_recorded(
    client, ctx, simulator, monkeypatch
) -> None:
    """The checkout's row never committed: Stripe is asked to retry; later it is recorded."""
    gift = give(client, simulator, amount="10", record=False)
    donation = gift.donation()
    attempt, email = donation.attempt_key, donation.supporter.email
    db.session.delete(donation)
    db.session.commit()
    refund(simulator, gift, 1000)
    charge = charge_of(simulator, gift)
    assert deliver(client, "charge.refunded", stale(charge, "charge"), "evt_orphan") == 500
    assert count(Refund) == 0
    # Later (past the grace period) Stripe delivers the same event again.
    monkeypatch.setattr(ledger, "ORPHAN_GRACE", timedelta(0))
    assert deliver(client, "charge.refunded", stale(charge, "charge"), "evt_orphan") == 200
    restored = gift.donation()
    assert (restored.attempt_key, restored.supporter.email) == (attempt, email)
    assert (restored.amount, restored.status, restored.refunded_amount) == (
        1000,
        DonationStatus.SUCCEEDED,
        1000,
    )
    assert restored.note == ledger.IMPORTED_NOTE


# -- disputes ----------------------------------------------------------------------------------


def dispute_row() -> Dispute:
    db.session.expire_all()
    rows = db.session.scalars(select(Dispute)).all()
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("won", [True, False], ids=["won", "lost"])
def test_dispute_opened_then_closed(client, ctx, simulator, won: bool) -> None:
    gift = give(client, simulator, amount="10", card=DISPUTE_CARD)
    dispute = dispute_of(simulator, charge_of(simulator, gift))
    assert deliver(client, "charge.dispute.created", stale(dispute["id"], "dispute")) == 200
    row = dispute_row()
    assert (row.status, row.amount, row.reason) == (
        DisputeStatus.NEEDS_RESPONSE,
        1000,
        "fraudulent",
    )
    # Withdrawn: the amount and the 15.00 dispute fee.
    assert (row.fee, row.net, row.closed_at) == (1500, -2500, None)
    assert row.donation_id == gift.donation().id

    close_dispute(simulator, dispute["id"], won=won)
    assert deliver(client, "charge.dispute.closed", stale(dispute["id"], "dispute")) == 200
    row = dispute_row()
    assert row.status is (DisputeStatus.WON if won else DisputeStatus.LOST)
    assert row.net == (-1500 if won else -2500)
    assert row.closed_at is not None
    assert gift.donation().status is DonationStatus.SUCCEEDED


def test_dispute_closed_arriving_before_created(client, ctx, simulator) -> None:
    gift = give(client, simulator, amount="10", card=DISPUTE_CARD, record=False)
    dispute = dispute_of(simulator, charge_of(simulator, gift))
    close_dispute(simulator, dispute["id"], won=True)
    assert deliver(client, "charge.dispute.closed", stale(dispute["id"], "dispute")) == 200
    assert (
        deliver(
            client,
            "charge.dispute.created",
            stale(dispute["id"], "dispute", status="needs_response"),
        )
        == 200
    )
    row = dispute_row()
    assert (row.status, row.net) == (DisputeStatus.WON, -1500)
    assert gift.donation().status is DonationStatus.SUCCEEDED


def test_stale_dispute_status_never_overwrites_a_closed_one(client, ctx, simulator) -> None:
    gift = give(client, simulator, amount="10", card=DISPUTE_CARD)
    dispute = dispute_of(simulator, charge_of(simulator, gift))
    close_dispute(simulator, dispute["id"], won=False)
    deliver(client, "charge.dispute.closed", stale(dispute["id"], "dispute"))
    row = dispute_row()
    # A read that raced and lost: an older snapshot arrives last.
    ledger.apply_dispute(
        gift.donation(),
        DisputeSnapshot(
            id=dispute["id"],
            charge_id=row.donation.stripe_charge_id or "",
            payment_id=None,
            status="needs_response",
            reason="fraudulent",
            amount=Money(1000, "USD"),
            created=0,
            fee=1500,
            net=-2500,
        ),
    )
    assert row.status is DisputeStatus.LOST


# -- payouts --------------------------------------------------------------------------------------


def test_payout_paid_records_the_donations_it_paid_out(client, ctx, simulator) -> None:
    simulator.reset()
    gifts = [give(client, simulator, amount=a) for a in ("10", "20")]
    made = payout(simulator, "usd", "paid")
    assert made["amount"] == 941 + 1912
    assert deliver(client, "payout.paid", stale(made["id"], "payout")) == 200
    db.session.expire_all()
    row = db.session.scalar(select(Payout))
    assert row is not None
    assert (row.status, row.amount, row.currency) == (PayoutStatus.PAID, 2853, "USD")
    assert [g.donation().payout_id for g in gifts] == [row.id, row.id]


def test_failed_payout_returns_its_donations_to_the_balance(client, ctx, simulator) -> None:
    simulator.reset()
    gift = give(client, simulator, amount="10")
    failed = payout(simulator, "usd", "failed")
    assert deliver(client, "payout.failed", stale(failed["id"], "payout")) == 200
    assert gift.donation().payout_id is None
    paid = payout(simulator, "usd", "paid")
    assert deliver(client, "payout.paid", stale(paid["id"], "payout")) == 200
    # The failure arriving again (or late) does not take it from the payout that paid it.
    assert deliver(client, "payout.failed", stale(failed["id"], "payout")) == 200
    db.session.expire_all()
    rows = {p.stripe_payout_id: p for p in db.session.scalars(select(Payout))}
    assert rows[failed["id"]].status is PayoutStatus.FAILED
    assert rows[failed["id"]].failure_code == "account_closed"
    assert gift.donation().payout_id == rows[paid["id"]].id


def test_refunds_are_marked_with_their_payout(client, ctx, simulator) -> None:
    simulator.reset()
    gift = give(client, simulator, amount="30")
    refund(simulator, gift, 500)
    deliver(client, "charge.refunded", stale(charge_of(simulator, gift), "charge"))
    made = payout(simulator, "usd", "paid")
    assert deliver(client, "payout.paid", stale(made["id"], "payout")) == 200
    donation = gift.donation()
    assert donation.payout_id is not None
    assert [r.payout_id for r in refunds_of(donation)] == [donation.payout_id]
