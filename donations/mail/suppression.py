"""The suppression list: addresses never mailed again, kept only as hashes."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from sqlalchemy import delete, select

from donations.db import db, insert_or_fetch, utcnow
from donations.mail.addresses import normalise_address
from donations.mail.models import Suppression, SuppressionReason

log = logging.getLogger(__name__)


def address_hash(address: str) -> str:
    """The suppression list's key for ``address``: SHA-256 of the normalised address.

    A plain hash rather than an HMAC with SECRET_KEY on purpose: rotating the
    key must not silently lift every unsubscribe. It is kept after erasure
    only to honour the person's objection to mail.
    """
    return hashlib.sha256(normalise_address(address).encode("utf-8")).hexdigest()


def suppress(hashed: str, reason: SuppressionReason, detail: str | None = None) -> Suppression:
    """Put the address with hash ``hashed`` on the suppression list (idempotent)."""
    entry, created = insert_or_fetch(
        Suppression, {"address_hash": hashed}, {"reason": reason, "detail": detail or None}
    )
    if created:
        log.info("suppressed address %s…: %s", hashed[:12], reason)
        return entry
    if entry.reason is not reason:
        entry.reason = reason
        entry.detail = detail or entry.detail
        entry.updated_at = utcnow()
    db.session.flush()
    return entry


def suppression_for(hashed: str) -> Suppression | None:
    return db.session.scalar(select(Suppression).where(Suppression.address_hash == hashed))


def suppressions_among(hashes: Iterable[str]) -> dict[str, SuppressionReason]:
    """Which of these address hashes are suppressed, and why."""
    wanted = sorted(set(hashes))
    found: dict[str, SuppressionReason] = {}
    for start in range(0, len(wanted), 500):
        rows = db.session.execute(
            select(Suppression.address_hash, Suppression.reason).where(
                Suppression.address_hash.in_(wanted[start : start + 500])
            )
        )
        found.update(rows.all())
    return found


def lift_suppression(hashed: str) -> bool:
    """Take an address off the list because its owner asked for mail again."""
    removed = db.session.execute(delete(Suppression).where(Suppression.address_hash == hashed))
    return bool(removed.rowcount)  # type: ignore[attr-defined]
