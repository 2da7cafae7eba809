"""Manage my support (/manage): supporters see and change their support themselves.

Sign-in by a link emailed to the address (single use, minutes), or by the
signed link in any email we sent to it; short server-side sessions; every
action audited with its source. This area sits above the others (it
orchestrates supporters, payments, reminders, mail, the audit log and
erasure) and nothing imports it but the wiring.
"""
