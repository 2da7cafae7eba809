"""Where a gift, plan or reminder came from: the article, the campaign, the variant.

Carried as plain query parameters from the embed (``article``, ``campaign``,
``variant``) through the checkout and the reminder's email link; anything that
is not plausible text of the right length is dropped, never an error (a reader
must be able to give whatever a link says).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select

from donations.supporters.models import Donation

ARTICLE_MAX = 300
CAMPAIGN_MAX = 100
VARIANT_MAX = 50
SOURCE_MAX = 500

# Control characters (NUL among them, which PostgreSQL refuses) make a value implausible.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > limit or _CONTROL.search(value):
        return None
    return value


def clean_url(value: Any) -> str | None:
    """An http(s) URL of plausible length, or None."""
    url = _clean(value, SOURCE_MAX)
    try:
        if url is None or urlsplit(url).scheme not in ("http", "https"):
            return None
    except ValueError:
        return None
    return url


@dataclass(frozen=True)
class Attribution:
    article: str | None = None
    campaign: str | None = None
    variant: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Attribution:
        return cls(
            article=_clean(args.get("article"), ARTICLE_MAX),
            campaign=_clean(args.get("campaign"), CAMPAIGN_MAX),
            variant=_clean(args.get("variant"), VARIANT_MAX),
        )

    def as_args(self) -> dict[str, str]:
        """The non-empty parts, as query parameters for a link that carries them on."""
        return {k: v for k, v in vars(self).items() if v}

    def as_columns(self) -> dict[str, str | None]:
        return dict(vars(self))


def first_payments() -> Any:
    """Ids of donations that are conversions: one-off gifts, and each plan's first payment."""
    first_of_plan = (
        select(func.min(Donation.id))
        .where(Donation.recurring_plan_id.is_not(None))
        .group_by(Donation.recurring_plan_id)
    )
    return or_(Donation.recurring_plan_id.is_(None), Donation.id.in_(first_of_plan))
