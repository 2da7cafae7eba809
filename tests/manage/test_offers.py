"""Upgrade links: staff propose a change, the supporter accepts it in one click after
seeing it; a tampered, expired or already used link changes nothing."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from donations.ask.config import AskConfig
from donations.db import db
from donations.manage import offers
from donations.money import Money
from donations.staff.models import AuditEntry, Role
from donations.supporters.models import RecurringPlan
from tests.manage.flows import csrf_token, links_in, other_browser
from tests.manage.test_plans import fresh, squash, stripe_item
from tests.payments.stripe_flows import renewals, subscribe


def propose(signed_in, plan: RecurringPlan, amount: str, frequency: str):
    staff, _ = signed_in(Role.FINANCE)
    return propose_as(staff, plan, amount, frequency)


def propose_as(staff, plan: RecurringPlan, amount: str, frequency: str):
    supporter_page = other_browser(staff).get(f"/staff/supporters/{plan.supporter_id}")
    assert f"/staff/plans/{plan.id}/offer" in supporter_page.text
    page = staff.get(f"/staff/plans/{plan.id}/offer")
    assert page.status_code == 200, page.text
    return staff.post(
        f"/staff/plans/{plan.id}/offer",
        data={"csrf_token": csrf_token(page.text), "amount": amount, "frequency": frequency},
    )


def offer_link(mailbox) -> str:
    for message in mailbox.messages:
        if "Would you change your support?" in str(message["Subject"]):
            (link,) = links_in(message, "/manage/offer/")
            return link
    raise AssertionError([m["Subject"] for m in mailbox.messages])


def test_an_upgrade_link_accepted(app: Flask, client, ctx, simulator, mailbox, signed_in) -> None:
    plan = subscribe(client, simulator, amount="10", email="loyal@example.org")
    mailbox.wait_for(2)
    mailbox.messages.clear()
    staff, _ = signed_in(Role.FINANCE)
    sent = propose_as(staff, plan, "15", "annual")
    assert sent.status_code == 303, sent.text
    assert sent.headers["Location"] == f"/staff/supporters/{plan.supporter_id}"
    told = squash(other_browser(staff).get(sent.headers["Location"]).text)
    assert f"A link proposing $15.00 annual is on its way to {plan.supporter.email}." in told
    mailbox.wait_for(1)
    link = offer_link(mailbox)
    body = mailbox.messages[0].get_body(("plain",)).get_content()
    assert "Would you give $15.00 every year instead" in body

    # Opening the link shows exactly what changes, and changes nothing.
    page = other_browser(client).get(link)
    assert page.status_code == 200, page.text
    shown = squash(page.text)
    assert "Now $10.00, monthly" in shown
    assert "From your next payment $15.00, annual" in shown
    assert "Then $15.00 every year. Nothing is charged now." in shown
    assert stripe_item(simulator, plan)["price"]["unit_amount"] == 1000

    mailbox.messages.clear()
    accepted = client.post(link, data={"csrf_token": csrf_token(page.text)})
    assert accepted.status_code == 200, accepted.text
    assert "You will be charged $15.00 every year." in squash(accepted.text)
    item = stripe_item(simulator, plan)
    assert (item["price"]["unit_amount"], item["price"]["recurring"]["interval"]) == (1500, "year")
    plan = fresh(plan)
    assert (plan.amount, str(plan.frequency)) == (1500, "annual")
    assert len(renewals(plan)) == 1  # nothing charged now
    actions = list(
        db.session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.supporter_id == plan.supporter_id)
            .order_by(AuditEntry.id)
        )
    )
    assert actions[-2:] == ["plan.upgrade_offered", "manage.plan_changed"]
    timeline = squash(other_browser(staff).get(f"/staff/supporters/{plan.supporter_id}").text)
    assert "manage.plan_changed by supporter (link in the plan_upgrade_offer email)" in timeline
    assert "plan.upgrade_offered by finance@newsroom.org" in timeline
    other_browser(client)
    (confirmation,) = mailbox.wait_for(1)
    assert "Your support is now $15.00 a year" in str(confirmation["Subject"])

    # Used once: the plan has moved on, so the same link is refused.
    again = other_browser(client).get(link)
    assert again.status_code == 410
    assert "no longer applies" in squash(again.text)
    assert client.post(link, data={"csrf_token": csrf_token(page.text)}).status_code == 410


def test_tampered_and_expired_links_are_refused(
    app: Flask, client, ctx, simulator, mailbox, signed_in, monkeypatch
) -> None:
    plan = subscribe(client, simulator, amount="10", email="loyal@example.org")
    mailbox.wait_for(2)
    mailbox.messages.clear()
    assert propose(signed_in, plan, "20", "monthly").status_code == 303
    mailbox.wait_for(1)
    link = offer_link(mailbox)
    token = link.rsplit("/", 1)[1]
    # Another amount in the payload, or a changed signature: not ours.
    payload, rest = token.split(".", 1)
    for bad in (payload[:-2] + "xx." + rest, token[:-3] + "abc", "nonsense", "x" * 700):
        page = other_browser(client).get(f"/manage/offer/{bad}")
        assert page.status_code == 404, bad
        assert "This link is not valid." in squash(page.text)
    page = other_browser(client).get(link)
    assert page.status_code == 200
    monkeypatch.setattr(offers, "OFFER_MAX_AGE", timedelta(seconds=-1))
    expired = client.get(link)
    assert expired.status_code == 410
    assert "This link has expired." in squash(expired.text)
    refused = client.post(link, data={"csrf_token": csrf_token(page.text)})
    assert refused.status_code == 410
    assert "This link has expired." in squash(refused.text)
    assert stripe_item(simulator, plan)["price"]["unit_amount"] == 1000
    assert fresh(plan).amount == 1000


def test_staff_offers_stay_within_the_limits(app: Flask, client, ctx, simulator, signed_in) -> None:
    plan = subscribe(client, simulator, amount="10", email="loyal@example.org")
    refused = propose(signed_in, plan, "5000", "monthly")
    assert refused.status_code == 400
    assert "The largest gift online is $1,000.00." in squash(refused.text)
    viewer, _ = signed_in(Role.VIEWER)
    assert other_browser(viewer).get(f"/staff/plans/{plan.id}/offer").status_code == 403
    assert re.search("offer", "".join(db.session.scalars(select(AuditEntry.action)))) is None


def test_an_upgrade_link_proposing_to_cover_the_fee(
    app: Flask, client, ctx, simulator, mailbox, signed_in
) -> None:
    plan = subscribe(client, simulator, amount="10", email="cover@example.org")
    assert plan.fee_cover_amount == 0
    mailbox.wait_for(2)
    mailbox.messages.clear()
    staff, _ = signed_in(Role.FINANCE)
    form = other_browser(staff).get(f"/staff/plans/{plan.id}/offer")
    assert 'name="cover_fee"' in form.text
    sent = staff.post(
        f"/staff/plans/{plan.id}/offer",
        data={
            "csrf_token": csrf_token(form.text),
            "amount": "10",
            "frequency": "monthly",
            "cover_fee": "1",
        },
    )
    assert sent.status_code == 303, sent.text
    assert sent.headers["Location"] == f"/staff/supporters/{plan.supporter_id}"
    mailbox.wait_for(1)
    link = offer_link(mailbox)
    page = other_browser(client).get(link)
    assert page.status_code == 200, page.text
    # Card in USD, 2.9 % + 30 cents grossed up: ceil((1000 + 30) / 0.971) - 1000 = 61.
    shown = squash(page.text)
    assert "From your next payment $10.61, monthly" in shown
    assert "Including $0.61 to cover the processing fee." in shown
    accepted = client.post(link, data={"csrf_token": csrf_token(page.text)})
    assert accepted.status_code == 200
    assert stripe_item(simulator, plan)["price"]["unit_amount"] == 1061
    plan = fresh(plan)
    assert (plan.amount, plan.fee_cover_amount) == (1000, 61)
    charged = Money(plan.amount + plan.fee_cover_amount, plan.currency).format()
    assert f"You will be charged {charged} every month." in squash(accepted.text)


def test_covering_the_fee_is_refused_where_the_ask_does_not_offer_it(
    app: Flask, client, ctx, simulator, mailbox, signed_in, monkeypatch
) -> None:
    plan = subscribe(client, simulator, amount="10", email="nocover@example.org")
    # The newsroom stopped offering the cover (for this method and currency).
    monkeypatch.setattr(AskConfig, "fee_cover_for", lambda self, gift, method: None)
    staff, _ = signed_in(Role.FINANCE)
    form = other_browser(staff).get(f"/staff/plans/{plan.id}/offer")
    refused = staff.post(
        f"/staff/plans/{plan.id}/offer",
        data={
            "csrf_token": csrf_token(form.text),
            "amount": "10",
            "frequency": "monthly",
            "cover_fee": "1",
        },
    )
    assert refused.status_code == 400
    assert "Covering the processing fee is not offered for this plan." in refused.text
    assert stripe_item(simulator, plan)["price"]["unit_amount"] == 1000


@pytest.mark.parametrize(
    ("rule", "proposal", "price"),
    [
        (("annual", 10), "Would you give $100.00 every year instead", (10000, "year")),
        (("raise", 25), "Would you give $13.00 every month instead", (1300, "month")),
    ],
)
def test_a_monthly_receipt_carries_the_upgrade_the_newsroom_chose(
    app: Flask, client, ctx, simulator, mailbox, monkeypatch, rule, proposal, price
) -> None:
    monkeypatch.setitem(
        app.config,
        "SETTINGS",
        dataclasses.replace(app.config["SETTINGS"], receipt_upgrade_offer=rule),
    )
    plan = subscribe(client, simulator, amount="10", email="receipt-offer@example.org")
    (receipt,) = [m for m in mailbox.wait_for(2) if "receipt" in str(m["Subject"]).lower()]
    text = receipt.get_body(("plain",)).get_content()
    assert proposal in text
    html = receipt.get_body(("html",)).get_content()
    (link,) = links_in(receipt, "/manage/offer/")
    assert link in html  # the same link in both parts
    page = other_browser(client).get(link)
    assert page.status_code == 200, page.text
    accepted = client.post(link, data={"csrf_token": csrf_token(page.text)})
    assert accepted.status_code == 200
    item = stripe_item(simulator, plan)
    assert (item["price"]["unit_amount"], item["price"]["recurring"]["interval"]) == price
    plan = fresh(plan)
    assert plan.amount == price[0]
    assert f"You will be charged {Money(plan.amount, plan.currency).format()} every" in squash(
        accepted.text
    )


def test_no_upgrade_in_receipts_by_default(
    app: Flask, client, ctx, simulator, mailbox
) -> None:
    assert app.config["SETTINGS"].receipt_upgrade_offer is None
    subscribe(client, simulator, amount="10", email="plain-receipt@example.org")
    for message in mailbox.wait_for(2):
        assert links_in(message, "/manage/offer/") == []
