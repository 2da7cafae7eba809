"""A report's filters, read from the query string.

The screen's GET form and the download links carry the same parameters, so
one parser serves both: ``from`` and ``to`` are ISO dates (inclusive, in the
reporting time zone) and the rest are the report's own filters. An empty
value means "any". A value that cannot be used is refused with a message
that says why -- never guessed, never silently dropped -- so an export
always contains exactly what its parameters say.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from enum import StrEnum
from functools import partial
from zoneinfo import ZoneInfo

from donations.money import InvalidAmount, normalise_currency
from donations.payments.measures import day_start, period_bounds
from donations.supporters.models import Frequency

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_METHOD = re.compile(r"[a-z][a-z0-9_]{0,29}")
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
# Dates outside this span are typing mistakes, and the day after the last
# one must still be a date.
FIRST_YEAR, LAST_YEAR = 2000, 2999


class Consent(StrEnum):
    ALL = "all"
    YES = "yes"
    NO = "no"


class FilterError(ValueError):
    """Filter values that cannot be used; ``problems`` says what is wrong with each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ReportFilters:
    """What a report is narrowed to. ``None`` means "any"."""

    start: date | None = None  # the ``from`` parameter
    end: date | None = None  # the ``to`` parameter, inclusive
    status: str | None = None
    currency: str | None = None
    frequency: Frequency | None = None
    method: str | None = None
    campaign: str | None = None
    payout: str | None = None
    consent: Consent = Consent.ALL

    def bounds(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        """``[start, end)`` in UTC: midnight of ``from`` to midnight after ``to``, in ``zone``."""
        return period_bounds(self.start, self.end, zone)

    def params(self) -> dict[str, str]:
        """The query-string parameters that give these filters (only those set)."""
        out: dict[str, str] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None or value is Consent.ALL:
                continue
            out[PARAM_NAMES.get(item.name, item.name)] = (
                value.isoformat() if isinstance(value, date) else str(value)
            )
        return out


# Query-string names that differ from the attribute names.
PARAM_NAMES = {"start": "from", "end": "to"}


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` begins in ``zone`` (:func:`measures.day_start`)."""
    return day_start(day, zone)


def parse_filters(
    args: Mapping[str, str],
    accepted: Iterable[str],
    statuses: Iterable[str] = (),
) -> ReportFilters:
    """Read the filters named in ``accepted`` from ``args``; raise FilterError if any is bad.

    Parameters the report does not take are ignored (a form may send them
    empty); ``status`` must be one of ``statuses`` or ``all``.
    """
    accepted = set(accepted)
    problems: list[str] = []

    def text(name: str) -> str:
        return (args.get(name) or "").strip() if name in accepted else ""

    values: dict[str, object] = _dates(text, problems)
    parsers: dict[str, Callable[[str], object]] = {
        "status": partial(_status, list(statuses)),
        **_PARSERS,
    }
    for name, parse in parsers.items():
        if raw := text(name):
            try:
                value = parse(raw)
            except _Refused as refused:
                problems.append(str(refused))
            else:
                if value is not None:
                    values[name] = value
    if problems:
        raise FilterError(problems)
    return ReportFilters(**values)  # type: ignore[arg-type]


class _Refused(ValueError):
    """One filter value that cannot be used; the message says why."""


def _dates(text: Callable[[str], str], problems: list[str]) -> dict[str, object]:
    """``start`` and ``end`` from the ``from`` and ``to`` parameters (those given and valid)."""
    values: dict[str, object] = {}
    for attr, name in (("start", "from"), ("end", "to")):
        raw = text(name)
        if not raw:
            continue
        try:
            if not _ISO_DATE.fullmatch(raw):
                raise ValueError
            day = date.fromisoformat(raw)
        except ValueError:
            problems.append(f"'{name}' must be a date written YYYY-MM-DD, not {raw[:40]!r}.")
            continue
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            problems.append(f"'{name}' must be a date between {FIRST_YEAR} and {LAST_YEAR}.")
            continue
        values[attr] = day
    start, end = values.get("start"), values.get("end")
    if isinstance(start, date) and isinstance(end, date) and start > end:
        problems.append(f"'from' ({start}) is after 'to' ({end}).")
    return values


def _status(allowed: list[str], raw: str) -> str | None:
    if raw == "all":
        return None
    if raw not in allowed:
        raise _Refused(f"'status' must be one of all, {', '.join(allowed)}; not {raw[:40]!r}.")
    return raw


def _currency(raw: str) -> str:
    try:
        return normalise_currency(raw)
    except InvalidAmount:
        raise _Refused(
            f"'currency' must be a three-letter ISO code such as EUR, not {raw[:40]!r}."
        ) from None


def _frequency(raw: str) -> Frequency:
    try:
        return Frequency(raw)
    except ValueError:
        choices = ", ".join(f.value for f in Frequency)
        raise _Refused(f"'frequency' must be one of {choices}; not {raw[:40]!r}.") from None


def _method(raw: str) -> str:
    if not _METHOD.fullmatch(raw):
        raise _Refused(f"'method' must be a payment method name such as card, not {raw[:40]!r}.")
    return raw


def _campaign(raw: str) -> str:
    if len(raw) > 100:
        raise _Refused("'campaign' must be at most 100 characters long.")
    return raw


def _payout(raw: str) -> str:
    if not _STRIPE_ID.fullmatch(raw):
        raise _Refused(f"'payout' must be a Stripe payout id such as po_123, not {raw[:40]!r}.")
    return raw


def _consent(raw: str) -> Consent:
    try:
        return Consent(raw)
    except ValueError:
        raise _Refused(f"'consent' must be all, yes or no; not {raw[:40]!r}.") from None


# Each filter after the dates and the status, in the order problems are listed.
_PARSERS: dict[str, Callable[[str], object]] = {
    "currency": _currency,
    "frequency": _frequency,
    "method": _method,
    "campaign": _campaign,
    "payout": _payout,
    "consent": _consent,
}
