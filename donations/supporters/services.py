"""Finding and recording supporters."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from donations.db import db
from donations.supporters.models import Supporter


def email_key(email: str) -> str:
    return email.strip().lower()


def find_supporter(email: str) -> Supporter | None:
    return db.session.scalar(select(Supporter).where(Supporter.email_key == email_key(email)))


def get_or_create_supporter(
    *, email: str, name: str, country: str | None, locale: str, newsletter_opt_in: bool
) -> Supporter:
    """The supporter for ``email`` (any case), created or updated with these details.

    Safe against two first-time checkouts for one address at the same moment:
    the loser of the unique-constraint race reads the winner's row.
    """
    supporter = find_supporter(email)
    if supporter is None:
        supporter = Supporter(
            email=email.strip(),
            email_key=email_key(email),
            name=name,
            country=country,
            locale=locale,
            newsletter_opt_in=newsletter_opt_in,
        )
        try:
            with db.session.begin_nested():
                db.session.add(supporter)
        except IntegrityError:
            supporter = find_supporter(email)
            if supporter is None:  # pragma: no cover - the winner rolled back
                raise
        else:
            return supporter
    if name:
        supporter.name = name
    if country:
        supporter.country = country
    supporter.locale = locale
    # Consent is only ever given here, never withdrawn by omission.
    supporter.newsletter_opt_in = supporter.newsletter_opt_in or newsletter_opt_in
    return supporter
