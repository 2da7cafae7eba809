"""PostgreSQL and the Python rows write the donations ledger alike.

The CSV byte for byte, the XLSX cell for cell.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from openpyxl.utils.escape import unescape

from donations.db import commit, db
from donations.staff.models import Role
from donations.staff.reports.exporters import (
    Progress,
    copy_csv_chunks,
    copy_xlsx_chunks,
    csv_chunks,
    xlsx_chunks,
)
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.ledger import (
    LEDGER_COLUMNS,
    ledger_copy_statement,
    ledger_rows,
    ledger_xlsx_statement,
)
from donations.supporters.models import Frequency
from tests import factories
from tests.conftest import BACKEND
from tests.staff.reports.seed import PAYLOADS, bulk_ledger, seed

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="COPY is PostgreSQL's")

ZONES = [ZoneInfo(z) for z in ("America/New_York", "UTC", "Asia/Kathmandu", "Pacific/Chatham")]
FILTERS = [
    ReportFilters(),
    ReportFilters(start=date(2026, 3, 1), end=date(2026, 3, 31)),
    ReportFilters(start=date(2026, 3, 8), end=date(2026, 3, 8), status="succeeded"),
    ReportFilters(currency="KWD", frequency=Frequency.MONTHLY),
    ReportFilters(method="sepa_debit", campaign="@home"),
    ReportFilters(payout="po_1"),
    ReportFilters(campaign="x'; DROP TABLE donations; --"),
]


def both(filters: ReportFilters, zone: ZoneInfo) -> tuple[bytes, bytes, int]:
    progress = Progress()
    copied = b"".join(
        copy_csv_chunks(
            db.session.connection(), ledger_copy_statement(filters, zone), LEDGER_COLUMNS, progress
        )
    )
    written = b"".join(csv_chunks(LEDGER_COLUMNS, ledger_rows(filters, zone), Progress()))
    return copied, written, progress.rows


def test_same_bytes_for_every_zone_and_filter(ctx) -> None:
    seed()
    bulk_ledger(4000)
    commit()
    sizes = []
    for zone in ZONES:
        for filters in FILTERS:
            copied, written, rows = both(filters, zone)
            assert copied == written, (zone, filters)
            sizes.append(rows)
    assert max(sizes) == 4008
    assert 0 in sizes  # the injection attempt matched nothing, and broke nothing
    copied, _, _ = both(ReportFilters(), ZoneInfo("UTC"))
    assert b"'=HYPERLINK(" in copied
    assert b'"line\nbreak' in copied  # a line break inside a quoted field stays LF
    assert copied.count(b"\r\n") == 4008 + 1 + copied.count(b"crlf\r\ninside")


def test_the_download_uses_copy(signed_in, app, monkeypatch) -> None:
    with app.app_context():
        seed()
        commit()

    def no_python_rows(*args, **kwargs):
        raise AssertionError("the ledger CSV should come from COPY on PostgreSQL")

    monkeypatch.setattr("donations.staff.reports.exports.csv_chunks", no_python_rows)
    client, _ = signed_in(Role.FINANCE)
    answer = client.get("/staff/reports/ledger.csv")
    assert answer.status_code == 200
    assert answer.get_data().count(b"\r\n") == 9


def test_full_width_formulas_and_control_characters_alike(ctx) -> None:
    for n, name in enumerate(["＝HYPERLINK(1)", "＋1", "－2", "＠SUM(A1)", "Ada\x1b\x7f Reader"]):
        owner = factories.supporter(email=f"wide{n}@example.org", name=name)
        factories.donation(owner, campaign="\x07＠home")
    commit()
    copied, written, rows = both(ReportFilters(), ZoneInfo("UTC"))
    assert rows == 5
    assert copied == written
    text = copied.decode("utf-8")
    for cell in ["'＝HYPERLINK(1)", "'＋1", "'－2", "'＠SUM(A1)", "Ada Reader", "'＠home"]:
        assert cell in text
    assert "\x1b" not in text
    assert "\x07" not in text


# -- XLSX: worksheet rows written by PostgreSQL --------------------------------------


def _cells(workbook_bytes: bytes) -> tuple[list[list[Any]], list[list[str]], Any]:
    """Every cell's value and data type of the first sheet (escapes undone), and the workbook."""
    workbook = openpyxl.load_workbook(io.BytesIO(workbook_bytes))
    sheet = workbook.worksheets[0]
    values = [
        [unescape(v) if isinstance(v, str) else v for v in row]
        for row in sheet.iter_rows(values_only=True)
    ]
    types = [[c.data_type for c in row] for row in sheet.iter_rows()]
    return values, types, workbook


def both_xlsx(filters: ReportFilters, zone: ZoneInfo) -> tuple[bytes, bytes, int]:
    progress = Progress()
    notes = {"Report": "Donations ledger", "Time zone": zone.key}
    statement = ledger_xlsx_statement(filters, zone)
    copied = b"".join(
        copy_xlsx_chunks(
            db.session.connection(), statement, LEDGER_COLUMNS, progress, "Ledger", notes
        )
    )
    written = b"".join(
        xlsx_chunks(LEDGER_COLUMNS, ledger_rows(filters, zone), Progress(), "Ledger", notes)
    )
    return copied, written, progress.rows


def test_xlsx_same_cells_for_every_zone_and_filter(ctx) -> None:
    seed()
    bulk_ledger(1500)
    commit()
    sizes = []
    for zone in ZONES[:3]:
        for filters in FILTERS[:4] + FILTERS[-1:]:
            copied, written, rows = both_xlsx(filters, zone)
            ours, ours_types, workbook = _cells(copied)
            theirs, their_types, _ = _cells(written)
            assert ours == theirs, (zone, filters)
            assert ours_types == their_types, (zone, filters)
            assert len(ours) == rows + 1
            assert workbook["About"]["B2"].value == zone.key
            sizes.append(rows)
    assert max(sizes) == 1508
    assert 0 in sizes


def test_xlsx_text_is_never_a_formula_and_numbers_keep_formats(ctx) -> None:
    ledger = seed()
    owner = factories.supporter(email="x@example.org", name='_x0041_ <b>&amp; "q" ＝1\x1b')
    factories.donation(owner, amount=1050, currency="KWD", campaign="line\nbreak\r\nend")
    commit()
    copied, _, rows = both_xlsx(ReportFilters(), ZoneInfo("UTC"))
    values, types, workbook = _cells(copied)
    sheet = workbook.worksheets[0]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:T{rows + 1}"
    assert values[0] == [c.key for c in LEDGER_COLUMNS]
    assert all(t != "f" for row in types for t in row)  # no formula anywhere
    names = [row[3] for row in values[1:]]
    for payload in list(PAYLOADS.values())[:5]:  # the supporters with donations
        assert payload in names  # as typed: a string cell needs no apostrophe
    assert '_x0041_ <b>&amp; "q" ＝1' in names  # the escape escaped, the control dropped
    kwd = next(row for row in values[1:] if row[2] == "x@example.org")
    assert kwd[4] == 1.05
    assert kwd[10] == "KWD"
    assert kwd[14] == "line\nbreak\r\nend"
    assert ledger.ids  # the seeded ledger is there too
    money = sheet.cell(values.index(kwd) + 1, 5)
    assert money.number_format == "#,##0.000"
    assert sheet.cell(values.index(kwd) + 1, 2).number_format == "yyyy-mm-dd hh:mm:ss"


def test_the_xlsx_download_uses_copy(signed_in, app, monkeypatch) -> None:
    with app.app_context():
        seed()
        commit()

    def no_python_rows(*args, **kwargs):
        raise AssertionError("the ledger XLSX should come from PostgreSQL on PostgreSQL")

    monkeypatch.setattr("donations.staff.reports.exports.xlsx_chunks", no_python_rows)
    client, _ = signed_in(Role.FINANCE)
    answer = client.get("/staff/reports/ledger.xlsx")
    assert answer.status_code == 200
    values, _, workbook = _cells(answer.get_data())
    assert len(values) == 9  # the header and the eight donations
    assert workbook.sheetnames == ["Donations ledger", "About"]
