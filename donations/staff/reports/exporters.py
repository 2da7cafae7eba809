"""Streaming CSV and XLSX exports, safe to open in a spreadsheet.

CSV
    RFC 4180 (https://www.rfc-editor.org/rfc/rfc4180): comma-separated,
    fields quoted only when they contain a comma, quote, CR or LF, quotes
    doubled, records ending in CRLF. Encoded as UTF-8 **with a byte-order
    mark**: without it Excel, which is what finance staff open a CSV with,
    reads the file in the local ANSI code page and garbles every name with
    an accent. Programs read it with ``encoding="utf-8-sig"`` (Python),
    which also accepts a file without the mark.

Formula injection
    A text cell that starts with ``= + - @``, a tab or a carriage return
    would be run as a formula by a spreadsheet (OWASP "CSV Injection").
    In CSV such a cell gets a leading apostrophe, which spreadsheets hide
    and treat as "this is text". Money, dates and counts are written by us,
    never start with those characters except a minus sign on a negative
    amount, and are left alone so they stay numbers. In XLSX every text cell
    is written with ``write_string``: a string cell, never a formula, so it
    keeps its exact text.

Both formats stream: rows are pulled from the database a batch at a time
and the CSV leaves in chunks of about 64 KiB. XLSX is a zip archive that
XlsxWriter can only finish once the last row is in, so the rows go through
XlsxWriter's ``constant_memory`` mode into a temporary file, which is then
sent in chunks: memory stays flat either way.

On PostgreSQL the donations ledger's CSV is made by PostgreSQL itself
(``COPY ... TO STDOUT``), with the same neutralisation and number formats
written in SQL, and produces the same bytes as the Python path.

Its XLSX is made the same way: PostgreSQL writes each row of the worksheet
as SpreadsheetML (``<row>`` with inline-string text cells, numbers with
their number format, dates as serial numbers) and :func:`copy_xlsx_chunks`
puts those rows, unchanged, into the workbook's zip container as they
arrive, compressing as it goes: no XlsxWriter call per cell, and memory
stays flat. The workbook reads back (openpyxl, LibreOffice, Excel) to the
same cells as the XlsxWriter path's.
"""

from __future__ import annotations

import csv
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import IO, Any
from xml.sax.saxutils import escape

import xlsxwriter
from sqlalchemy import Connection
from sqlalchemy.sql import Select
from xlsxwriter.utility import xl_col_to_name

# What a spreadsheet would take as the start of a formula.
FORMULA_TRIGGERS = frozenset("=+-@\t\r")
# ... and the characters that become one of those under NFKC: full-width ＝ ＋ － ＠,
# small and super/subscript forms. Some spreadsheets (and IMEs) fold them.
FORMULA_STARTS = frozenset(
    c for c in map(chr, range(0x10000)) if unicodedata.normalize("NFKC", c)[:1] in FORMULA_TRIGGERS
)
# Control characters are dropped from text cells (tab, CR and LF stay: CSV quotes them).
CONTROL_CHARACTERS = r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"  # for re and PostgreSQL alike
_CONTROLS = re.compile(CONTROL_CHARACTERS)
BOM = "\ufeff"
CHUNK_BYTES = 64 * 1024
DATETIME_TEXT = "%Y-%m-%d %H:%M:%S"

CSV_MIMETYPE = "text/csv"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Kind(Enum):
    """How a column's values are written."""

    TEXT = "text"  # what people typed (names, emails, campaigns): neutralised in CSV
    # What we or Stripe assign -- ids, statuses, ISO codes, method names. They
    # never start with a formula character, so they are written as they are.
    CODE = "code"
    MONEY = "money"  # Decimal in major units (see queries.major_units)
    INT = "int"
    DATETIME = "datetime"  # naive, already in the reporting time zone
    DATE = "date"


@dataclass(frozen=True)
class Column:
    key: str  # the header in the files
    kind: Kind
    label: str  # the heading on screen


Row = Sequence[Any]


@dataclass
class Progress:
    """Rows written so far: read by the view to audit the export when it ends."""

    rows: int = 0


def neutralise(value: str) -> str:
    """``value`` without control characters, with a leading apostrophe if a spreadsheet
    would read it as a formula."""
    value = _CONTROLS.sub("", value).replace("\x00", "")
    if value and value[0] in FORMULA_STARTS:
        return "'" + value
    return value


# -- CSV ---------------------------------------------------------------------------


class _Pieces:
    """A write-only file for csv.writer that keeps what was written until taken."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text)
        return len(text)

    def take(self) -> bytes:
        data = "".join(self.parts).encode("utf-8")
        self.parts.clear()
        self.size = 0
        return data


def _csv_text(value: Any) -> Any:
    return neutralise(value) if value is not None else None


def _csv_datetime(value: datetime | None) -> str | None:
    return value.strftime(DATETIME_TEXT) if value is not None else None


def _csv_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _same(value: Any) -> Any:
    return value


_CSV_CELL: dict[Kind, Callable[[Any], Any]] = {
    Kind.TEXT: _csv_text,
    Kind.CODE: _same,
    Kind.MONEY: _same,  # str(Decimal) is the plain major-unit text, e.g. "-0.59"
    Kind.INT: _same,
    Kind.DATETIME: _csv_datetime,
    Kind.DATE: _csv_date,
}


def header_bytes(columns: Sequence[Column]) -> bytes:
    pieces = _Pieces()
    pieces.write(BOM)
    csv.writer(pieces).writerow([c.key for c in columns])
    return pieces.take()


def csv_chunks(
    columns: Sequence[Column], rows: Iterable[Row], progress: Progress
) -> Iterator[bytes]:
    """The CSV file, in chunks of about CHUNK_BYTES, counting rows in ``progress``."""
    yield header_bytes(columns)
    pieces = _Pieces()
    writer = csv.writer(pieces)  # the "excel" dialect: RFC 4180 quoting, CRLF
    cells = [_CSV_CELL[c.kind] for c in columns]
    for row in rows:
        writer.writerow([cell(value) for cell, value in zip(cells, row, strict=True)])
        progress.rows += 1
        if pieces.size >= CHUNK_BYTES:
            yield pieces.take()
    if pieces.size:
        yield pieces.take()


def copy_csv_chunks(
    connection: Connection,
    statement: Select[*tuple[Any, ...]],
    columns: Sequence[Column],
    progress: Progress,
) -> Iterator[bytes]:
    """The same CSV as :func:`csv_chunks`, produced by PostgreSQL's ``COPY``.

    ``statement`` selects the cells already as text (neutralised, money in
    major units, times in the reporting zone), in ``columns`` order. Its
    parameters are bound by psycopg on the client, as COPY takes none.
    """
    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    raw = connection.connection.driver_connection
    assert raw is not None
    yield header_bytes(columns)
    buffer = bytearray()
    rows = 0
    with raw.cursor() as cursor:  # type: ignore[attr-defined]
        # Timestamps as "YYYY-MM-DD HH:MM:SS[.ffffff]", whatever the server's
        # default; LOCAL: until this (read-only) transaction ends.
        cursor.execute("SET LOCAL datestyle TO 'ISO, YMD'")
        # No HEADER: ours comes from ``columns``, exactly as the Python path writes it.
        sql = f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)"
        with cursor.copy(sql, compiled.params) as copy:
            for data in copy:
                # Each CopyData message from the server is exactly one row,
                # ending in "\n" (https://www.postgresql.org/docs/current/
                # protocol-flow.html#PROTOCOL-COPY). RFC 4180 ends records
                # with CRLF, so a "\r" goes in before that last byte; a "\n"
                # inside a quoted field stays as is, as the csv module writes it.
                buffer += data
                buffer.insert(-1, 13)
                rows += 1
                if len(buffer) >= CHUNK_BYTES:
                    progress.rows = rows
                    yield bytes(buffer)
                    buffer.clear()
    progress.rows = rows
    if buffer:
        yield bytes(buffer)


# -- XLSX --------------------------------------------------------------------------


def decimal_places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) else 0


_WIDTHS = {
    Kind.TEXT: 18,
    Kind.CODE: 14,
    Kind.MONEY: 12,
    Kind.INT: 10,
    Kind.DATETIME: 19,
    Kind.DATE: 11,
}
_MONEY_FORMATS = {0: "#,##0", 2: "#,##0.00", 3: "#,##0.000"}


def write_xlsx(
    columns: Sequence[Column],
    rows: Iterable[Row],
    out: IO[bytes],
    progress: Progress,
    sheet: str = "Report",
    notes: Mapping[str, str] | None = None,
) -> None:
    """Write the rows as an XLSX workbook to ``out`` (a seekable binary file)."""
    workbook = xlsxwriter.Workbook(
        out,
        {
            # Each row is written to a temporary file as soon as the next one
            # starts: memory does not grow with the number of rows.
            "constant_memory": True,
            # Only write() looks at these; we never call it, but a future
            # write() must not turn "=..." into a formula either.
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    worksheet = workbook.add_worksheet(sheet[:31])
    bold = workbook.add_format({"bold": True})
    datetime_format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    money_formats = {
        places: workbook.add_format({"num_format": code}) for places, code in _MONEY_FORMATS.items()
    }
    for index, column in enumerate(columns):
        worksheet.set_column(index, index, max(_WIDTHS[column.kind], len(column.key) + 2))
        worksheet.write_string(0, index, column.key, bold)
    worksheet.freeze_panes(1, 0)

    by_kind = {kind: [i for i, c in enumerate(columns) if c.kind is kind] for kind in Kind}
    texts, codes = by_kind[Kind.TEXT], by_kind[Kind.CODE]
    money, ints = by_kind[Kind.MONEY], by_kind[Kind.INT]
    datetimes, dates = by_kind[Kind.DATETIME], by_kind[Kind.DATE]
    write_string, write_number = worksheet.write_string, worksheet.write_number
    write_datetime = worksheet.write_datetime
    number = 0
    for number, row in enumerate(rows, start=1):
        for i in texts:  # control characters dropped, as from the CSV and COPY paths
            if (value := row[i]) is not None and (value := _CONTROLS.sub("", value)):
                write_string(number, i, value)
        for i in codes:
            if (value := row[i]) is not None and value != "":
                write_string(number, i, value)
        for i in money:
            if (value := row[i]) is not None:
                write_number(number, i, float(value), money_formats[decimal_places(value)])
        for i in ints:
            if (value := row[i]) is not None:
                write_number(number, i, value)
        for i in datetimes:  # whole seconds, as the CSV
            if (value := row[i]) is not None:
                write_datetime(number, i, value.replace(microsecond=0), datetime_format)
        for i in dates:
            if (value := row[i]) is not None:
                write_datetime(number, i, value, date_format)
        progress.rows += 1
    worksheet.autofilter(0, 0, max(number, 1), len(columns) - 1)
    if notes:
        about = workbook.add_worksheet("About")
        about.set_column(0, 0, 18)
        about.set_column(1, 1, 60)
        for line, (key, value) in enumerate(notes.items()):
            about.write_string(line, 0, key, bold)
            about.write_string(line, 1, value)
    workbook.close()


def xlsx_chunks(
    columns: Sequence[Column],
    rows: Iterable[Row],
    progress: Progress,
    sheet: str = "Report",
    notes: Mapping[str, str] | None = None,
) -> Iterator[bytes]:
    """The XLSX file in chunks: built in a temporary file, then read back."""
    with tempfile.TemporaryFile() as out:
        write_xlsx(columns, rows, out, progress, sheet, notes)
        out.seek(0)
        while chunk := out.read(CHUNK_BYTES):
            yield chunk


# -- XLSX from PostgreSQL: worksheet rows written by the database -------------------

# The cell formats of the workbook's styles.xml, by index (s="..." on a cell);
# the SQL that writes the rows (reports.sql.xlsx_row) refers to them.
STYLE_BOLD = 1
STYLE_DATETIME = 2
STYLE_DATE = 3
STYLE_MONEY = {0: 4, 2: 5, 3: 6}  # by the currency's decimal places

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _content_types(sheets: int) -> str:
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{_SHEET_TYPE}"/>'
        for n in range(1, sheets + 1)
    )
    office = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    return (
        f"{_XML_DECLARATION}<Types "
        'xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{office}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{office}.styles+xml"/>'
        f"{overrides}</Types>"
    )


def _package_rels() -> str:
    return (
        f'{_XML_DECLARATION}<Relationships xmlns="{_PACKAGE_REL}">'
        f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )


def _workbook(names: Sequence[str]) -> str:
    sheets = "".join(
        f'<sheet name="{escape(name, {chr(34): "&quot;"})}" sheetId="{n}" r:id="rId{n}"/>'
        for n, name in enumerate(names, start=1)
    )
    return (
        f'{_XML_DECLARATION}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
        f"<sheets>{sheets}</sheets></workbook>"
    )


def _workbook_rels(sheets: int) -> str:
    relations = "".join(
        f'<Relationship Id="rId{n}" Type="{_REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, sheets + 1)
    )
    styles = f'<Relationship Id="rId{sheets + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
    return (
        f'{_XML_DECLARATION}<Relationships xmlns="{_PACKAGE_REL}">'
        f"{relations}{styles}</Relationships>"
    )


def _styles() -> str:
    # numFmtId 3 and 4 are built in ("#,##0" and "#,##0.00"); ours start at 164.
    formats = (
        '<numFmts count="3"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/>'
        '<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/>'
        '<numFmt numFmtId="166" formatCode="#,##0.000"/></numFmts>'
    )
    number_formats = {STYLE_DATETIME: 164, STYLE_DATE: 165, 4: 3, 5: 4, 6: 166}
    xfs = ['<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'] * 7
    xfs[STYLE_BOLD] = '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    for index, number_format in number_formats.items():
        xfs[index] = (
            f'<xf numFmtId="{number_format}" fontId="0" fillId="0" borderId="0" xfId="0" '
            'applyNumberFormat="1"/>'
        )
    return (
        f'{_XML_DECLARATION}<styleSheet xmlns="{_MAIN}">{formats}'
        '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
        '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        "</cellStyleXfs>"
        f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    )


def _text_cell(ref: str, text: str, style: int = 0) -> str:
    styled = f' s="{style}"' if style else ""
    return (
        f'<c r="{ref}"{styled} t="inlineStr"><is><t xml:space="preserve">'
        f"{escape(_CONTROLS.sub('', text))}</t></is></c>"
    )


def _sheet_head(columns: Sequence[Column]) -> str:
    widths = "".join(
        f'<col min="{n}" max="{n}" width="{max(_WIDTHS[c.kind], len(c.key) + 2)}" customWidth="1"/>'
        for n, c in enumerate(columns, start=1)
    )
    header = "".join(
        _text_cell(f"{xl_col_to_name(i)}1", c.key, STYLE_BOLD) for i, c in enumerate(columns)
    )
    return (
        f'{_XML_DECLARATION}<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
        '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
        'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
        f'<cols>{widths}</cols><sheetData><row r="1">{header}</row>\n'
    )


def _sheet_tail(columns: Sequence[Column], rows: int) -> str:
    last = f"{xl_col_to_name(len(columns) - 1)}{max(rows, 1) + 1}"
    return f'</sheetData><autoFilter ref="A1:{last}"/></worksheet>'


def _notes_sheet(notes: Mapping[str, str]) -> str:
    rows = "".join(
        f'<row r="{n}">{_text_cell(f"A{n}", key, STYLE_BOLD)}{_text_cell(f"B{n}", value)}</row>'
        for n, (key, value) in enumerate(notes.items(), start=1)
    )
    return (
        f'{_XML_DECLARATION}<worksheet xmlns="{_MAIN}">'
        '<cols><col min="1" max="1" width="18" customWidth="1"/>'
        '<col min="2" max="2" width="60" customWidth="1"/></cols>'
        f"<sheetData>{rows}</sheetData></worksheet>"
    )


class _Sink:
    """A write-only, unseekable file for zipfile that keeps what was written until taken."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:  # stub-check: ok (nothing buffered below us: take() hands it on)
        pass

    def close(self) -> None:  # stub-check: ok (zipfile never closes a file it was given)
        pass

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def copy_xlsx_chunks(
    connection: Connection,
    statement: Select[*tuple[Any, ...]],
    columns: Sequence[Column],
    progress: Progress,
    sheet: str = "Report",
    notes: Mapping[str, str] | None = None,
) -> Iterator[bytes]:
    """The XLSX workbook whose worksheet rows PostgreSQL writes, streamed as it is zipped.

    ``statement`` selects one text column: each data row's ``<row>`` element
    (see :func:`donations.staff.reports.sql.xlsx_row`), in order, following
    the header row. The rows carry no CR, LF or control character, so COPY's CSV
    format (with delimiter and quote characters that never occur) hands
    them over exactly as written, each followed by a LF, which is
    whitespace between elements.
    """
    names = [sheet[:31]] + (["About"] if notes else [])
    sink = _Sink()
    # Deflate level 1: most of the size gain at a fraction of the time.
    archive = zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
    for name, text in (
        ("[Content_Types].xml", _content_types(len(names))),
        ("_rels/.rels", _package_rels()),
        ("xl/workbook.xml", _workbook(names)),
        ("xl/_rels/workbook.xml.rels", _workbook_rels(len(names))),
        ("xl/styles.xml", _styles()),
    ):
        archive.writestr(name, text)
    yield sink.take()

    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    raw = connection.connection.driver_connection
    assert raw is not None
    rows = 0
    with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as worksheet:
        worksheet.write(_sheet_head(columns).encode())
        batch = bytearray()
        with raw.cursor() as cursor:  # type: ignore[attr-defined]
            sql = (
                f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')"
            )
            with cursor.copy(sql, compiled.params) as copy:
                for data in copy:  # one CopyData message per row
                    batch += data
                    rows += 1
                    if len(batch) >= 4 * CHUNK_BYTES:
                        worksheet.write(batch)
                        batch.clear()
                        progress.rows = rows
                        if len(sink.buffer) >= CHUNK_BYTES:
                            yield sink.take()
        worksheet.write(bytes(batch))
        worksheet.write(_sheet_tail(columns, rows).encode())
    progress.rows = rows
    if notes:
        archive.writestr("xl/worksheets/sheet2.xml", _notes_sheet(notes))
    archive.close()
    yield sink.take()
