"""Card-testing defence: declines seen from one address block new checkouts.

Rate limits (Flask-Limiter) cap how many payment objects one address or one
email can create; this adds a block once an address has had too many declined
payments, in the same storage as the rate limits (memory or Redis).
"""

from __future__ import annotations

from limits import parse

from donations.extensions import limiter

DECLINE_LIMIT = parse("5 per hour")


def record_decline(address: str) -> None:
    limiter.limiter.hit(DECLINE_LIMIT, "declines", address)


def blocked(address: str) -> bool:
    return not limiter.limiter.test(DECLINE_LIMIT, "declines", address)
