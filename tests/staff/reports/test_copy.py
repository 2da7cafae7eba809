"""PostgreSQL's COPY and the Python rows write the donations ledger's CSV byte for byte alike."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from donations.db import commit, db
from donations.staff.models import Role
from donations.staff.reports.exporters import Progress, copy_csv_chunks, csv_chunks
from donations.staff.reports.filters import ReportFilters
from donations.staff.reports.ledger import LEDGER_COLUMNS, ledger_copy_statement, ledger_rows
from donations.supporters.models import Frequency
from tests.conftest import BACKEND
from tests.staff import factories
from tests.staff.reports.seed import bulk_ledger, seed

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


def test_same_bytes_for_every_zone_and_filter(ctx) -> None:  # type: ignore[no-untyped-def]
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


def test_the_download_uses_copy(signed_in, app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        seed()
        commit()

    def no_python_rows(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the ledger CSV should come from COPY on PostgreSQL")

    monkeypatch.setattr("donations.staff.reports.views.csv_chunks", no_python_rows)
    client, _ = signed_in(Role.FINANCE)
    answer = client.get("/staff/reports/ledger.csv")
    assert answer.status_code == 200
    assert answer.get_data().count(b"\r\n") == 9


def test_full_width_formulas_and_control_characters_alike(ctx) -> None:  # type: ignore[no-untyped-def]
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
