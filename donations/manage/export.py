"""A supporter's own data, for them to download (GDPR Art. 15 and 20).

JSON with everything held about them -- their record, plans, gifts with
refunds and disputes, consents, reminders, the emails we sent (what and
when, not the bodies), notes staff wrote, their portal sessions and what
the audit log says was done for them -- and a CSV of their gifts (money in
decimal major units with the currency beside it, cells neutralised against
spreadsheet formulas).
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select

from donations.db import db, utcnow
from donations.mail.models import EmailMessage
from donations.mail.suppression import address_hash, suppression_for
from donations.manage.account import supporter_reminders
from donations.manage.models import EmailChange, ErasureRequest, ManageSession
from donations.money import Money
from donations.payments.models import Dispute, Refund
from donations.staff.models import AuditEntry, SupporterNote
from donations.staff.reports.exporters import neutralise
from donations.supporters.models import Consent, Donation, RecurringPlan, Supporter

FORMAT_VERSION = 1


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    return value


def _money(amount: int | None, currency: str) -> dict[str, Any] | None:
    if amount is None:
        return None
    return {"amount": Money(amount, currency).major_text(), "currency": currency}


def _row(obj: Any, columns: list[str]) -> dict[str, Any]:
    return {name: _value(getattr(obj, name)) for name in columns}


def _gift(donation: Donation, refunds: list[Refund], disputes: list[Dispute]) -> dict[str, Any]:
    return {
        **_row(
            donation,
            [
                "id",
                "status",
                "frequency",
                "method",
                "card_brand",
                "card_last4",
                "created_at",
                "succeeded_at",
                "campaign",
                "article",
                "source",
                "stripe_payment_intent_id",
                "stripe_invoice_id",
                "recurring_plan_id",
                "donor_email",
                "donor_name",
                "donor_country",
                "locale",
            ],
        ),
        "gift": _money(donation.amount, donation.currency),
        "fee_cover": _money(donation.fee_cover_amount, donation.currency),
        "charged": _money(donation.charge_total.amount, donation.currency),
        "refunded": _money(donation.refunded_amount, donation.currency),
        "refund_state": _value(donation.refund_state),
        "refunds": [
            {
                **_row(r, ["status", "reason", "stripe_refund_id", "stripe_created_at"]),
                "amount": _money(r.amount, r.currency),
            }
            for r in refunds
        ],
        "disputes": [
            {
                **_row(d, ["status", "reason", "stripe_dispute_id", "stripe_created_at"]),
                "amount": _money(d.amount, d.currency),
            }
            for d in disputes
        ],
    }


def export_data(supporter: Supporter) -> dict[str, Any]:
    """Everything held about the supporter, as plain JSON values."""
    donations = list(
        db.session.scalars(
            select(Donation).where(Donation.supporter_id == supporter.id).order_by(Donation.id)
        )
    )
    ids = [d.id for d in donations]
    refunds: dict[int, list[Refund]] = {}
    disputes: dict[int, list[Dispute]] = {}
    if ids:
        for refund in db.session.scalars(select(Refund).where(Refund.donation_id.in_(ids))):
            refunds.setdefault(refund.donation_id, []).append(refund)
        for dispute in db.session.scalars(select(Dispute).where(Dispute.donation_id.in_(ids))):
            disputes.setdefault(dispute.donation_id, []).append(dispute)
    plans = db.session.scalars(
        select(RecurringPlan)
        .where(RecurringPlan.supporter_id == supporter.id)
        .order_by(RecurringPlan.id)
    )
    hashed = address_hash(supporter.email)
    consents = db.session.scalars(
        select(Consent)
        .where(or_(Consent.supporter_id == supporter.id, Consent.address_hash == hashed))
        .order_by(Consent.id)
    )
    emails = db.session.scalars(
        select(EmailMessage)
        .where(EmailMessage.supporter_id == supporter.id)
        .order_by(EmailMessage.id)
    )
    suppression = suppression_for(hashed)
    return {
        "format": "donations-supporter-export",
        "version": FORMAT_VERSION,
        "exported_at": utcnow().isoformat(),
        "supporter": _row(
            supporter,
            [
                "id",
                "email",
                "name",
                "country",
                "locale",
                "newsletter_opt_in",
                "stripe_customer_id",
                "created_at",
                "updated_at",
            ],
        ),
        "plans": [
            {
                **_row(
                    p,
                    [
                        "id",
                        "status",
                        "frequency",
                        "method",
                        "created_at",
                        "started_at",
                        "next_renewal_at",
                        "canceled_at",
                        "cancellation_reason",
                        "campaign",
                        "article",
                        "source",
                        "stripe_subscription_id",
                        "donor_email",
                        "donor_name",
                        "donor_country",
                        "locale",
                    ],
                ),
                "amount": _money(p.amount, p.currency),
                "fee_cover": _money(p.fee_cover_amount, p.currency),
            }
            for p in plans
        ],
        "donations": [_gift(d, refunds.get(d.id, []), disputes.get(d.id, [])) for d in donations],
        "consents": [
            _row(
                c,
                [
                    "topic",
                    "granted",
                    "source",
                    "wording_version",
                    "locale",
                    "status",
                    "proof",
                    "requested_at",
                    "applied_at",
                ],
            )
            for c in consents
        ],
        "reminders": [
            {
                **_row(
                    r,
                    [
                        "email",
                        "status",
                        "skip_reason",
                        "frequency",
                        "currency",
                        "months",
                        "due_at",
                        "created_at",
                        "sent_at",
                        "article",
                        "campaign",
                        "source",
                    ],
                ),
                "amount": _money(r.amount, r.currency) if r.amount and r.currency else None,
            }
            for r in supporter_reminders(supporter)
        ],
        "email_suppression": _value(suppression.reason) if suppression is not None else None,
        "emails_sent": [
            _row(m, ["template", "to_address", "locale", "status", "created_at", "sent_at"])
            for m in emails
        ],
        "staff_notes": [
            _row(n, ["body", "created_at"])
            for n in db.session.scalars(
                select(SupporterNote).where(SupporterNote.supporter_id == supporter.id)
            )
        ],
        "manage_sessions": [
            _row(
                s,
                [
                    "source",
                    "created_at",
                    "last_seen_at",
                    "ended_at",
                    "end_reason",
                    "ip",
                    "user_agent",
                ],
            )
            for s in db.session.scalars(
                select(ManageSession)
                .where(ManageSession.supporter_id == supporter.id)
                .order_by(ManageSession.id)
            )
        ],
        "email_changes": [
            _row(c, ["new_email", "created_at", "confirmed_at", "canceled_at"])
            for c in db.session.scalars(
                select(EmailChange).where(EmailChange.supporter_id == supporter.id)
            )
        ],
        "erasure_requests": [
            _row(r, ["status", "requested_at", "decided_at", "note"])
            for r in db.session.scalars(
                select(ErasureRequest).where(ErasureRequest.supporter_id == supporter.id)
            )
        ],
        "activity": [
            {**_row(e, ["created_at", "action", "actor", "ip"]), "details": e.details}
            for e in db.session.scalars(
                select(AuditEntry)
                .where(AuditEntry.supporter_id == supporter.id)
                .order_by(AuditEntry.id)
            )
        ],
    }


GIFT_COLUMNS = [
    "date",
    "amount",
    "currency",
    "gift",
    "fee_cover",
    "frequency",
    "status",
    "refunded",
    "refund_state",
    "method",
    "card_last4",
    "reference",
    "invoice",
]


def gifts_csv(supporter: Supporter) -> str:
    """The supporter's gifts (paid, settling, refunded), one row each, as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(GIFT_COLUMNS)
    from donations.manage.account import supporter_gifts

    for d in reversed(supporter_gifts(supporter)):
        charged = Money(d.charge_total.amount, d.currency)
        row = [
            (d.succeeded_at or d.created_at).isoformat(),
            charged.major_text(),
            d.currency,
            Money(d.amount, d.currency).major_text(),
            Money(d.fee_cover_amount, d.currency).major_text(),
            str(d.frequency),
            str(d.status),
            Money(d.refunded_amount, d.currency).major_text(),
            str(d.refund_state or ""),
            d.method or "",
            d.card_last4 or "",
            d.stripe_payment_intent_id or "",
            d.stripe_invoice_id or "",
        ]
        writer.writerow([neutralise(str(cell)) for cell in row])
    return out.getvalue()
