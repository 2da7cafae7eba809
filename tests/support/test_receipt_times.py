"""Receipt times say their time zone, and the plan thank-you page gives a reference.

Times are in REPORTING_TIME_ZONE (UTC unless set), written by Babel in the
reader's language with the zone's name: on the thank-you pages and in the
receipt and refund emails.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from html import unescape

import pytest
from flask import Flask
from sqlalchemy import select

from donations.app import moment_with_zone
from donations.db import db
from donations.mail.models import EmailMessage
from donations.mail.sender import render_email
from donations.supporters.models import Donation
from tests.payments.stripe_flows import give, subscribe

MOMENT = datetime(2026, 12, 1, 14, 5, tzinfo=UTC)


def plain(text: str) -> str:
    """Babel's narrow and no-break spaces as plain ones."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text))


@pytest.mark.parametrize(
    ("zone", "locale", "expected"),
    [
        ("UTC", "en", "December 1, 2026, 2:05 PM UTC"),
        ("UTC", "ru", "1 декабря 2026 г., 14:05 UTC"),
        ("UTC", "en_GB", "1 December 2026, 14:05 UTC"),
        ("America/New_York", "en", "December 1, 2026, 9:05 AM EST"),
        ("Europe/Berlin", "en", "December 1, 2026, 3:05 PM GMT+01:00"),
        ("Europe/Berlin", "de", "1. Dezember 2026, 15:05 MEZ"),
        ("Europe/Moscow", "ru", "1 декабря 2026 г., 17:05 GMT+03:00"),
        ("Asia/Kolkata", "ru", "1 декабря 2026 г., 19:35 GMT+05:30"),
    ],
)
def test_a_moment_is_written_with_its_zone(zone: str, locale: str, expected: str) -> None:
    assert plain(moment_with_zone(MOMENT, zone, locale)) == expected


def test_a_naive_moment_is_utc() -> None:
    """SQLite gives timestamps back without their zone: they were stored as UTC."""
    naive = MOMENT.replace(tzinfo=None)
    assert moment_with_zone(naive, "Europe/Berlin", "en") == moment_with_zone(
        MOMENT, "Europe/Berlin", "en"
    )


def paid_at(html: str) -> tuple[str, str]:
    found = re.search(r'<p id="paid-at">[^<]*<time datetime="([^"]+)">([^<]+)</time>', html)
    assert found, "no payment time on the page"
    return found.group(1), plain(unescape(found.group(2)))


def reference(html: str) -> str:
    found = re.search(r'<code id="reference">([^<]+)</code>', html)
    assert found, "no reference on the page"
    return found.group(1)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_the_thank_you_page_says_when_with_the_zone(app, client, simulator, lang: str) -> None:
    # No app context held open by the test: the requests' own pick their language.
    gift = give(client, simulator)
    page = client.get(gift.thanks_url, headers={"Accept-Language": lang}).text
    with app.app_context():
        donation = gift.donation()
        db.session.remove()
    instant, shown = paid_at(page)
    succeeded = donation.succeeded_at
    succeeded = succeeded if succeeded.tzinfo else succeeded.replace(tzinfo=UTC)
    assert datetime.fromisoformat(instant) == succeeded.replace(microsecond=0)
    assert shown == plain(moment_with_zone(donation.succeeded_at, "UTC", lang))
    assert shown.endswith(" UTC")
    assert reference(page) == donation.stripe_payment_intent_id


def test_the_plan_thank_you_page_gives_the_reference_of_its_receipt(client, ctx, simulator) -> None:
    plan = subscribe(client, simulator, email="plan-reference@example.org")
    page = client.get(f"/support/thanks/{plan.public_token}").text
    first = db.session.scalar(select(Donation).where(Donation.recurring_plan_id == plan.id))
    assert first is not None
    assert first.stripe_payment_intent_id
    assert first.stripe_payment_intent_id.startswith("pi_")
    # The same reference as the one-off page's kind (the payment's), and its receipt's.
    assert reference(page) == first.stripe_payment_intent_id
    receipt = db.session.scalar(select(EmailMessage).where(EmailMessage.template == "receipt"))
    assert receipt is not None
    assert receipt.context["reference"] == first.stripe_payment_intent_id
    _, shown = paid_at(page)
    assert shown == plain(moment_with_zone(first.succeeded_at, "UTC", "en"))


def receipt_row(locale: str) -> EmailMessage:
    return EmailMessage(
        id=9,
        dedupe_key="receipt:donation:9",
        template="receipt",
        to_address="anna@example.org",
        to_name="Anna",
        locale=locale,
        context={
            "donation_id": 9,
            "amount": 1000,
            "fee_cover_amount": 0,
            "currency": "EUR",
            "frequency": "once",
            "card_brand": "visa",
            "last4": "4242",
            "method": "card",
            "reference": "pi_receipt_time",
            "succeeded_at": MOMENT.isoformat(),
        },
    )


def refund_row(locale: str) -> EmailMessage:
    return EmailMessage(
        id=10,
        dedupe_key="refund:re_time",
        template="refund",
        to_address="anna@example.org",
        to_name="Anna",
        locale=locale,
        context={
            "donation_id": 9,
            "amount": 400,
            "currency": "EUR",
            "charged": 1000,
            "refunded_total": 400,
            "fully_refunded": False,
            "frequency": "once",
            "reference": "pi_receipt_time",
            "paid_at": MOMENT.isoformat(),
        },
    )


@pytest.mark.parametrize(
    ("zone", "locale", "expected"),
    [
        (None, "en", "December 1, 2026, 2:05 PM UTC"),
        (None, "ru", "1 декабря 2026 г., 14:05 UTC"),
        ("Europe/Berlin", "en", "December 1, 2026, 3:05 PM GMT+01:00"),
        ("Europe/Moscow", "ru", "1 декабря 2026 г., 17:05 GMT+03:00"),
    ],
)
def test_receipt_and_refund_emails_say_the_zone(
    make_app, zone: str | None, locale: str, expected: str
) -> None:
    app: Flask = make_app(REPORTING_TIME_ZONE=zone)
    with app.test_request_context():
        for row in (receipt_row(locale), refund_row(locale)):
            message = render_email(row)
            for part in ("plain", "html"):
                body = plain(unescape(message.get_body((part,)).get_content()))
                assert expected in body, (row.template, part, body)
