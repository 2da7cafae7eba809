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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Date,
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
from donations.staff.reports.exporters import (
    CONTROL_CHARACTERS,
    FORMULA_STARTS,
    STYLE_DATE,
    STYLE_DATETIME,
    STYLE_MONEY,
    Column,
    Kind,
)

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


def count_where(condition: Any) -> Any:
    """How many of a group's rows meet ``condition`` (NULL for an empty group)."""
    return func.sum(case((condition, 1), else_=0))


def rate_text(part: int, whole: int, decimals: int = 1) -> str:
    """``part / whole`` as a percentage cell ("12.5%"); empty when ``whole`` is 0."""
    return f"{part / whole:.{decimals}%}" if whole else ""


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


# What sql_text changes: a formula character first, or a control character anywhere.
_NEEDS_NEUTRALISING = (
    "^["
    + "".join("\\" + c if c in "\\]-^" else c for c in sorted(FORMULA_STARTS))
    + "]|"
    + CONTROL_CHARACTERS
)


def sql_text(value: Any) -> ColumnElement[str]:
    """Text neutralised as :func:`exporters.neutralise` does; empty as NULL.

    COPY writes an empty string as ``""`` (to tell it from NULL) where the
    csv module writes nothing, so both become NULL here.
    """
    value = type_coerce(value, String)
    kept = func.regexp_replace(value, CONTROL_CHARACTERS, "", "g")
    changed = case((func.ascii(kept).in_(_TRIGGER_CODES), literal("'") + kept), else_=kept)
    # Most text needs neither: one match per cell finds out, and only the rest pays for more.
    return func.nullif(case((value.op("~")(_NEEDS_NEUTRALISING), changed), else_=value), "")


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


# -- the SQL side of the ledger's XLSX: worksheet rows written by PostgreSQL ---------

# What a worksheet's text may not hold: XML 1.0 forbids C0 controls (but tab,
# LF, CR) and U+FFFE/U+FFFF; C1 controls go too, as from every text cell.
_XML_DROPPED = CONTROL_CHARACTERS[:-1] + r"\ufffe\uffff]"
# Anything xml_text changes; most text has none, and a match is far cheaper
# in PostgreSQL than the replacements.
_XML_SPECIAL = r"[&<>\n\r" + _XML_DROPPED[1:] + r"|_x[0-9a-fA-F]{4}_"


def _text(value: Any) -> ColumnElement[str]:
    return type_coerce(value, Text)


def xml_text(value: Any) -> ColumnElement[str]:
    """Text as the content of an inline string: escaped, with no character COPY would quote.

    OOXML reads ``_xHHHH_`` in a string as an escaped character, so a
    literal one gets its underscore escaped (``_x005F_``), as XlsxWriter
    does; CR and LF become character references, so each row stays one line.
    """
    value = _text(value)
    escaped = func.regexp_replace(value, "(_x[0-9a-fA-F]{4}_)", r"_x005F\1", "g")
    escaped = func.regexp_replace(escaped, _XML_DROPPED, "", "g")
    for character, reference in (
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("\n", "&#10;"),
        ("\r", "&#13;"),
    ):
        escaped = func.replace(escaped, character, reference)
    return _text(case((value.op("~")(_XML_SPECIAL), escaped), else_=value))


def _serial(moment: Any, zone: ZoneInfo) -> ColumnElement[str]:
    """A timestamp as a spreadsheet's date serial (days since 1899-12-30), whole seconds."""
    seconds = func.extract("epoch", func.date_trunc("second", func.timezone(zone.key, moment)))
    return _text(cast(func.round(seconds / 86400 + 25569, 10), Text))


def copy_cell(kind: Kind, value: Any, zone: ZoneInfo) -> ColumnElement[Any]:
    """A raw value as the CSV path writes it (for COPY; the query joins CURRENCY_FACTORS)."""
    if kind is Kind.TEXT:
        return sql_text(value)
    if kind is Kind.CODE:
        return sql_code(value)
    if kind is Kind.MONEY:
        return sql_money(value)
    if kind is Kind.DATETIME:
        return sql_datetime(value, zone)
    return value  # INT, and DATE (written as ISO by COPY's ISO DateStyle)


def xlsx_row(columns: Sequence[Column], cells: Sequence[Any], zone: ZoneInfo) -> ColumnElement[str]:
    """One worksheet ``<row>`` of ``cells`` (raw values in ``columns`` order).

    Text is an inline string (never a formula, whatever it starts with);
    money is a number in major units with the currency's number format (the
    query joins CURRENCY_FACTORS); times are date serials in ``zone``. An
    empty value is an empty cell, ``<c/>``.

    Neither rows nor cells carry a reference (``r="B7"``): SpreadsheetML
    makes it optional, each row following the one before and each cell the
    one to its left (ECMA-376 Part 1, 18.3.1.4 c and 18.3.1.73 row). A row's
    number would need ``row_number()`` over the whole ordered ledger, a window
    that PostgreSQL computes in one process after the sort, and with it every
    cell of the row; without it, the parallel workers write the rows.
    """
    factor = CURRENCY_FACTORS.c.factor
    money_style = case(
        (factor.is_(None), str(STYLE_MONEY[2])),
        (factor == 1, str(STYLE_MONEY[0])),
        else_=str(STYLE_MONEY[3]),
    )
    parts: list[Any] = []
    for spec, cell in zip(columns, cells, strict=True):
        kind = spec.kind
        if kind in (Kind.TEXT, Kind.CODE):
            text = xml_text(func.nullif(_text(cell), ""))
            # What people typed may start or end with a space; our codes never do.
            space = ' xml:space="preserve"' if kind is Kind.TEXT else ""
            written = f'<c t="inlineStr"><is><t{space}>' + text + "</t></is></c>"
        elif kind is Kind.MONEY:
            major = cell * func.coalesce(factor, Decimal("0.01"))
            written = '<c s="' + money_style + '"><v>' + _text(cast(major, Text)) + "</v></c>"
        elif kind is Kind.INT:
            written = _text(literal("<c><v>")) + _text(cast(cell, Text)) + "</v></c>"
        elif kind is Kind.DATETIME:
            written = f'<c s="{STYLE_DATETIME}"><v>' + _serial(cell, zone) + "</v></c>"
        else:  # Kind.DATE
            days = _text(cast(cell - cast(literal("1899-12-30"), Date), Text))
            written = f'<c s="{STYLE_DATE}"><v>' + days + "</v></c>"
        # A NULL value makes the whole concatenation NULL: that cell is empty.
        parts.append(func.coalesce(_text(written), "<c/>"))
    return _text(func.concat("<row>", *parts, "</row>"))
