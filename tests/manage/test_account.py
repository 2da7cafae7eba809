"""What a signed-in supporter sees is what the ledger records: plans, gifts, refunds,
receipts (page and PDF), reminders and email choices -- through the simulator."""

from __future__ import annotations

import io
import re
from datetime import timedelta

from flask import Flask
from flask_babel import refresh
from pypdf import PdfReader
from sqlalchemy import select

from donations.db import commit, db, utcnow
from donations.mail.models import SuppressionReason
from donations.mail.suppression import address_hash, suppression_for
from donations.manage.models import ManageSession
from donations.reminders.models import Reminder, ReminderStatus
from donations.staff.models import AuditEntry
from donations.supporters.models import Consent, ConsentTopic, Donation, RecurringPlan, Supporter
from tests.factories import reminder
from tests.manage.flows import csrf_token, links_in, other_browser, sign_in, text_of
from tests.payments.stripe_flows import (
    charge_of,
    deliver,
    give,
    refund,
    stale,
    start_gift,
    subscribe,
)


def squash(text: str) -> str:
    """Page text with tags dropped and spaces (Babel's narrow ones too) made plain."""
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"[\s\u00a0\u202f]+", " ", text)


def card(page: str, element_id: str) -> str:
    match = re.search(
        rf'<li class="card[^"]*" id="{element_id}">(.*?)</li>\s*(?=<li class="card|</ul>)',
        page,
        re.S,
    )
    assert match, f"no {element_id} on the page"
    return squash(match.group(1))


def email_link_from(mailbox, template_subject: str) -> str:
    for message in mailbox.messages:
        if template_subject in str(message["Subject"]):
            links = links_in(message, "/manage/e/")
            assert len(links) == 1, text_of(message)
            return links[0]
    raise AssertionError(
        f"no email {template_subject!r}: {[m['Subject'] for m in mailbox.messages]}"
    )


def test_the_receipt_link_signs_in_and_shows_the_gift_as_the_ledger_has_it(
    client, ctx, simulator, mailbox
) -> None:
    gift = give(client, simulator, amount="25", email="giver@example.org")
    mailbox.wait_for(1)
    link = email_link_from(mailbox, "receipt")
    html_part = mailbox.messages[0].get_body(preferencelist=("html",)).get_content()
    assert "Manage your support</a>" in html_part

    signed_in = other_browser(client).get(link)
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"].endswith("/manage/account")
    page = client.get("/manage/account").text
    donation = gift.donation()
    shown = card(page, f"gift-{donation.id}")
    assert "$25.00" in shown
    assert "Once" in shown
    assert "Paid" in shown
    assert "View receipt" in shown
    session = db.session.scalar(select(ManageSession))
    assert session is not None
    assert session.source == "email:receipt"

    # Refunded in part at Stripe, recorded from its event: the page follows.
    charge = charge_of(simulator, gift)
    refund(simulator, gift, 500)
    assert deliver(client, "charge.refunded", stale(charge, "charge", amount_refunded=500)) == 200
    page = client.get("/manage/account").text
    shown = card(page, f"gift-{donation.id}")
    assert "Partly refunded" in shown
    assert "Refunded: $5.00" in shown

    receipt = client.get(f"/manage/gifts/{donation.id}/receipt")
    assert receipt.status_code == 200
    text = squash(receipt.text)
    assert "Amount: $25.00" in text
    assert "$5.00 of this gift has been refunded; $20.00 was kept." in text
    assert donation.stripe_payment_intent_id in text


def test_the_receipt_downloads_as_a_pdf_in_english_and_russian(
    client, ctx, simulator, mailbox
) -> None:
    gift = give(client, simulator, amount="12", email="pdf@example.org")
    mailbox.wait_for(1)
    other_browser(client).get(email_link_from(mailbox, "receipt"))
    donation = gift.donation()

    pdf = client.get(f"/manage/gifts/{donation.id}/receipt.pdf")
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith('attachment; filename="receipt-')
    reader = PdfReader(io.BytesIO(pdf.data))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Receipt" in text
    assert "$12.00" in text
    assert donation.stripe_payment_intent_id in text

    refresh()  # the test's app context (ctx) keeps the locale Flask-Babel chose before
    russian = client.get(f"/manage/gifts/{donation.id}/receipt.pdf?lang=ru")
    reader = PdfReader(io.BytesIO(russian.data))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Квитанция" in text
    fonts = {
        str(font["/BaseFont"])
        for page in reader.pages
        for font in page["/Resources"]["/Font"].values()
    }
    assert any("DejaVu" in name for name in fonts), fonts
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "manage.receipt_downloaded")
    )
    assert entry is not None
    assert entry.details["source"] == "email:receipt"


def test_a_plan_shows_amount_interval_method_next_date_and_status(
    client, ctx, simulator, mailbox
) -> None:
    plan = subscribe(client, simulator, amount="8", email="monthly@example.org")
    mailbox.wait_for(2)
    other_browser(client).get(email_link_from(mailbox, "Welcome"))
    page = client.get("/manage/account").text
    shown = card(page, f"plan-{plan.id}")
    db.session.expire_all()
    plan = db.session.get(RecurringPlan, plan.id)
    assert plan is not None
    assert plan.next_renewal_at is not None
    assert "Monthly: $8.00" in shown
    assert "Active" in shown
    assert "Visa •••• 4242" in shown
    with client.application.test_request_context():
        date = client.application.jinja_env.filters["date_text"](plan.next_renewal_at)
    assert f"Next payment {date}" in shown
    first = plan.donations[0]
    assert f"gift-{first.id}" in page


def test_someone_elses_gift_and_unpaid_checkouts_are_not_shown(
    app: Flask, client, ctx, simulator, mailbox
) -> None:
    theirs = give(client, simulator, amount="30", email="other@example.org").donation()
    # A checkout someone started with our supporter's address but never paid.
    start_gift(other_browser(client), amount="99", email="mine@example.org")
    mine = db.session.scalar(select(Supporter).where(Supporter.email_key == "mine@example.org"))
    assert mine is not None
    browser = app.test_client()
    page = sign_in(browser, mailbox, "mine@example.org")
    assert "$99.00" not in page
    assert "We have no gifts from you yet." in page
    assert browser.get(f"/manage/gifts/{theirs.id}/receipt").status_code == 404
    assert browser.get(f"/manage/gifts/{theirs.id}/receipt.pdf").status_code == 404
    unpaid = db.session.scalar(select(Donation).where(Donation.supporter_id == mine.id))
    assert unpaid is not None
    assert browser.get(f"/manage/gifts/{unpaid.id}/receipt").status_code == 404


def test_newsletter_choice_is_recorded_through_the_consents(client, ctx, mailbox) -> None:
    from tests.manage.flows import supporter

    member = supporter("news@example.org")
    page = sign_in(client, mailbox, "news@example.org")
    assert "You do not receive the newsletter." in page
    token = csrf_token(page)
    subscribed = client.post(
        "/manage/emails/newsletter", data={"csrf_token": token, "subscribe": "yes"}
    )
    assert subscribed.status_code == 303
    assert subscribed.headers["Location"] == "/manage/account#emails"
    db.session.expire_all()
    assert db.session.get(Supporter, member.id).newsletter_opt_in is True
    page = client.get("/manage/account").text
    assert "You will receive the newsletter." in page
    assert "You receive the newsletter." in page
    client.post("/manage/emails/newsletter", data={"csrf_token": token, "subscribe": "no"})
    db.session.expire_all()
    assert db.session.get(Supporter, member.id).newsletter_opt_in is False
    rows = db.session.scalars(
        select(Consent).where(Consent.topic == ConsentTopic.NEWSLETTER).order_by(Consent.id)
    ).all()
    assert [(c.granted, c.source, c.proof, str(c.status)) for c in rows] == [
        (True, "manage", "email_link", "applied"),
        (False, "manage", "email_link", "applied"),
    ]
    audited = db.session.scalars(
        select(AuditEntry.details).where(AuditEntry.action == "manage.newsletter_changed")
    ).all()
    assert [(d["granted"], d["source"]) for d in audited] == [
        (True, "sign_in_link"),
        (False, "sign_in_link"),
    ]
    # A junk value changes nothing.
    junk = client.post(
        "/manage/emails/newsletter", data={"csrf_token": token, "subscribe": "maybe"}
    )
    assert junk.status_code == 303
    assert junk.headers["Location"] == "/manage/account#emails"
    assert "Nothing was changed. Please try again." in client.get("/manage/account").text
    assert db.session.query(Consent).count() == 2
    db.session.expire_all()
    assert db.session.get(Supporter, member.id).newsletter_opt_in is False


def test_reminders_can_be_stopped_cancelled_and_allowed_again(client, ctx, mailbox) -> None:
    from tests.manage.flows import supporter

    member = supporter("remind@example.org")
    first = reminder("remind@example.org")
    second = reminder("remind@example.org", due_at=utcnow() + timedelta(days=70))
    commit()
    page = sign_in(client, mailbox, "remind@example.org")
    assert f'id="reminder-{first.id}"' in page
    token = csrf_token(page)
    cancelled = client.post(f"/manage/reminders/{first.id}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 303
    assert cancelled.headers["Location"] == "/manage/account#emails"
    assert "The reminder is cancelled." in client.get("/manage/account").text
    db.session.expire_all()
    assert db.session.get(Reminder, first.id).status is ReminderStatus.CANCELED
    assert db.session.get(Reminder, second.id).status is ReminderStatus.PENDING

    client.post("/manage/emails/reminders", data={"csrf_token": token, "allow": "no"})
    db.session.expire_all()
    assert db.session.get(Reminder, second.id).status is ReminderStatus.CANCELED
    entry = suppression_for(address_hash(member.email))
    assert entry is not None
    assert entry.reason is SuppressionReason.UNSUBSCRIBED
    assert "You unsubscribed from reminders." in client.get("/manage/account").text

    client.post("/manage/emails/reminders", data={"csrf_token": token, "allow": "yes"})
    db.session.expire_all()
    assert suppression_for(address_hash(member.email)) is None
    rows = db.session.scalars(
        select(Consent).where(Consent.topic == ConsentTopic.REMINDERS).order_by(Consent.id)
    ).all()
    assert [(c.granted, c.source, c.proof) for c in rows] == [
        (False, "manage", "email_link"),
        (True, "manage", "email_link"),
    ]


def test_a_reminder_of_someone_else_cannot_be_cancelled(client, ctx, mailbox) -> None:
    from tests.manage.flows import supporter

    supporter("remind@example.org")
    theirs = reminder("someone@example.org")
    commit()
    page = sign_in(client, mailbox, "remind@example.org")
    answer = client.post(
        f"/manage/reminders/{theirs.id}/cancel", data={"csrf_token": csrf_token(page)}
    )
    assert answer.status_code == 404
    db.session.expire_all()
    assert db.session.get(Reminder, theirs.id).status is ReminderStatus.PENDING
