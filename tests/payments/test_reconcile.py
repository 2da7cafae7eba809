"""`flask stripe reconcile`: the ledger repaired from Stripe when webhooks never came."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from celery.schedules import crontab
from sqlalchemy import select, update

from donations.db import db
from donations.mail.models import EmailMessage
from donations.payments import ledger
from donations.payments.models import Dispute, DisputeStatus, Payout, PayoutStatus, Refund
from donations.payments.tasks import reconcile_recent
from donations.supporters.models import Donation, DonationStatus, PlanStatus, RecurringPlan
from donations.tasks import celery_app
from tests import factories
from tests.harness import WEBHOOK_SECRET
from tests.payments.stripe_flows import (
    DISPUTE_CARD,
    charge_of,
    close_dispute,
    count,
    dispute_of,
    fail_future_charges,
    give,
    intent_of,
    payout,
    refund,
    renewals,
    start_gift,
    stripe_api,
    subscribe,
)


@pytest.fixture
def webhooks_off(simulator, live_server) -> Iterator[None]:
    """A simulator with nothing from earlier tests, sending no webhook until the test ends."""
    simulator.reset()
    url = f"{live_server.url}/webhooks/stripe"
    requests.post(
        f"{simulator.url}/_config/webhooks/test",
        json={"url": url, "secret": WEBHOOK_SECRET, "events": ["none.at_all"]},
        timeout=10,
    ).raise_for_status()
    yield
    simulator.register_webhook(url)


def reconcile(app, *args: str):
    today = datetime.now(UTC).date().isoformat()
    result = app.test_cli_runner().invoke(args=["stripe", "reconcile", "--since", today, *args])
    db.session.expire_all()
    return result


def donations() -> list[Donation]:
    db.session.expire_all()
    return list(db.session.scalars(select(Donation).order_by(Donation.id)))


def test_webhooks_off_during_50_payments_then_reconcile_restores_every_one(
    app, client, ctx, simulator, webhooks_off
) -> None:
    gifts = [give(client, simulator, amount=str(5 + i), record=False) for i in range(50)]
    assert [d.status for d in donations()] == [DonationStatus.PENDING] * 50
    assert count(EmailMessage) == 0

    first = reconcile(app)
    assert first.exit_code == 0, first.output
    assert "50 differences, 50 repaired, 0 remaining" in first.output
    for gift, amount in zip(gifts, range(5, 55), strict=True):
        donation = gift.donation()
        assert donation.status is DonationStatus.SUCCEEDED
        assert donation.amount == amount * 100
        assert donation.fee == (amount * 100 * 29 + 500) // 1000 + 30
        assert donation.net == donation.amount - donation.fee
        assert donation.stripe_charge_id is not None
    assert count(EmailMessage) == 50  # every receipt, once

    again = reconcile(app)
    assert again.exit_code == 0, again.output
    assert "0 differences" in again.output
    check = reconcile(app, "--dry-run")
    assert check.exit_code == 0, check.output
    assert "0 differences, 0 repaired, 0 remaining" in check.output
    assert count(EmailMessage) == 50


def test_dry_run_reports_and_changes_nothing(app, client, ctx, simulator, webhooks_off) -> None:
    gift = give(client, simulator, amount="10", record=False)
    result = reconcile(app, "--dry-run")
    assert result.exit_code == 1, result.output
    assert f"payment {gift.intent_id}: status pending -> succeeded" in result.output
    assert "would repair" in result.output
    assert gift.donation().status is DonationStatus.PENDING
    assert (gift.donation().fee, count(EmailMessage)) == (None, 0)
    assert reconcile(app).exit_code == 0
    assert reconcile(app, "--dry-run").exit_code == 0


def test_reconcile_repairs_refunds_disputes_and_payouts(
    app, client, ctx, simulator, webhooks_off
) -> None:
    refunded = give(client, simulator, amount="40")
    refund(simulator, refunded, 1000)
    refund(simulator, refunded, 500)
    disputed = give(client, simulator, amount="10", card=DISPUTE_CARD)
    close_dispute(simulator, dispute_of(simulator, charge_of(simulator, disputed))["id"], won=False)
    made = payout(simulator, "usd", "paid")

    result = reconcile(app)
    assert result.exit_code == 0, result.output
    assert refunded.donation().refunded_amount == 1500
    assert count(Refund) == 2
    db.session.expire_all()
    dispute = db.session.scalar(select(Dispute))
    assert dispute is not None
    assert (dispute.status, dispute.fee, dispute.net) == (DisputeStatus.LOST, 1500, -2500)
    paid = db.session.scalar(select(Payout))
    assert paid is not None
    assert (paid.stripe_payout_id, paid.status) == (made["id"], PayoutStatus.PAID)
    assert {refunded.donation().payout_id, disputed.donation().payout_id} == {paid.id}
    assert {r.payout_id for r in db.session.scalars(select(Refund))} == {paid.id}

    again = reconcile(app, "--dry-run")
    assert again.exit_code == 0, again.output
    assert "0 differences" in again.output


def test_a_payment_whose_row_was_lost_is_recorded(
    app, client, ctx, simulator, webhooks_off
) -> None:
    gift = give(client, simulator, amount="15", record=False)
    lost = gift.donation()
    attempt = lost.attempt_key
    db.session.delete(lost)
    db.session.commit()
    result = reconcile(app)
    assert result.exit_code == 0, result.output
    assert "missing from the ledger: recorded from Stripe" in result.output
    restored = gift.donation()
    assert (restored.attempt_key, restored.amount, restored.status) == (
        attempt,
        1500,
        DonationStatus.SUCCEEDED,
    )
    assert restored.note == ledger.IMPORTED_NOTE
    assert restored.supporter.email == "reader@example.org"
    assert reconcile(app, "--dry-run").exit_code == 0


def test_differences_it_cannot_repair_keep_the_exit_code_non_zero(
    app, client, ctx, simulator, webhooks_off
) -> None:
    tampered = give(client, simulator, amount="10").donation()
    db.session.execute(update(Donation).where(Donation.id == tampered.id).values(amount=900))
    factories.donation(
        tampered.supporter,
        500,
        status=DonationStatus.PENDING,
        frequency=tampered.frequency,
        stripe_payment_intent_id="pi_unknown_to_stripe",
    )
    db.session.commit()
    for _ in range(2):
        result = reconcile(app)
        assert result.exit_code == 1, result.output
        assert (
            f"payment {tampered.stripe_payment_intent_id}: ledger amount $9.00, Stripe $10.00"
            in result.output
        )
        assert "pi_unknown_to_stripe: in the ledger, unknown to Stripe" in result.output
        assert "2 remaining" in result.output
        assert "NOT REPAIRED" in result.output


def test_nightly_reconciliation_is_scheduled_and_repairs(
    client, ctx, simulator, webhooks_off
) -> None:
    entry = celery_app.conf.beat_schedule["payments.reconcile_recent"]
    assert entry["task"] == "payments.reconcile_recent"
    assert isinstance(entry["schedule"], crontab)
    gift = give(client, simulator, amount="10", record=False)
    reconcile_recent.run()
    assert gift.donation().status is DonationStatus.SUCCEEDED


def test_a_failed_three_d_secure_payment_does_not_stop_reconcile(
    app, client, ctx, simulator, webhooks_off
) -> None:
    abandoned = start_gift(client)
    assert simulator.confirm(abandoned.client_secret, card="4000002500003155").status_code == 200
    assert simulator.authenticate(abandoned.client_secret, False).status_code == 200
    paid = give(client, simulator, record=False)

    result = reconcile(app)
    assert result.exit_code == 0, result.output
    assert paid.donation().status is DonationStatus.SUCCEEDED
    assert abandoned.donation().status is DonationStatus.FAILED


def test_bad_dates_are_refused(app) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(args=["stripe", "reconcile"]).exit_code == 2
    assert runner.invoke(args=["stripe", "reconcile", "--since", "yesterday"]).exit_code == 2
    late = runner.invoke(
        args=["stripe", "reconcile", "--since", "2026-02-01", "--until", "2026-01-01"]
    )
    assert late.exit_code == 2
    assert "before --since" in late.output


def test_renewals_and_a_cancellation_missed_by_webhooks_are_recorded(
    app, client, ctx, simulator, webhooks_off
) -> None:
    renewed = subscribe(client, simulator, amount="10", email="renewed@example.org")
    failing = subscribe(client, simulator, amount="12", email="failing@example.org")
    ended = subscribe(client, simulator, amount="15", email="ended@example.org")
    fail_future_charges(simulator, failing)
    paid = simulator.renew(renewed.stripe_subscription_id)
    failed = simulator.renew(failing.stripe_subscription_id)
    assert (paid["status"], failed["status"]) == ("paid", "open")
    stripe_api(simulator, "DELETE", f"/v1/subscriptions/{ended.stripe_subscription_id}")
    assert [len(renewals(p)) for p in (renewed, failing, ended)] == [1, 1, 1]

    check = reconcile(app, "--dry-run")
    assert check.exit_code == 1, check.output
    out = check.output
    assert (
        f"invoice {paid['id']}: missing from the ledger: recorded from Stripe as a "
        f"succeeded payment of $10.00 for plan {renewed.id} [would repair]"
    ) in out
    assert (
        f"invoice {failed['id']}: missing from the ledger: recorded from Stripe as a "
        f"failed payment of $12.00 for plan {failing.id} [would repair]"
    ) in out
    assert f"plan {failing.stripe_subscription_id}: status active -> past_due" in out
    assert f"plan {ended.stripe_subscription_id}: status active -> canceled" in out
    assert "0 remaining" not in out
    # Nothing changed.
    assert [len(renewals(p)) for p in (renewed, failing, ended)] == [1, 1, 1]
    db.session.expire_all()
    assert {p.status for p in db.session.scalars(select(RecurringPlan))} == {PlanStatus.ACTIVE}

    first = reconcile(app)
    assert first.exit_code == 0, first.output
    assert "0 remaining" in first.output
    paid_renewal = renewals(renewed)[-1]
    assert (paid_renewal.stripe_invoice_id, paid_renewal.status, paid_renewal.amount) == (
        paid["id"],
        DonationStatus.SUCCEEDED,
        1000,
    )
    assert paid_renewal.stripe_payment_intent_id == intent_of(paid)
    assert (paid_renewal.fee, paid_renewal.net) == (59, 941)
    failed_renewal = renewals(failing)[-1]
    assert (failed_renewal.stripe_invoice_id, failed_renewal.status) == (
        failed["id"],
        DonationStatus.FAILED,
    )
    assert failed_renewal.failure_code is not None
    db.session.expire_all()
    statuses = {p.id: p.status for p in db.session.scalars(select(RecurringPlan))}
    assert statuses == {
        renewed.id: PlanStatus.ACTIVE,
        failing.id: PlanStatus.PAST_DUE,
        ended.id: PlanStatus.CANCELED,
    }
    assert db.session.get(RecurringPlan, ended.id).canceled_at is not None
    templates = [m.template for m in db.session.scalars(select(EmailMessage))]
    assert templates.count("payment_failed") == 1  # the dunning email the webhook would send

    again = reconcile(app)
    assert again.exit_code == 0, again.output
    assert "0 differences, 0 repaired, 0 remaining" in again.output
    assert [len(renewals(p)) for p in (renewed, failing, ended)] == [2, 2, 1]
    assert count(EmailMessage) == len(templates)
    settled = reconcile(app, "--dry-run")
    assert settled.exit_code == 0, settled.output
    assert "0 differences" in settled.output
