"""Supporter search, the supporter page, and the actions on it (refunds through the simulator)."""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from sqlalchemy import func, select

from donations.db import commit, db
from donations.mail.models import EmailMessage
from donations.money import Money
from donations.payments.models import Refund, RefundStatus
from donations.payments.services import gateway, record_payment
from donations.staff.models import AuditEntry, Role, SupporterNote
from donations.supporters.models import DonationStatus, PlanStatus
from tests import factories
from tests.staff.conftest import csrf_token, forget_cached_csrf


def stripe_refunds(simulator, payment_intent: str) -> list[dict]:
    answer = requests.get(
        f"{simulator.url}/v1/refunds",
        params={"payment_intent": payment_intent},
        auth=("sk_test_local", ""),
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["data"]


def paid_donation(app, simulator, amount: int = 1000):
    """A donation paid for real at the simulator, recorded as the webhook would."""
    with app.test_request_context():
        owner = factories.supporter()
        owner.stripe_customer_id = gateway().ensure_customer(
            email=owner.email, name=owner.name, idempotency_key=uuid.uuid4().hex
        )
        donation = factories.donation(owner, amount, status=DonationStatus.PENDING)
        intent = gateway().create_payment(
            amount=Money(amount, "USD"),
            customer_id=owner.stripe_customer_id,
            method_types=["card"],
            metadata={"donation_attempt": donation.attempt_key},
            idempotency_key=uuid.uuid4().hex,
        )
        donation.stripe_payment_intent_id = intent.id
        commit()
        assert simulator.confirm(intent.client_secret).json()["status"] == "succeeded"
        record_payment(gateway().retrieve_payment(intent.id))
        commit()
        return donation.id, owner.id, intent.id


def refund_via_pages(client, donation_id: int, amount: str, reason: str = "asked by reader"):
    form = client.get(f"/staff/donations/{donation_id}/refund")
    assert form.status_code == 200
    review = client.post(
        f"/staff/donations/{donation_id}/refund",
        data={"csrf_token": csrf_token(form.text), "amount": amount, "reason": reason},
    )
    if review.status_code != 200:
        return review, None
    assert "Confirm the refund" in review.text
    fields = dict(re.findall(r'name="(\w+)"(?: type="hidden")? value="([^"]*)"', review.text))
    fields.update(
        re.findall(r'id="(attempt)" name="attempt" type="hidden" value="([^"]*)"', review.text)
    )
    return client.post(f"/staff/donations/{donation_id}/refund", data=fields), fields


def test_search_by_email_name_and_stripe_ids(app, signed_in) -> None:
    with app.app_context():
        ada = factories.supporter("Ada@Example.org", "Ada Lovelace", stripe_customer_id="cus_ada")
        factories.donation(ada, stripe_payment_intent_id="pi_ada", stripe_charge_id="ch_ada")
        factories.plan(ada, stripe_subscription_id="sub_ada")
        factories.supporter("grace@example.org", "Grace Hopper")
        factories.supporter("percent@example.org", "100% reader")
        commit()
    client, _ = signed_in(Role.FINANCE)

    def found(query: str) -> list[str]:
        page = client.get("/staff/supporters", query_string={"q": query})
        assert page.status_code == 200
        return re.findall(r'<td><a href="/staff/supporters/\d+">([^<]+)</a>', page.text)

    assert found("ada@") == ["Ada@Example.org"]
    assert found("LOVELACE") == ["Ada@Example.org"]
    assert found("hopper") == ["grace@example.org"]
    for stripe_id in ("cus_ada", "pi_ada", "ch_ada", "sub_ada"):
        assert found(stripe_id) == ["Ada@Example.org"], stripe_id
    assert found("pi_other") == []
    assert found("%") == ["percent@example.org"]
    assert found("_") == []
    assert found("") == []


def test_supporter_page_timeline(app, signed_in, make_staff) -> None:
    author = make_staff(Role.FINANCE, "author@newsroom.org")
    with app.app_context():
        owner = factories.supporter()
        factories.donation(owner, 1234, stripe_payment_intent_id="pi_timeline")
        factories.plan(owner, 500)
        db.session.add(
            SupporterNote(
                supporter_id=owner.id, staff_id=author.id, body="Called about her <b>receipt</b>"
            )
        )
        db.session.add(
            EmailMessage(
                dedupe_key="x", template="receipt", to_address=owner.email, supporter_id=owner.id
            )
        )
        supporter_id = owner.id
        commit()
    client, _ = signed_in(Role.FINANCE)
    page = client.get(f"/staff/supporters/{supporter_id}")
    assert page.status_code == 200
    html = page.text
    assert "$12.34" in html
    assert "pi_timeline" in html
    for kind in ("gift", "plan", "note", "email"):
        assert f'class="timeline-{kind}"' in html, kind
    assert "Called about her &lt;b&gt;receipt&lt;/b&gt;" in html
    assert client.get("/staff/supporters/999999").status_code == 404


def test_add_note(app, signed_in) -> None:
    with app.app_context():
        supporter_id = factories.supporter().id
        commit()
    client, staff = signed_in(Role.FINANCE)
    page = client.get(f"/staff/supporters/{supporter_id}")
    token = csrf_token(page.text)
    empty = client.post(
        f"/staff/supporters/{supporter_id}/notes", data={"csrf_token": token, "body": " "}
    )
    assert empty.status_code == 400
    assert "This field is required." in empty.text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SupporterNote)) == 0
    added = client.post(
        f"/staff/supporters/{supporter_id}/notes",
        data={"csrf_token": token, "body": "Prefers email"},
    )
    assert added.status_code == 303
    assert added.headers["Location"] == f"/staff/supporters/{supporter_id}"
    shown = client.get(added.headers["Location"]).text
    assert "Note added." in shown
    assert "Prefers email" in shown
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "note.added"))
        assert (entry.supporter_id, entry.staff_id) == (supporter_id, staff.id)
        assert db.session.scalar(select(func.count()).select_from(SupporterNote)) == 1


def test_refund_partial_then_the_rest_through_stripe(app, simulator, signed_in) -> None:
    donation_id, supporter_id, intent = paid_donation(app, simulator, 1000)
    client, staff = signed_in(Role.FINANCE)

    done, fields = refund_via_pages(client, donation_id, "4.00")
    assert done.status_code == 303
    page = client.get(done.headers["Location"]).text
    assert "The refund of $4.00 of donation #" in page
    assert "succeeded: the money is on its way back" in page
    assert '<td class="status">partially refunded</td>' in page
    # The same confirmation again (a double click): no second refund.
    again = client.post(f"/staff/donations/{donation_id}/refund", data=fields)
    assert again.status_code == 303
    assert again.headers["Location"] == f"/staff/supporters/{supporter_id}"
    assert [r["amount"] for r in stripe_refunds(simulator, intent)] == [400]

    too_much, _ = refund_via_pages(client, donation_id, "6.01")
    assert too_much.status_code == 400
    assert "At most $6.00 can be refunded." in too_much.text

    rest, _ = refund_via_pages(client, donation_id, "")
    assert rest.status_code == 303
    assert "The refund of $6.00 of donation #" in client.get(rest.headers["Location"]).text
    assert sorted(r["amount"] for r in stripe_refunds(simulator, intent)) == [400, 600]

    with app.app_context():
        donation = db.session.get(factories.Donation, donation_id)
        assert donation.refunded_amount == 1000
        attempts = db.session.scalars(select(Refund).order_by(Refund.id)).all()
        assert [(a.amount, a.status, a.staff_id) for a in attempts] == [
            (400, RefundStatus.SUCCEEDED, staff.id),
            (600, RefundStatus.SUCCEEDED, staff.id),
        ]
        assert all(a.stripe_refund_id and a.stripe_refund_id.startswith("re_") for a in attempts)
        entries = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "refund.created")
        ).all()
        assert [(e.supporter_id, e.details["amount"]) for e in entries] == [
            (supporter_id, {"amount": 400, "currency": "USD"}),
            (supporter_id, {"amount": 600, "currency": "USD"}),
        ]
    page = client.get(f"/staff/supporters/{supporter_id}").text
    assert "Refund…" not in page
    assert '<td class="status">refunded</td>' in page
    assert page.count('class="timeline-refund"') == 2
    with app.app_context():
        # The supporter is told of each refund once: two refunds, two emails.
        refund_mail = db.session.scalars(
            select(EmailMessage).where(EmailMessage.template == "refund")
        ).all()
        assert sorted(m.context["amount"] for m in refund_mail) == [400, 600]
        assert [m.context["fully_refunded"] for m in refund_mail] == [False, True]
    nothing_left = client.get(f"/staff/donations/{donation_id}/refund")
    assert "Nothing can be refunded" in nothing_left.text


@pytest.mark.parametrize("amount", ["abc", "0", "-1", "1.234", "NaN", "1e3", "10.00.0"])
def test_bad_refund_amounts_change_nothing(app, signed_in, amount) -> None:
    with app.app_context():
        owner = factories.supporter()
        donation_id = factories.donation(owner, 1000, stripe_payment_intent_id="pi_bad").id
        commit()
    client, _ = signed_in(Role.FINANCE)
    answer, _ = refund_via_pages(client, donation_id, amount)
    assert answer.status_code == 400
    assert (
        "Enter an amount in USD, such as" in answer.text
        or "The amount must be more than zero." in answer.text
    ), answer.text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
        assert db.session.get(factories.Donation, donation_id).refunded_amount == 0


def test_refund_refused_by_stripe_is_recorded(app, signed_in) -> None:
    with app.app_context():
        owner = factories.supporter()
        donation_id = factories.donation(owner, 1000, stripe_payment_intent_id="pi_unknown").id
        commit()
    client, _ = signed_in(Role.FINANCE)
    answer, _ = refund_via_pages(client, donation_id, "")
    assert answer.status_code == 303
    page = client.get(answer.headers["Location"]).text
    assert "The refund of $10.00 of donation" in page
    assert "Nothing was refunded." in page
    with app.app_context():
        attempt = db.session.scalar(select(Refund))
        assert attempt.status is RefundStatus.FAILED
        assert db.session.get(factories.Donation, donation_id).refunded_amount == 0
        assert (
            db.session.scalar(select(AuditEntry.action).where(AuditEntry.action.like("refund.%")))
            == "refund.failed"
        )


def test_resend_receipt(app, simulator, signed_in, mailbox) -> None:
    donation_id, supporter_id, _ = paid_donation(app, simulator, 1500)
    assert len(mailbox.wait_for(1)) == 1
    client, _ = signed_in(Role.FINANCE)
    token = csrf_token(client.get(f"/staff/supporters/{supporter_id}").text)
    for expected in (2, 3):
        answer = client.post(
            f"/staff/donations/{donation_id}/resend-receipt", data={"csrf_token": token}
        )
        assert answer.status_code == 303
        assert answer.headers["Location"] == f"/staff/supporters/{supporter_id}"
        with app.app_context():
            email = db.session.get(factories.Supporter, supporter_id).email
        assert (
            f"The receipt for donation #{donation_id} is on its way to {email}."
            in client.get(answer.headers["Location"]).text
        )
        assert len(mailbox.wait_for(expected)) == expected
    assert mailbox.messages[1]["Subject"] == mailbox.messages[0]["Subject"]
    assert "refunded" not in mailbox.messages[1].get_body(("plain",)).get_content()

    with app.app_context():
        keys = db.session.scalars(select(EmailMessage.dedupe_key).order_by(EmailMessage.id)).all()
        assert keys == [
            f"receipt:donation:{donation_id}",
            f"receipt:donation:{donation_id}:resend:1",
            f"receipt:donation:{donation_id}:resend:2",
        ]
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "receipt.resent")
            )
            == 2
        )


def test_resent_receipt_states_the_refund(app, simulator, signed_in, mailbox) -> None:
    donation_id, supporter_id, _ = paid_donation(app, simulator, 1500)
    client, _ = signed_in(Role.FINANCE)
    done, _ = refund_via_pages(client, donation_id, "")
    assert done.status_code == 303
    assert done.headers["Location"] == f"/staff/supporters/{supporter_id}"
    token = csrf_token(client.get(f"/staff/supporters/{supporter_id}").text)
    answer = client.post(
        f"/staff/donations/{donation_id}/resend-receipt", data={"csrf_token": token}
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/staff/supporters/{supporter_id}"
    # The receipt, the refund confirmation, the resent receipt.
    messages = mailbox.wait_for(3)
    refund_mail = next(m for m in messages if "refunded" in m["Subject"])
    assert refund_mail["Subject"] == "We have refunded $15.00 of your gift"
    assert "The whole gift has now been refunded." in refund_mail.get_body(("plain",)).get_content()
    receipts = [m for m in messages if m["Subject"].startswith("Your receipt")]
    stated = "This gift has been refunded in full ($15.00); nothing of it was kept."
    # The first receipt predates the refund; the resent one states it, in both parts.
    assert [stated in m.get_body(("plain",)).get_content() for m in receipts].count(True) == 1
    resent = next(m for m in receipts if stated in m.get_body(("plain",)).get_content())
    assert stated in resent.get_body(("html",)).get_content()


def test_resend_without_a_receipt_is_refused(app, signed_in) -> None:
    with app.app_context():
        owner = factories.supporter()
        donation_id = factories.donation(owner, status=DonationStatus.PENDING).id
        supporter_id = owner.id
        commit()
    client, _ = signed_in(Role.FINANCE)
    token = csrf_token(client.get(f"/staff/supporters/{supporter_id}").text)
    answer = client.post(
        f"/staff/donations/{donation_id}/resend-receipt", data={"csrf_token": token}
    )
    assert answer.status_code == 303
    assert "no receipt to resend" in client.get(answer.headers["Location"]).text


def test_cancel_plan(app, signed_in) -> None:
    with app.app_context():
        owner = factories.supporter()
        plan_id = factories.plan(owner, status=PlanStatus.INCOMPLETE).id
        missing_id = factories.plan(owner, stripe_subscription_id="sub_missing").id
        supporter_id = owner.id
        commit()
    client, _ = signed_in(Role.FINANCE)
    page = client.get(f"/staff/plans/{plan_id}/cancel")
    assert page.status_code == 200
    token = csrf_token(page.text)
    done = client.post(
        f"/staff/plans/{plan_id}/cancel", data={"csrf_token": token, "reason": "moved abroad"}
    )
    assert done.status_code == 303
    assert done.headers["Location"] == f"/staff/supporters/{supporter_id}"
    assert f"Plan #{plan_id} is cancelled" in client.get(done.headers["Location"]).text
    twice = client.post(f"/staff/plans/{plan_id}/cancel", data={"csrf_token": token})
    assert twice.status_code == 409
    with app.app_context():
        status = db.session.get(factories.RecurringPlan, plan_id).status
    assert f"A plan that is {status} cannot be cancelled." in twice.text
    refused = client.post(f"/staff/plans/{missing_id}/cancel", data={"csrf_token": token})
    assert refused.status_code == 409
    assert "Stripe did not cancel the plan" in refused.text
    with app.app_context():
        plan = db.session.get(factories.RecurringPlan, plan_id)
        assert (plan.status, plan.cancellation_reason) == (PlanStatus.CANCELED, "moved abroad")
        assert db.session.get(factories.RecurringPlan, missing_id).status is PlanStatus.ACTIVE
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "plan.cancelled"))
        assert entry.details["reason"] == "moved abroad"


def test_audit_log_pages(app, signed_in) -> None:
    from donations.staff.services import audit

    with app.app_context():
        for n in range(120):
            audit("test.entry", target=f"n:{n}")
        commit()
    client, _ = signed_in(Role.ADMIN)
    first = client.get("/staff/audit")
    assert first.status_code == 200
    assert "Page 1 of 3" in first.text
    assert "n:119" in first.text
    assert "n:0<" not in first.text
    last = client.get("/staff/audit?page=3")
    assert "n:0<" in last.text
    beyond = client.get("/staff/audit?page=99")
    assert beyond.status_code == 200
    assert "n:0<" in beyond.text  # the last page
    unreadable = client.get("/staff/audit?page=x")
    assert unreadable.status_code == 200
    assert "Page 1 of 3" in unreadable.text
    assert "n:119" in unreadable.text


def test_cancel_a_live_subscription_at_the_simulator(client, ctx, simulator, signed_in) -> None:
    from tests.harness import signed_event
    from tests.support.test_recurring import start_plan, thanks_url

    pay_url, secret = start_plan(client)
    simulator.confirm_setup(secret)
    client.get(thanks_url(pay_url))
    plan = db.session.scalar(select(factories.RecurringPlan))
    assert plan.status is PlanStatus.ACTIVE
    subscription = plan.stripe_subscription_id
    assert subscription

    forget_cached_csrf()
    staff_client, _ = signed_in(Role.FINANCE)
    page = staff_client.get(f"/staff/plans/{plan.id}/cancel")
    answer = staff_client.post(
        f"/staff/plans/{plan.id}/cancel",
        data={"csrf_token": csrf_token(page.text), "reason": "asked by phone"},
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/staff/supporters/{plan.supporter_id}"
    db.session.refresh(plan)
    assert (plan.status, plan.cancellation_reason) == (PlanStatus.CANCELED, "asked by phone")
    at_stripe = requests.get(
        f"{simulator.url}/v1/subscriptions/{subscription}", auth=("sk_test_local", ""), timeout=10
    )
    assert at_stripe.json()["status"] == "canceled"
    # Stripe's own notice of the cancellation arrives afterwards: a no-op.
    body, headers = signed_event(
        "customer.subscription.deleted", {"id": subscription, "object": "subscription"}
    )
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 200
    db.session.refresh(plan)
    assert (plan.status, plan.cancellation_reason) == (PlanStatus.CANCELED, "asked by phone")


def test_supporter_page_status_and_stripe_side_movements(app, signed_in) -> None:
    from datetime import UTC, datetime

    from donations.payments.models import DisputeStatus

    moment = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with app.app_context():
        owner = factories.supporter("lapsing@example.org")
        payout = factories.payout(
            900, stripe_payout_id="po_page", arrival_date=moment, stripe_created_at=moment
        )
        gift = factories.donation(owner, 1000, succeeded_at=moment, payout_id=payout.id)
        disputed = factories.donation(owner, 2000, succeeded_at=moment)
        # A refund made in Stripe's dashboard (no staff member) and a dispute.
        factories.refund(
            gift,
            300,
            stripe_refund_id="re_stripe_side",
            reason="requested_by_customer",
            stripe_created_at=moment,
        )
        factories.dispute(
            disputed,
            DisputeStatus.LOST,
            stripe_dispute_id="dp_page",
            stripe_created_at=moment,
            closed_at=moment,
        )
        factories.plan(
            owner, 1000, status=PlanStatus.CANCELED, canceled_at=moment,
            cancellation_reason="payment_failed",
        )  # fmt: skip
        supporter_id = owner.id
        commit()
    client, _ = signed_in(Role.FINANCE)
    html = client.get(f"/staff/supporters/{supporter_id}").text
    # The status is the lifecycle's: the plan ended because payments failed.
    assert re.search(r'class="supporter-status">lapsed<', html)
    for kind, reference in (
        ("refund", "re_stripe_side"),
        ("dispute", "dp_page"),
        ("payout", "po_page"),
    ):
        assert f'class="timeline-{kind}"' in html, kind
        assert reference in html
    assert html.count('<ol class="timeline">') == 1
