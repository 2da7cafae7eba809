"""Receipts of a supporter's gifts: the page, and the PDF WeasyPrint makes of it.

One template (``manage/receipt_document.html``) is the receipt, shown in the
page and printed to PDF; it states the gift as the ledger has it, refunds
included. The PDF is rendered from our own markup only: WeasyPrint is given
no URL it may fetch (no file, no network), and its fonts are the system's
DejaVu family, which covers Latin and Cyrillic.
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import force_locale

from donations.manage.account import refunds_of
from donations.supporters.models import Donation

PDF_FONTS = '"DejaVu Sans", "Noto Sans", sans-serif'


def receipt_context(donation: Donation) -> dict[str, Any]:
    """What a receipt states: the same fields as the receipt email, and the refunds."""
    return {
        "donation": donation,
        "amount": donation.amount,
        "fee_cover_amount": donation.fee_cover_amount,
        "charged": donation.charge_total.amount,
        "currency": donation.currency,
        "frequency": str(donation.frequency),
        "card_brand": donation.card_brand,
        "last4": donation.card_last4,
        "method": donation.method,
        "reference": donation.stripe_payment_intent_id or f"donation-{donation.id}",
        "succeeded_at": donation.succeeded_at or donation.created_at,
        "refunded_amount": donation.refunded_amount,
        "refunds": refunds_of([donation.id]).get(donation.id, []),
        "donor_name": donation.supporter.name,
    }


def no_fetching(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    raise ValueError(f"the receipt PDF fetches nothing ({url[:60]})")


def receipt_pdf(donation: Donation, locale: str) -> bytes:
    """The receipt as a PDF, in ``locale``."""
    import weasyprint  # heavy: only when a PDF is asked for

    with force_locale(locale):
        html = render_template(
            "manage/receipt_pdf.html", fonts=PDF_FONTS, locale=locale, **receipt_context(donation)
        )
    document = weasyprint.HTML(string=html, url_fetcher=no_fetching)
    pdf: bytes = document.write_pdf()
    return pdf


def receipt_filename(donation: Donation) -> str:
    day = (donation.succeeded_at or donation.created_at).strftime("%Y-%m-%d")
    return f"receipt-{day}-{donation.id}.pdf"
