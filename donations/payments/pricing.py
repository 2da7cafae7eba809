"""What the processor charges for a payment, and what covering it adds.

Integer arithmetic only: rates in basis points, fixed parts and caps in minor
units. The defaults are Stripe's published standard pricing for an account
in the currency's home region (the newsroom configures its own in the ask
settings, ``fees``):

* USD card: 2.9 % + 30¢ (https://stripe.com/pricing, United States);
* EUR card: 1.5 % + €0.25 for standard EEA cards, EUR SEPA Direct Debit:
  €0.35 (https://stripe.com/ie/pricing;
  https://support.stripe.com/questions/pricing-updates-for-businesses-based-in-the-european-economic-area-(eea));
* GBP card: 1.5 % + 20p for standard UK cards
  (https://support.stripe.com/questions/pricing-updates-for-businesses-in-the-united-kingdom).

Premium and international cards cost more; the ledger shows where the fee
Stripe charged was more than the cover (the ledger report's shortfall).
The Stripe simulator charges by the same table (``devtools/simulator/ledger.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class Price:
    """A processing price: ``rate_bps`` of the amount plus ``fixed``, at most ``cap``."""

    rate_bps: int
    fixed: int
    cap: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.rate_bps < BASIS_POINTS or self.fixed < 0:
            raise ValueError(f"not a processing price: {self!r}")
        if self.cap is not None and self.cap < 0:
            raise ValueError(f"not a processing price: {self!r}")

    def fee(self, charged: int) -> int:
        """The fee on a charge of ``charged`` minor units, the rate rounded half up."""
        fee = (charged * self.rate_bps + BASIS_POINTS // 2) // BASIS_POINTS + self.fixed
        return min(fee, self.cap) if self.cap is not None else fee

    def cover(self, amount: int) -> int:
        """What to add to ``amount`` so that the charge less its fee is exactly ``amount``.

        The gross-up ``ceil((amount + fixed) / (1 - rate)) - amount``; where the
        fee's rounding would then leave a minor unit over, one less (the net
        is a non-decreasing step function of the charge, so the smallest
        charge that nets at least ``amount`` nets exactly ``amount``).
        """
        if amount <= 0:
            return 0
        numerator = (amount + self.fixed) * BASIS_POINTS
        denominator = BASIS_POINTS - self.rate_bps
        charged = -(-numerator // denominator)
        if self.cap is not None:
            charged = min(charged, amount + self.cap)
        while charged > amount and charged - 1 - self.fee(charged - 1) >= amount:
            charged -= 1
        return charged - amount

    def as_data(self) -> dict[str, int]:
        data = {"rate_bps": self.rate_bps, "fixed": self.fixed}
        return data | ({"cap": self.cap} if self.cap is not None else {})

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Price:
        cap = data.get("cap")
        return cls(int(data["rate_bps"]), int(data["fixed"]), int(cap) if cap is not None else None)


# method -> currency -> price
Pricing = Mapping[str, Mapping[str, Price]]

STANDARD_PRICING: dict[str, dict[str, Price]] = {
    "card": {
        "USD": Price(290, 30),
        "EUR": Price(150, 25),
        "GBP": Price(150, 20),
    },
    "sepa_debit": {
        "EUR": Price(0, 35),
    },
}


def price_for(pricing: Pricing, method: str, currency: str) -> Price | None:
    """The price of ``method`` in ``currency``, or None when none is configured."""
    return pricing.get(method, {}).get(currency)


def pricing_from_data(data: Mapping[str, Any] | None) -> dict[str, dict[str, Price]]:
    """The standard pricing, with the settings' overrides (``{method: {currency: price}}``)."""
    pricing = {method: dict(by_currency) for method, by_currency in STANDARD_PRICING.items()}
    for method, by_currency in (data or {}).items():
        for currency, price in by_currency.items():
            pricing.setdefault(str(method), {})[str(currency).upper()] = Price.from_data(price)
    return pricing
