"""How a card is named on every screen and in every email: "Visa •••• 4242"."""

from __future__ import annotations

# Stripe's ``card.brand`` values (https://docs.stripe.com/api/cards/object#card_object-brand)
# as their owners write them.
BRAND_NAMES = {
    "amex": "American Express",
    "american express": "American Express",
    "cartes_bancaires": "Cartes Bancaires",
    "diners": "Diners Club",
    "diners club": "Diners Club",
    "discover": "Discover",
    "eftpos_au": "eftpos Australia",
    "interac": "Interac",
    "jcb": "JCB",
    "link": "Link",
    "mastercard": "Mastercard",
    "unionpay": "UnionPay",
    "visa": "Visa",
}


def brand_name(brand: str | None) -> str:
    """``"visa"`` → ``"Visa"``; an unknown brand title-cased; none → ``"Card"``."""
    if not brand or brand.strip().lower() == "unknown":
        return "Card"
    key = brand.strip().lower()
    return BRAND_NAMES.get(key, key.replace("_", " ").title())


def card_label(brand: str | None, last4: str | None) -> str:
    """``"Visa •••• 4242"``: the one way a card is shown (no last digits: the brand alone)."""
    name = brand_name(brand)
    return f"{name} •••• {last4}" if last4 else name
