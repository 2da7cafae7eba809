"""What the forms of several areas share: the rules for a typed email address."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms.validators import DataRequired, Email, Length

# The longest address SMTP can deliver to (RFC 5321's 256-octet path, less the brackets).
MAX_ADDRESS_LENGTH = 254


def email_validators(
    required: str, too_long: str | None = None
) -> list[DataRequired | Email | Length]:
    """A required email address, checked for its form only (no DNS lookup).

    ``required`` says why the form needs it; ``too_long`` replaces WTForms'
    own message for an address over :data:`MAX_ADDRESS_LENGTH`.
    """
    return [
        DataRequired(required),
        Email(_l("Enter an email address like name@example.org."), check_deliverability=False),
        Length(max=MAX_ADDRESS_LENGTH, message=too_long),
    ]
