"""`flask supporters erase EMAIL`: personal data gone, money kept, the address suppressed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from donations.db import db
from donations.mail.models import EmailMessage, EmailStatus, SuppressionReason
from donations.mail.services import queue_email
from donations.mail.suppression import address_hash, suppression_for
from donations.payments.lifecycle import supporter_summary
from donations.payments.models import Refund
from donations.supporters.models import PlanStatus, Supporter
from tests.factories import plan, supporter
from tests.payments.stripe_flows import (
    WEBHOOK,
    charge_of,
    deliver,
    event,
    event_row,
    give,
    refund,
    stale,
    stripe_api,
)

EMAIL = "Reader@Example.org"


def erase(app, *args: str):
    result = app.test_cli_runner().invoke(args=["supporters", "erase", *args])
    db.session.expire_all()
    return result


def test_erasure_keeps_the_money_and_forgets_the_person(app, client, ctx, simulator) -> None:
    simulator.reset()  # the reconciliation at the end looks at today's payments only
    gift = give(client, simulator, amount="25", email=EMAIL)
    give(client, simulator, amount="5", email=EMAIL)
    refund(simulator, gift, 700)
    assert deliver(client, "charge.refunded", stale(charge_of(simulator, gift), "charge")) == 200
    person = gift.donation().supporter
    customer_id = person.stripe_customer_id
    assert customer_id
    # A stored webhook body that carries the address, and mail not sent yet.
    body, headers, carrier = event("customer.updated", stale(customer_id, "customer", email=EMAIL))
    assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    queue_email(
        "receipt",
        dedupe_key="later",
        to_address=EMAIL,
        supporter_id=person.id,
        context={"name": "Ada Reader"},
        send_after_commit=False,
    )
    db.session.commit()
    before = supporter_summary(person)
    donations_before = [
        (d.id, d.amount, d.fee, d.net, d.refunded_amount, d.status)
        for d in sorted(person.donations, key=lambda d: d.id)
    ]

    result = erase(app, EMAIL, "--yes")
    assert result.exit_code == 0, result.output
    assert "2 donations kept" in result.output

    person = db.session.get(Supporter, person.id)
    assert person is not None
    assert person.email == person.email_key == f"erased-{person.id}@erased.invalid"
    assert (person.name, person.country, person.newsletter_opt_in) == ("", None, False)
    assert person.erased_at is not None
    assert person.stripe_customer_id == customer_id  # the ledger still reconciles
    assert [
        (d.id, d.amount, d.fee, d.net, d.refunded_amount, d.status)
        for d in sorted(person.donations, key=lambda d: d.id)
    ] == donations_before
    assert all(d.card_last4 is None for d in person.donations)
    assert db.session.scalar(select(Refund.amount)) == 700
    after = supporter_summary(person)
    assert (after.status, after.totals, after.first_gift_at, after.last_gift_at) == (
        before.status,
        before.totals,
        before.first_gift_at,
        before.last_gift_at,
    )

    messages = db.session.scalars(select(EmailMessage)).all()
    assert {m.to_address for m in messages} == {person.email}
    assert all(m.context == {} and m.to_name == "" for m in messages)
    assert next(m for m in messages if m.dedupe_key == "later").status is EmailStatus.SUPPRESSED
    entry = suppression_for(address_hash(EMAIL))
    assert entry is not None
    assert entry.reason is SuppressionReason.ERASED
    # Stored webhook bodies naming the person are blanked (the simulator may
    # still deliver its own customer.created late: only ours are checked).
    stored = event_row(carrier)
    assert stored is not None
    assert "example.org" not in stored.payload.lower()
    assert customer_id not in stored.payload

    at_stripe = stripe_api(simulator, "GET", f"/v1/customers/{customer_id}")
    assert not at_stripe["email"]
    assert not at_stripe["name"]

    again = erase(app, EMAIL, "--yes")
    assert again.exit_code == 1
    assert "No supporter has that email address" in again.output
    # The ledger still matches Stripe exactly.
    today = datetime.now(UTC).date().isoformat()
    check = app.test_cli_runner().invoke(
        args=["stripe", "reconcile", "--since", today, "--dry-run"]
    )
    assert check.exit_code == 0, check.output


def test_erasure_is_refused_while_a_plan_can_still_charge(app, ctx) -> None:
    person = supporter(email="monthly@example.org")
    plan(person, status=PlanStatus.ACTIVE)
    db.session.commit()
    result = erase(app, "monthly@example.org", "--yes")
    assert result.exit_code == 1
    assert "cancel them first" in result.output
    unchanged = db.session.get(Supporter, person.id)
    assert unchanged is not None
    assert (unchanged.email, unchanged.erased_at) == ("monthly@example.org", None)
    assert suppression_for(address_hash("monthly@example.org")) is None


def test_erasure_asks_for_confirmation(app, ctx) -> None:
    person = supporter(email="careful@example.org")
    db.session.commit()
    result = app.test_cli_runner().invoke(
        args=["supporters", "erase", "careful@example.org"], input="n\n"
    )
    assert result.exit_code == 1
    db.session.expire_all()
    assert db.session.get(Supporter, person.id).erased_at is None


def test_unknown_address(app, ctx) -> None:
    result = erase(app, "nobody@example.org", "--yes")
    assert result.exit_code == 1
    assert "No supporter has that email address" in result.output
