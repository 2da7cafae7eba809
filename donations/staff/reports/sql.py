"""The SQL toolkit the reports share: batches, local dates, spreadsheet-safe text and money in SQL.

The reports (one module each, listed in :mod:`~donations.staff.reports.catalogue`)
take the filters the screen and the download share.

Definitions are the ledger's measures (:mod:`donations.payments.measures`),
which the dashboard uses too:

* A donation is dated by when it **succeeded** (when it has not, by when it
  was created), in the reporting time zone; money totals count succeeded
  donations only.
* amount = gift + fee cover (what Stripe charged); fee = Stripe's fee, empty
  until known and counted as 0 in totals; refunded = returned so far;
  net = amount - fee - refunded.
* Money is written in major units with the currency in its own column.

Each ``*_rows`` function yields tuples in the order of its ``*_COLUMNS``,
with values of the column's :class:`~donations.staff.reports.exporters.Kind`.
Large results are read a batch at a time (``yield_per``: a server-side
cursor on PostgreSQL), so a report of any size uses the same memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Numeric,
    String,
    Text,
    case,
    cast,
    column,
    func,
    literal,
    type_coerce,
    values,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from donations.db import db
from donations.money import THREE_DECIMAL, ZERO_DECIMAL, exponent
from donations.payments.measures import between as between  # the reports' date ranges
from donations.staff.reports.exporters import CONTROL_CHARACTERS, FORMULA_STARTS, Column

# Rows fetched from the database at a time.
BATCH = 2000
UTC_ZONE = ZoneInfo("UTC")

Row = tuple[Any, ...]
AnySelect = Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class Table:
    """A small table for the screen: the totals of a report."""

    columns: tuple[Column, ...]
    rows: list[Row] = field(default_factory=list)


# -- cells ---------------------------------------------------------------------------


@lru_cache(maxsize=64)
def decimal_places(currency: str) -> int:
    return exponent(currency)


def major_units(amount: int, currency: str) -> Decimal:
    """``Money(amount, currency).to_major()`` without building a Money per cell.

    ``Decimal(minor).scaleb(-places)`` already carries exactly ``places``
    decimals, so ``str()`` of it is ``Money.major_text()`` (a test holds the
    two together); this runs once per money cell of a million-row export.
    """
    return Decimal(amount).scaleb(-decimal_places(currency))


def local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A stored UTC time as a naive wall-clock time in ``zone`` (for the files)."""
    return moment.astimezone(zone).replace(tzinfo=None) if moment is not None else None


def as_text(column: Any) -> ColumnElement[str]:
    """A status or other enum column read back as its stored text (no enum lookup)."""
    return type_coerce(column, String)


# -- the local month, in SQL ----------------------------------------------------------


class local_month(FunctionElement[str]):
    """``'YYYY-MM'`` of a UTC timestamp in a time zone, grouped on in SQL.

    PostgreSQL knows time zones; SQLite does not, so there it is a small
    Python function registered on the connection (see :func:`prepare_connection`).
    """

    type = String()
    name = "local_month"
    inherit_cache = True


_SQLITE_LOCAL_MONTH = "reports_local_month"


@compiles(local_month, "postgresql")
def _local_month_postgresql(element: local_month, compiler: SQLCompiler, **kw: Any) -> str:
    moment, zone = list(element.clauses)
    return (
        f"to_char(timezone({compiler.process(zone, **kw)}, "
        f"{compiler.process(moment, **kw)}), 'YYYY-MM')"
    )


@compiles(local_month, "sqlite")
def _local_month_sqlite(element: local_month, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{_SQLITE_LOCAL_MONTH}({compiler.process(element.clauses, **kw)})"


def _sqlite_local_month(value: str | None, zone: str) -> str | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m")


def prepare_connection(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        raw = connection.connection.driver_connection
        raw.create_function(  # type: ignore[union-attr]
            _SQLITE_LOCAL_MONTH, 2, _sqlite_local_month, deterministic=True
        )


def stream(statement: AnySelect) -> Iterator[Any]:
    """The statement's rows, a batch at a time; the cursor closes when the caller stops."""
    result = db.session.execute(statement.execution_options(yield_per=BATCH))
    try:
        yield from result
    finally:
        result.close()


# -- the SQL side of the ledger's COPY: the same cells, written by PostgreSQL ----------


# Code points of the formula characters: ascii() of a text is its first
# character's, which is cheaper in PostgreSQL than cutting the text.
_TRIGGER_CODES = sorted(ord(c) for c in FORMULA_STARTS)


def sql_text(value: Any) -> ColumnElement[str]:
    """Text neutralised as :func:`exporters.neutralise` does; empty as NULL.

    COPY writes an empty string as ``""`` (to tell it from NULL) where the
    csv module writes nothing, so both become NULL here.
    """
    value = func.regexp_replace(type_coerce(value, String), CONTROL_CHARACTERS, "", "g")
    neutralised = case((func.ascii(value).in_(_TRIGGER_CODES), literal("'") + value), else_=value)
    return func.nullif(neutralised, "")


def sql_code(value: Any) -> ColumnElement[str]:
    """A CODE column as it is: NULL or a non-empty value, written alike by both paths."""
    return type_coerce(value, String)


# The currencies whose minor unit is not a hundredth, with what turns minor
# units into major ones; the rest multiply by 0.01. A product with a numeric
# factor keeps the factor's decimals: 1050 * 0.01 is 10.50, 1500 * 0.001 is
# 1.500, 3000 * 1 is 3000 -- exactly ``str(major_units())``.
CURRENCY_FACTORS = values(
    column("code", String), column("factor", Numeric), name="currency_factors", literal_binds=True
).data(
    [(code, Decimal(1)) for code in sorted(ZERO_DECIMAL)]
    + [(code, Decimal("0.001")) for code in sorted(THREE_DECIMAL)]
)


def sql_money(minor: Any) -> ColumnElement[str]:
    """Minor units as major-unit text; the query joins CURRENCY_FACTORS on its currency."""
    factor = func.coalesce(CURRENCY_FACTORS.c.factor, Decimal("0.01"))
    return cast(minor * factor, Text)


def sql_datetime(moment: Any, zone: ZoneInfo) -> ColumnElement[Any]:
    """The wall-clock time in ``zone``, whole seconds: ``2026-03-01 09:05:07``.

    A ``timestamp`` is written by COPY in the session's DateStyle, which
    :func:`exporters.copy_csv_chunks` sets to ISO; cheaper than to_char().
    """
    return func.date_trunc("second", func.timezone(zone.key, moment))
