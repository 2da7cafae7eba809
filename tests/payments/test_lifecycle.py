"""A supporter's status, gifts, totals per currency and timeline, derived from their records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from donations.db import db
from donations.mail.models import EmailMessage, EmailStatus
from donations.money import Money
from donations.payments.lifecycle import (
    SupporterStatus,
    supporter_status,
    supporter_summary,
    timeline,
)
from donations.payments.models import (
    Dispute,
    DisputeStatus,
    Refund,
    RefundStatus,
)
from donations.supporters.models import DonationStatus, Frequency, PlanStatus
from tests import factories
from tests.factories import donation, plan, supporter
from tests.payments.stripe_flows import charge_of, deliver, give, refund, stale

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def refund_row(gift, amount: int, status: RefundStatus = RefundStatus.SUCCEEDED, at=T0) -> Refund:
    row = factories.refund(gift, amount, status, stripe_created_at=at)
    if row.returns_money:
        gift.refunded_amount += amount
    db.session.flush()
    return row


def dispute_row(gift, status: DisputeStatus, at=T0, closed=None) -> Dispute:
    return factories.dispute(
        gift, status, fee=1500, net=-2500, stripe_created_at=at, closed_at=closed
    )


# -- status ------------------------------------------------------------------------------


def test_nobody_who_never_gave_is_a_prospect(ctx) -> None:
    reader = supporter()
    assert supporter_status(reader) is SupporterStatus.PROSPECT
    donation(reader, status=DonationStatus.FAILED)
    donation(reader, status=DonationStatus.PENDING)
    plan(reader, status=PlanStatus.INCOMPLETE)  # the first payment was never made
    assert supporter_status(reader) is SupporterStatus.PROSPECT


def test_a_gift_makes_a_one_off_donor(ctx) -> None:
    reader = supporter()
    gift = donation(reader, 1000)
    refund_row(gift, 400)
    assert supporter_status(reader) is SupporterStatus.ONE_OFF_DONOR


@pytest.mark.parametrize("undone", ["refunded", "dispute lost"])
def test_a_gift_fully_undone_does_not_count(ctx, undone: str) -> None:
    reader = supporter()
    gift = donation(reader, 1000)
    if undone == "refunded":
        refund_row(gift, 1000)
    else:
        dispute_row(gift, DisputeStatus.LOST)
    assert supporter_status(reader) is SupporterStatus.PROSPECT
    assert supporter_summary(reader).first_gift_at is None


def test_a_won_dispute_keeps_the_gift(ctx) -> None:
    reader = supporter()
    dispute_row(donation(reader, 1000), DisputeStatus.WON)
    assert supporter_status(reader) is SupporterStatus.ONE_OFF_DONOR


@pytest.mark.parametrize(
    ("plans", "expected"),
    [
        ([(PlanStatus.ACTIVE, None, None)], SupporterStatus.ACTIVE_RECURRING),
        ([(PlanStatus.PAST_DUE, None, None)], SupporterStatus.PAST_DUE),
        ([(PlanStatus.UNPAID, None, None)], SupporterStatus.LAPSED),
        ([(PlanStatus.CANCELED, "payment_failed", 3)], SupporterStatus.LAPSED),
        ([(PlanStatus.CANCELED, "cancellation_requested", 3)], SupporterStatus.CANCELLED),
        ([(PlanStatus.CANCELED, None, 3)], SupporterStatus.CANCELLED),
        # A live plan wins over an ended one; among ended plans, the latest decides.
        (
            [(PlanStatus.CANCELED, "cancellation_requested", 1), (PlanStatus.ACTIVE, None, None)],
            SupporterStatus.ACTIVE_RECURRING,
        ),
        (
            [(PlanStatus.CANCELED, "payment_failed", 1), (PlanStatus.CANCELED, None, 5)],
            SupporterStatus.CANCELLED,
        ),
        (
            [(PlanStatus.CANCELED, None, 1), (PlanStatus.CANCELED, "payment_disputed", 5)],
            SupporterStatus.LAPSED,
        ),
        (
            [(PlanStatus.PAST_DUE, None, None), (PlanStatus.ACTIVE, None, None)],
            SupporterStatus.ACTIVE_RECURRING,
        ),
    ],
)
def test_recurring_statuses(ctx, plans, expected: SupporterStatus) -> None:
    reader = supporter()
    donation(reader)  # a one-off gift too: the plans decide
    for status, reason, ended in plans:
        plan(
            reader,
            status=status,
            cancellation_reason=reason,
            canceled_at=day(ended) if ended is not None else None,
        )
    db.session.expire(reader)
    assert supporter_status(reader) is expected


# -- gifts and totals -------------------------------------------------------------------------


def test_first_and_last_gift_and_totals_per_currency(ctx) -> None:
    reader = supporter()
    first = donation(reader, 1000, "USD", succeeded_at=day(1), fee=59)
    donation(reader, 2000, "USD", succeeded_at=day(9), fee=88, fee_cover_amount=90)
    refund_row(first, 500)
    refund_row(first, 200, RefundStatus.FAILED)  # money never left: does not count
    lost = donation(reader, 1500, "EUR", succeeded_at=day(20), fee=50)
    dispute_row(lost, DisputeStatus.LOST)
    donation(reader, 700, "EUR", status=DonationStatus.FAILED)

    summary = supporter_summary(reader)
    assert summary.status is SupporterStatus.ONE_OFF_DONOR
    # The lost EUR gift no longer counts as a gift.
    assert (summary.first_gift_at, summary.last_gift_at) == (day(1), day(9))
    usd, eur = summary.total("USD"), summary.total("EUR")
    assert usd is not None
    assert eur is not None
    assert (usd.gifts, usd.charged, usd.refunded, usd.disputed, usd.fees) == (
        2,
        3090,
        500,
        0,
        147,
    )
    assert usd.money(usd.given).format("en") == "$25.90"
    assert (eur.gifts, eur.charged, eur.refunded, eur.disputed, eur.given) == (
        1,
        1500,
        0,
        1500,
        0,
    )


def test_totals_follow_real_refunds_from_stripe(client, ctx, simulator) -> None:
    gift = give(client, simulator, amount="30")
    give(client, simulator, amount="12")
    refund(simulator, gift, 1000)
    assert deliver(client, "charge.refunded", stale(charge_of(simulator, gift), "charge")) == 200
    summary = supporter_summary(gift.donation().supporter)
    usd = summary.total("USD")
    assert usd is not None
    assert (usd.gifts, usd.charged, usd.refunded, usd.given) == (2, 4200, 1000, 3200)
    assert usd.fees == (3000 * 29 + 500) // 1000 + 30 + (1200 * 29 + 500) // 1000 + 30


# -- timeline --------------------------------------------------------------------------------------


def test_timeline_has_every_money_movement_and_email_newest_first(ctx) -> None:
    reader = supporter()
    monthly = plan(
        reader,
        status=PlanStatus.CANCELED,
        started_at=day(0),
        canceled_at=day(40),
        cancellation_reason="cancellation_requested",
        stripe_subscription_id="sub_1",
    )
    gift = donation(
        reader,
        500,
        succeeded_at=day(0),
        recurring_plan_id=monthly.id,
        frequency=Frequency.MONTHLY,
        stripe_payment_intent_id="pi_1",
    )
    payout = factories.payout(485, arrival_date=day(3), stripe_created_at=day(1))
    gift.payout_id = payout.id
    donation(reader, 500, status=DonationStatus.FAILED, created_at=day(30))
    refund_row(gift, 200, at=day(10))
    dispute_row(gift, DisputeStatus.WON, at=day(12), closed=day(20))
    db.session.add(
        EmailMessage(
            dedupe_key="receipt:x",
            template="receipt",
            to_address=reader.email,
            supporter_id=reader.id,
            status=EmailStatus.SENT,
            sent_at=day(0) + timedelta(minutes=1),
        )
    )
    db.session.flush()
    db.session.expire(reader)

    entries = timeline(reader)
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    assert [(e.kind, e.text) for e in entries] == [
        ("plan", "monthly plan ended (cancellation_requested)"),
        ("payment", "once payment failed"),
        ("dispute", "dispute won"),
        ("dispute", "dispute opened (fraudulent)"),
        ("refund", "refund"),
        ("payout", "paid out to the bank"),
        ("email", "email: receipt"),
        ("gift", "monthly gift"),
        ("plan", "monthly plan started"),
    ]
    refund_entry = next(e for e in entries if e.kind == "refund")
    assert (refund_entry.amount, refund_entry.status) == (Money(200, "USD"), "succeeded")


# -- refund state ------------------------------------------------------------------------


def test_refund_state_is_one_rule_in_python_and_in_sql(ctx) -> None:
    """The staff pages (Donation.refund_state), the ledger report and the dashboard
    (refund_state_sql) say the same of every donation."""
    from sqlalchemy import select

    from donations.payments.models import refund_state_sql, with_dispute_outcomes
    from donations.staff import dashboard as dash
    from donations.supporters.models import Donation, RefundState

    reader = supporter()
    untouched = donation(reader, 1000, succeeded_at=day(1))
    partly = donation(reader, 1000, succeeded_at=day(1))
    refund_row(partly, 300)
    refund_row(partly, 700, RefundStatus.FAILED)  # money never left
    fully = donation(reader, 1000, fee_cover_amount=50, succeeded_at=day(1))
    refund_row(fully, 1050)
    disputed = donation(reader, 1000, succeeded_at=day(1))
    dispute_row(disputed, DisputeStatus.NEEDS_RESPONSE)
    won = donation(reader, 1000, succeeded_at=day(1))
    dispute_row(won, DisputeStatus.WON, closed=day(3))
    lost = donation(reader, 1000, succeeded_at=day(1))
    refund_row(lost, 100)
    dispute_row(lost, DisputeStatus.LOST, closed=day(3))
    expected = {
        untouched.id: None,
        partly.id: RefundState.PARTIALLY_REFUNDED,
        fully.id: RefundState.REFUNDED,
        disputed.id: RefundState.DISPUTED,
        won.id: None,
        lost.id: RefundState.DISPUTE_LOST,
    }
    db.session.expire_all()
    in_python = {d.id: d.refund_state for d in db.session.scalars(select(Donation))}
    rows = db.session.execute(with_dispute_outcomes(select(Donation.id, refund_state_sql()))).all()
    in_sql = {row[0]: row[1] for row in rows}
    assert in_python == expected
    assert in_sql == {k: (str(v) if v else None) for k, v in expected.items()}
    assert db.session.get(Donation, fully.id).display_status == "refunded"
    assert db.session.get(Donation, untouched.id).display_status == "succeeded"
    assert dash.refund_states(day(0), day(2)) == {
        "partially_refunded": 1,
        "refunded": 1,
        "disputed": 1,
        "dispute_lost": 1,
    }
    # The timeline's gift entries carry the same state.
    gifts = [e.status for e in timeline(reader) if e.kind == "gift"]
    assert sorted(gifts) == sorted([str(v) if v else "succeeded" for v in expected.values()])
