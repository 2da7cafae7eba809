"""A renewal's payment_intent.* event, before or without its invoice event, records it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from donations.db import db
from donations.mail.models import EmailMessage
from donations.payments.models import StripeEvent
from donations.supporters.models import DonationStatus, PlanStatus, RecurringPlan
from tests.payments.stripe_flows import (
    deliver,
    fail_future_charges,
    intent_of,
    renewals,
    stale,
    subscribe,
)


@pytest.fixture
def quiet(simulator) -> Iterator[None]:
    """The simulator's own events never reach the app: the test delivers each one."""
    with simulator.muted():
        yield


def templates() -> list[str]:
    db.session.expire_all()
    return [m.template for m in db.session.scalars(select(EmailMessage))]


def test_paid_renewal_recorded_from_its_payment_intent_event(client, ctx, simulator, quiet) -> None:
    plan = subscribe(client, simulator)
    invoice = simulator.renew(plan.stripe_subscription_id)
    assert invoice["status"] == "paid"

    intent = intent_of(invoice)
    assert deliver(client, "payment_intent.succeeded", stale(intent, "payment_intent")) == 200
    _, renewal = renewals(plan)
    assert (renewal.stripe_invoice_id, renewal.stripe_payment_intent_id) == (invoice["id"], intent)
    assert (renewal.status, renewal.amount, renewal.fee) == (DonationStatus.SUCCEEDED, 1000, 59)
    assert templates().count("receipt") == 2
    # The invoice's own event, late, changes nothing.
    assert deliver(client, "invoice.paid", stale(invoice["id"], "invoice")) == 200
    assert len(renewals(plan)) == 2
    assert templates().count("receipt") == 2
    # This test's events (the session's live server may record another test's late ones).
    events = db.session.scalars(
        select(StripeEvent).where(StripeEvent.object_id.in_([intent, invoice["id"]]))
    ).all()
    assert len(events) == 2
    assert all(e.processed_at is not None and e.last_error is None for e in events)


def test_failed_renewal_recorded_from_its_payment_intent_event(
    client, ctx, simulator, quiet
) -> None:
    plan = subscribe(client, simulator)
    fail_future_charges(simulator, plan)
    invoice = simulator.renew(plan.stripe_subscription_id)
    assert invoice["status"] == "open"

    intent = intent_of(invoice)
    assert deliver(client, "payment_intent.payment_failed", stale(intent, "payment_intent")) == 200
    _, renewal = renewals(plan)
    assert (renewal.stripe_invoice_id, renewal.status) == (invoice["id"], DonationStatus.FAILED)
    db.session.expire_all()
    assert db.session.get(RecurringPlan, plan.id).status is PlanStatus.PAST_DUE
    assert templates().count("payment_failed") == 1
    assert deliver(client, "invoice.payment_failed", stale(invoice["id"], "invoice")) == 200
    assert len(renewals(plan)) == 2
    assert templates().count("payment_failed") == 1
