"""Poison events: an event that fails every time is retried with backoff, then parked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from donations.db import db, utcnow
from donations.payments import webhooks
from donations.payments.models import StripeEvent
from tests.harness import change_settings
from tests.payments.stripe_flows import deliver, event_row

# A payment Stripe does not know: every attempt fails when the handler fetches it.
UNKNOWN = {"id": "pi_unknown_to_stripe", "object": "payment_intent"}


def due_now(event_id: str) -> None:
    """Let the retry time pass (rather than waiting minutes)."""
    db.session.execute(
        update(StripeEvent)
        .where(StripeEvent.stripe_event_id == event_id)
        .values(next_attempt_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def test_retry_delays_double_up_to_a_cap() -> None:
    delays = [webhooks.retry_delay(n) for n in range(1, 14)]
    assert delays[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert delays[-1] == timedelta(hours=6)
    assert delays == sorted(delays)


def test_an_event_that_always_fails_is_retried_with_backoff_then_parked(
    app, client, ctx, simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    change_settings(monkeypatch, app, webhook_max_attempts=3)
    assert deliver(client, "payment_intent.succeeded", UNKNOWN, event_id="evt_poison") == 500
    row = event_row("evt_poison")
    assert (row.attempts, row.parked_at, row.processed_at) == (1, None, None)
    assert "Not Found" in row.last_error
    assert timedelta(seconds=50) < row.next_attempt_at - utcnow() <= timedelta(minutes=1)

    # Not due yet: the sweep leaves it alone.
    assert webhooks.process_pending_events() == 0
    assert event_row("evt_poison").attempts == 1

    due_now("evt_poison")
    assert webhooks.process_pending_events() == 0
    row = event_row("evt_poison")
    assert (row.attempts, row.parked_at) == (2, None)
    assert timedelta(minutes=1) < row.next_attempt_at - utcnow() <= timedelta(minutes=2)

    due_now("evt_poison")
    webhooks.process_pending_events()
    row = event_row("evt_poison")
    assert row.attempts == 3
    assert row.parked_at is not None
    assert row.next_attempt_at is None
    assert "Not Found" in row.last_error

    # Parked: neither the sweep nor Stripe's redelivery tries it again, and the
    # redelivery is answered 2xx so Stripe stops as well.
    db.session.execute(
        update(StripeEvent)
        .where(StripeEvent.stripe_event_id == "evt_poison")
        .values(received_at=utcnow() - timedelta(days=1))
    )
    db.session.commit()
    assert webhooks.process_pending_events() == 0
    assert deliver(client, "payment_intent.succeeded", UNKNOWN, event_id="evt_poison") == 200
    row = event_row("evt_poison")
    assert (row.attempts, row.deliveries) == (3, 2)
    assert [e.stripe_event_id for e in webhooks.parked_events()] == ["evt_poison"]


def test_a_retried_parked_event_fails_once_more_and_stays_parked(
    app, client, ctx, simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    change_settings(monkeypatch, app, webhook_max_attempts=1)
    assert deliver(client, "payment_intent.succeeded", UNKNOWN, event_id="evt_poison") == 500
    row = event_row("evt_poison")
    assert row.parked_at is not None
    first_parked = row.parked_at

    assert webhooks.retry_parked_event(row.id) is False
    row = event_row("evt_poison")
    assert row.parked_at is not None
    assert row.parked_at >= first_parked
    assert row.processed_at is None
