"""How an email address is compared: one normal form for supporters, staff, reminders and the list.

An address is a claim, not an identity (DESIGN §2.5): this only decides
when two spellings name the same mailbox for lookups and deduplication.
"""

from __future__ import annotations


def normalise_address(address: str) -> str:
    """The form addresses are compared in (``Supporter.email_key``, ``StaffUser.email_key``)."""
    return address.strip().lower()
