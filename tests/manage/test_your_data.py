"""Email change (confirmed at the new address, the old one told), data export and erasure."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import time_machine
from flask import Flask
from sqlalchemy import select

from donations.db import db, utcnow
from donations.manage.models import (
    EmailChange,
    ErasureRequest,
    ErasureStatus,
    ManageSession,
)
from donations.staff.models import AuditEntry, Role
from donations.supporters.models import PlanStatus, RecurringPlan, Supporter
from tests.manage.flows import (
    csrf_token,
    links_in,
    other_browser,
    sign_in,
    supporter,
    text_of,
)
from tests.payments.stripe_flows import charge_of, deliver, give, refund, stale, subscribe


def to(message) -> str:
    return str(message["To"].addresses[0].addr_spec)


def ask_for_change(client, page: str, new: str):
    return client.post("/manage/email", data={"csrf_token": csrf_token(page), "email": new})


def test_an_email_change_needs_the_new_address_and_tells_the_old(
    app: Flask, client, ctx, mailbox
) -> None:
    member = supporter("old@example.org")
    page = sign_in(client, mailbox, "old@example.org")
    mailbox.messages.clear()
    asked_change = ask_for_change(client, page, "New@Example.org")
    assert asked_change.status_code == 303
    assert asked_change.headers["Location"] == "/manage/account#email-address"
    page = client.get("/manage/account").text
    assert "We have sent a link to New@Example.org." in page
    assert "A change to New@Example.org waits" in page
    db.session.expire_all()
    assert db.session.get(Supporter, member.id).email == "old@example.org"  # not yet

    confirm = mailbox.wait_for(1)[0]
    assert to(confirm) == "New@Example.org"
    assert links_in(confirm, "/manage/e/") == []  # no way in for an unproven address
    link = links_in(confirm, "/manage/email/confirm/")[0]

    new_browser = other_browser(app.test_client())
    asked = new_browser.get(link)  # a scanner's GET changes nothing
    assert asked.status_code == 200
    done = new_browser.post(link, data={"csrf_token": csrf_token(asked.text)})
    assert done.status_code == 303
    assert done.headers["Location"] == "/manage/account"
    db.session.expire_all()
    changed = db.session.get(Supporter, member.id)
    assert (changed.email, changed.email_key) == ("New@Example.org", "new@example.org")
    assert f"Your email address is now {changed.email}." in new_browser.get(
        done.headers["Location"]
    ).text

    notice = mailbox.wait_for(2)[1]
    assert to(notice) == "old@example.org"
    assert "N•••@Example.org" in text_of(notice)
    assert "New@Example.org" not in text_of(notice)
    # Every earlier session ended; the confirming browser is signed in.
    signed_out = other_browser(client).get("/manage/account")
    assert signed_out.status_code == 303
    assert signed_out.headers["Location"] == "/manage"
    assert "Signed in as New@Example.org." in new_browser.get("/manage/account").text
    reasons = [
        s.end_reason for s in db.session.scalars(select(ManageSession).order_by(ManageSession.id))
    ]
    assert reasons == ["email_changed", None]
    # The link is spent, and links sent to the old address no longer sign in.
    assert other_browser(app.test_client()).get(link).status_code == 410
    actions = db.session.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.supporter_id == member.id)
        .order_by(AuditEntry.id)
    ).all()
    assert "manage.email_change_requested" in actions
    assert "manage.email_changed" in actions


def test_an_unconfirmed_change_expires_and_a_taken_address_is_said_only_to_its_owner(
    app: Flask, client, ctx, mailbox
) -> None:
    member = supporter("old@example.org")
    supporter("taken@example.org")
    page = sign_in(client, mailbox, "old@example.org")
    mailbox.messages.clear()
    # The answer to the one who asks does not say the address is someone's.
    assert ask_for_change(client, page, "taken@example.org").status_code == 303
    assert "We have sent a link to taken@example.org." in client.get("/manage/account").text
    link = links_in(mailbox.wait_for(1)[0], "/manage/email/confirm/")[0]

    with time_machine.travel(utcnow() + timedelta(hours=25), tick=False):
        expired = other_browser(app.test_client()).get(link)
    assert expired.status_code == 410
    assert "This link no longer works" in expired.text

    owner = other_browser(app.test_client())
    asked = owner.get(link)
    taken = owner.post(link, data={"csrf_token": csrf_token(asked.text)})
    assert taken.status_code == 409
    assert "already has gifts or reminders of its own" in taken.text
    db.session.expire_all()
    assert db.session.get(Supporter, member.id).email == "old@example.org"


def test_bad_new_addresses_are_refused_with_a_message(client, ctx, mailbox) -> None:
    supporter("old@example.org")
    page = sign_in(client, mailbox, "old@example.org")
    for bad in ("", "nope", "x" * 300 + "@example.org"):
        answer = ask_for_change(client, page, bad)
        assert answer.status_code == 400
        assert 'class="field-errors"' in answer.text
    assert db.session.query(EmailChange).count() == 0


def test_the_export_holds_what_the_ledger_holds(client, ctx, simulator, mailbox) -> None:
    gift = give(client, simulator, amount="15", email="export@example.org")
    plan = subscribe(client, simulator, amount="7", email="export@example.org")
    charge = charge_of(simulator, gift)
    refund(simulator, gift, 400)
    deliver(client, "charge.refunded", stale(charge, "charge", amount_refunded=400))
    sign_in(other_browser(client), mailbox, "export@example.org")

    answer = client.get("/manage/data.json")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    assert answer.headers["Cache-Control"] == "no-store"
    data = json.loads(answer.data)
    assert data["supporter"]["email"] == "export@example.org"
    donation = gift.donation()
    exported = {d["id"]: d for d in data["donations"]}
    one = exported[donation.id]
    assert one["charged"] == {"amount": "15.00", "currency": "USD"}
    assert one["refunded"] == {"amount": "4.00", "currency": "USD"}
    assert one["refund_state"] == "partially_refunded"
    assert [r["amount"]["amount"] for r in one["refunds"]] == ["4.00"]
    assert [p["stripe_subscription_id"] for p in data["plans"]] == [plan.stripe_subscription_id]
    assert {m["template"] for m in data["emails_sent"]} >= {"receipt", "welcome", "manage_sign_in"}
    assert data["manage_sessions"][0]["source"] == "sign_in_link"

    sheet = client.get("/manage/gifts.csv")
    assert sheet.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(sheet.data.decode())))
    assert len(rows) == 2  # the one-off gift and the plan's first payment
    by_reference = {row["reference"]: row for row in rows}
    row = by_reference[donation.stripe_payment_intent_id]
    assert (row["amount"], row["currency"], row["refunded"]) == ("15.00", "USD", "4.00")
    assert row["refund_state"] == "partially_refunded"
    audited = db.session.scalars(
        select(AuditEntry.details).where(AuditEntry.action == "manage.data_exported")
    ).all()
    assert [d["format"] for d in audited] == ["json", "csv"]


def test_the_gifts_csv_neutralises_formulas(client, ctx, simulator, mailbox) -> None:
    give(client, simulator, amount="5", email="formula@example.org")
    sign_in(other_browser(client), mailbox, "formula@example.org")
    from donations.supporters.models import Donation

    donation = db.session.scalar(select(Donation))
    donation.method = "=HYPERLINK(1)"
    db.session.commit()
    rows = list(csv.reader(io.StringIO(client.get("/manage/gifts.csv").data.decode())))
    assert rows[1][9] == "'=HYPERLINK(1)"


def test_erasure_is_applied_at_once_when_nothing_can_charge(
    client, ctx, simulator, mailbox
) -> None:
    gift = give(client, simulator, amount="9", email="erase@example.org")
    page = sign_in(other_browser(client), mailbox, "erase@example.org")
    donation = gift.donation()
    member_id = donation.supporter_id
    erase = client.get("/manage/erase")
    assert erase.status_code == 200
    # Without the box ticked nothing happens.
    unticked = client.post("/manage/erase", data={"csrf_token": csrf_token(erase.text)})
    assert unticked.status_code == 303
    assert unticked.headers["Location"] == "/manage/erase"
    assert "Tick the box to confirm that you want your data erased." in client.get(
        "/manage/erase"
    ).text
    db.session.expire_all()
    assert db.session.get(Supporter, member_id).erased_at is None
    assert db.session.scalar(select(ErasureRequest)) is None

    done = client.post(
        "/manage/erase", data={"csrf_token": csrf_token(erase.text), "confirm": "yes"}
    )
    assert done.status_code == 200
    assert "Your data is erased" in done.text
    db.session.expire_all()
    erased = db.session.get(Supporter, member_id)
    assert erased.erased_at is not None
    assert erased.email.endswith("@erased.invalid")
    kept = db.session.get(type(donation), donation.id)
    assert kept.amount == 900  # the money stays
    request_row = db.session.scalar(select(ErasureRequest))
    assert request_row.status is ErasureStatus.APPLIED
    sessions = db.session.scalars(select(ManageSession)).all()
    assert all(s.ended_at is not None and s.ip is None for s in sessions)
    signed_out = client.get("/manage/account")
    assert signed_out.status_code == 303
    assert signed_out.headers["Location"] == "/manage"
    assert page  # signed in before


def test_erasure_waits_for_staff_while_a_plan_can_charge(
    app: Flask, client, ctx, simulator, mailbox, signed_in
) -> None:
    plan = subscribe(client, simulator, amount="6", email="queued@example.org")
    sign_in(other_browser(client), mailbox, "queued@example.org")
    erase = client.get("/manage/erase")
    assert "can still charge you" in erase.text
    client.post("/manage/erase", data={"csrf_token": csrf_token(erase.text), "confirm": "yes"})
    db.session.expire_all()
    request_row = db.session.scalar(select(ErasureRequest))
    assert request_row is not None
    assert request_row.status is ErasureStatus.PENDING
    assert db.session.get(Supporter, plan.supporter_id).erased_at is None
    assert "You asked us to erase your data." in client.get("/manage/account").text

    admin, _ = signed_in(Role.ADMIN)
    listing = other_browser(admin).get("/staff/erasure-requests")
    assert listing.status_code == 200
    assert "queued@example.org" in listing.text
    confirmed = admin.post(
        f"/staff/erasure-requests/{request_row.id}/confirm",
        data={"csrf_token": csrf_token(listing.text)},
    )
    assert confirmed.status_code == 303
    assert confirmed.headers["Location"] == "/staff/erasure-requests"
    assert f"Supporter {plan.supporter_id} erased: their plans were cancelled first." in (
        admin.get(confirmed.headers["Location"]).text
    )
    db.session.expire_all()
    plan = db.session.get(RecurringPlan, plan.id)
    assert plan.status is PlanStatus.CANCELED
    assert (
        simulator.api("GET", f"/v1/subscriptions/{plan.stripe_subscription_id}")["status"]
        == "canceled"
    )
    assert db.session.get(Supporter, plan.supporter_id).erased_at is not None
    assert db.session.get(ErasureRequest, request_row.id).status is ErasureStatus.APPLIED
    actions = set(
        db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.supporter_id == plan.supporter_id)
        )
    )
    assert {"manage.erasure_requested", "plan.cancelled", "erasure_request.confirmed"} <= actions
