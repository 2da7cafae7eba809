"""CSV and XLSX writing: RFC 4180, formula neutralisation, text cells, money as numbers."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl.utils.escape import unescape

from donations.money import THREE_DECIMAL, ZERO_DECIMAL, Money
from donations.staff.reports.exporters import (
    BOM,
    Column,
    Kind,
    Progress,
    csv_chunks,
    neutralise,
    write_xlsx,
)
from donations.staff.reports.sql import major_units


def wall(*parts: int) -> datetime:
    """A naive wall-clock time, as the report rows carry them (already in the reporting zone)."""
    return datetime(*parts)  # noqa: DTZ001


COLUMNS = (
    Column("id", Kind.INT, "#"),
    Column("name", Kind.TEXT, "Name"),
    Column("amount", Kind.MONEY, "Amount"),
    Column("at", Kind.DATETIME, "At"),
    Column("day", Kind.DATE, "Day"),
)
PAYLOADS = [
    '=HYPERLINK("http://evil.example","x")',
    "+1",
    "-2",
    "@SUM(A1)",
    "\tTab",
    "\rReturn",
    "=1+2",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_neutralise_formula_starts(payload: str) -> None:
    assert neutralise(payload) == "'" + payload


@pytest.mark.parametrize("text", ["", "Ada", " =not first", "'quoted", "1=1", "a-b", "#x"])
def test_neutralise_leaves_other_text(text: str) -> None:
    assert neutralise(text) == text


def as_csv(rows: list[tuple]) -> bytes:
    return b"".join(csv_chunks(COLUMNS, rows, Progress()))


def test_csv_is_rfc_4180_with_a_bom() -> None:
    quoted = 'He said "hi", twice\nthen left'
    data = as_csv(
        [
            (1, quoted, Decimal("-0.59"), wall(2026, 3, 1, 9, 5, 7), date(2026, 3, 2)),
            (2, None, None, None, None),
            (3, "Zoë", Decimal("1000"), None, None),
        ]
    )
    assert data.startswith(BOM.encode())
    assert data.decode("utf-8-sig") == (
        "id,name,amount,at,day\r\n"
        '1,"He said ""hi"", twice\nthen left",-0.59,2026-03-01 09:05:07,2026-03-02\r\n'
        "2,,,,\r\n"
        "3,Zoë,1000,,\r\n"
    )


def test_csv_neutralises_text_cells_only() -> None:
    data = as_csv([(i, text, Decimal("-5.00"), None, None) for i, text in enumerate(PAYLOADS)])
    read = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert [row[1] for row in read[1:]] == ["'" + p for p in PAYLOADS]
    # A negative amount stays a number.
    assert {row[2] for row in read[1:]} == {"-5.00"}


def test_csv_streams_in_chunks_and_counts_rows() -> None:
    progress = Progress()
    rows = ((i, "x" * 100, Decimal("1.00"), None, None) for i in range(5000))
    chunks = list(csv_chunks(COLUMNS, rows, progress))
    assert progress.rows == 5000
    assert len(chunks) > 5
    assert max(len(c) for c in chunks) < 80 * 1024


def test_xlsx_reads_back_with_text_cells_and_numbers(tmp_path) -> None:
    rows = [
        (i, payload, Decimal(amount), wall(2026, 3, 1, 9, 5, 7), date(2026, 3, 2))
        for i, (payload, amount) in enumerate(
            zip(PAYLOADS, ["10.50", "-0.59", "1000", "1.500", "0.00", "12345.67", "3"], strict=True)
        )
    ]
    rows.append((99, None, None, None, None))
    path = tmp_path / "report.xlsx"
    progress = Progress()
    with path.open("wb") as out:
        write_xlsx(COLUMNS, rows, out, progress, "A sheet", {"Report": "test"})
    assert progress.rows == len(rows)
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["A sheet"]
    assert [c.value for c in sheet[1]] == ["id", "name", "amount", "at", "day"]
    for number, payload in enumerate(PAYLOADS, start=2):
        cell = sheet.cell(number, 2)
        assert cell.data_type == "s", payload  # a string, never "f" (formula)
        # OOXML writes a CR as _x000D_; Excel reads it back, openpyxl leaves it to us.
        assert unescape(cell.value) == payload
    amounts = [sheet.cell(n, 3).value for n in range(2, 2 + len(PAYLOADS))]
    assert amounts == [10.5, -0.59, 1000, 1.5, 0, 12345.67, 3]
    assert sheet.cell(2, 3).number_format == "#,##0.00"
    assert sheet.cell(4, 3).number_format == "#,##0"
    assert sheet.cell(5, 3).number_format == "#,##0.000"
    assert sheet.cell(2, 4).value == wall(2026, 3, 1, 9, 5, 7)
    assert sheet.cell(2, 5).value == wall(2026, 3, 2)
    assert [c.value for c in sheet[len(rows) + 1]] == [99, None, None, None, None]
    assert workbook["About"]["B1"].value == "test"


CURRENCIES = sorted(ZERO_DECIMAL | THREE_DECIMAL | {"USD", "EUR", "GBP"})


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(CURRENCIES))
def test_major_units_is_money_major_text(amount: int, currency: str) -> None:
    value = major_units(amount, currency)
    assert str(value) == Money(amount, currency).major_text()
    assert value == Money(amount, currency).to_major()


@pytest.mark.parametrize(
    "payload", ["＝HYPERLINK(1)", "＋1", "－2", "＠SUM(A1)", "﹦1", "⁺1", "₊1", "﬩1"]
)
def test_neutralise_catches_what_nfkc_folds_into_a_formula(payload: str) -> None:
    assert neutralise(payload) == "'" + payload


@pytest.mark.parametrize(
    ("name", "cell"),
    [("Ada\x00 Reader", "Ada Reader"), ("\x1b[31mRed", "[31mRed"), ("\x07=1", "'=1"),
     ("Ada\x85\x9f", "Ada"), ("line\nbreak", "line\nbreak")],
)  # fmt: skip
def test_neutralise_drops_control_characters(name: str, cell: str) -> None:
    assert neutralise(name) == cell
