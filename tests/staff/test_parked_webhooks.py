"""Admins see parked webhook events with their error, and can retry one."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select, update

from donations.db import db, utcnow
from donations.payments.models import StripeEvent
from donations.staff.models import AuditEntry, Role
from tests.payments.stripe_flows import deliver, event_row, give, stale
from tests.staff.conftest import csrf_token, forget_cached_csrf


def test_a_parked_event_is_shown_to_admins_and_retried(
    app, ctx, client, simulator, signed_in
) -> None:
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = replace(settings, webhook_max_attempts=1)
    try:
        assert (
            deliver(
                client,
                "payment_intent.succeeded",
                {"id": "pi_unknown_to_stripe", "object": "payment_intent"},
                event_id="evt_poison",
            )
            == 500
        )
    finally:
        app.config["SETTINGS"] = settings
    # A second parked event whose cause has gone away (Stripe now knows the payment).
    gift = give(client, simulator, record=False)
    assert (
        deliver(
            client,
            "payment_intent.succeeded",
            stale(gift.intent_id, "payment_intent"),
            event_id="evt_fixed",
        )
        == 200
    )
    db.session.execute(
        update(StripeEvent)
        .where(StripeEvent.stripe_event_id == "evt_fixed")
        .values(
            processed_at=None, parked_at=utcnow(), attempts=10, last_error="GatewayUnavailable()"
        )
    )
    db.session.commit()

    admin, _ = signed_in(Role.ADMIN)
    forget_cached_csrf()
    page = admin.get("/staff/webhooks")
    assert page.status_code == 200
    assert "evt_poison" in page.text
    assert "pi_unknown_to_stripe" in page.text  # its object and its error
    assert "payment_intent.succeeded" in page.text
    assert "Webhooks" in admin.get("/staff/").text

    viewer, _ = signed_in(Role.FINANCE)
    forget_cached_csrf()
    assert viewer.get("/staff/webhooks").status_code == 403
    forget_cached_csrf()
    page = admin.get("/staff/webhooks")

    fixed = event_row("evt_fixed")
    answer = admin.post(
        f"/staff/webhooks/{fixed.id}/retry", data={"csrf_token": csrf_token(page.text)}
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/staff/webhooks"
    row = event_row("evt_fixed")
    assert row.processed_at is not None
    assert row.parked_at is None
    assert f"{row.type} {row.stripe_event_id}: processed." in admin.get("/staff/webhooks").text
    assert gift.donation().status.value == "succeeded"

    poison = event_row("evt_poison")
    admin.post(f"/staff/webhooks/{poison.id}/retry", data={"csrf_token": csrf_token(page.text)})
    after = admin.get("/staff/webhooks").text
    assert "failed again" in after
    assert event_row("evt_poison").parked_at is not None
    audited = db.session.scalars(
        select(AuditEntry.target).where(AuditEntry.action == "webhook.retried")
    ).all()
    assert sorted(audited) == ["evt_fixed", "evt_poison"]

    # Without the CSRF token nothing happens.
    tries = event_row("evt_poison").attempts
    assert admin.post(f"/staff/webhooks/{poison.id}/retry").status_code == 400
    assert event_row("evt_poison").attempts == tries
    assert (
        admin.post(
            "/staff/webhooks/999999/retry", data={"csrf_token": csrf_token(page.text)}
        ).status_code
        == 404
    )
