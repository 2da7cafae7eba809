"""/staff/reports: screens for all staff, downloads for finance, audited, bad filters refused."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from flask import Flask
from openpyxl.utils.escape import unescape
from sqlalchemy import select

from donations.db import commit, db
from donations.staff.models import AuditEntry, Role
from donations.staff.reports.catalogue import REPORTS
from tests.staff.reports.seed import PAYLOADS, fast_ledger, seed

MARCH = "from=2026-03-01&to=2026-03-31"


@pytest.fixture
def seeded(app: Flask, new_york: str) -> dict[str, int]:
    with app.app_context():
        ledger = seed()
        commit()
        return ledger.ids


def audit_entries(app: Flask, prefix: str = "export.") -> list[AuditEntry]:
    with app.app_context():
        entries = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action.startswith(prefix)).order_by(AuditEntry.id)
        ).all()
        db.session.expunge_all()
        return list(entries)


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def test_index_lists_every_report(signed_in) -> None:
    client, _ = signed_in(Role.VIEWER)
    page = client.get("/staff/reports/")
    assert page.status_code == 200
    for report in REPORTS.values():
        assert report.title in page.text
    assert ".csv" not in page.text  # no download links for a viewer
    assert "Downloads need the finance role" in page.text


def test_screen_shows_totals_and_first_rows(signed_in, seeded) -> None:
    client, _ = signed_in(Role.FINANCE)
    page = client.get(f"/staff/reports/ledger?{MARCH}&status=all")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    text = page.text
    assert "37.50" in text
    assert "34.03" in text
    assert "All 6 rows" in text
    assert "Zoë O&#39;Brien, Jr." in text
    assert "America/New_York" in text


def test_viewer_sees_the_totals_but_not_the_rows(signed_in, seeded) -> None:
    client, _ = signed_in(Role.VIEWER)
    page = client.get(f"/staff/reports/ledger?{MARCH}&status=all")
    assert page.status_code == 200
    text = page.text
    assert "37.50" in text  # the totals
    assert "All 6 rows" not in text
    assert "Zoë" not in text
    assert 'data-column="supporter_email"' not in text
    assert "seeing rows needs the finance role" in text
    assert "Downloads need the finance role" in text


def test_screen_shows_at_most_the_first_rows(signed_in, app) -> None:
    from tests import factories

    with app.app_context():
        owner = factories.supporter()
        for _ in range(60):
            factories.donation(owner, 100)
        commit()
    client, _ = signed_in(Role.FINANCE)
    page = client.get("/staff/reports/ledger")
    assert "The first 50 rows" in page.text
    assert page.text.count('data-column="donation_id"') == 50
    assert "/staff/reports/ledger.csv" in page.text


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_viewer_may_not_download(signed_in, app, name: str) -> None:
    client, _ = signed_in(Role.VIEWER)
    for fmt in ("csv", "xlsx"):
        refused = client.get(f"/staff/reports/{name}.{fmt}")
        assert refused.status_code == 403
        assert "Content-Disposition" not in refused.headers  # no file, not even an empty one
        assert refused.mimetype == "text/html"
    assert audit_entries(app) == []


def test_ledger_csv_download(signed_in, seeded, app) -> None:
    client, staff = signed_in(Role.FINANCE)
    answer = client.get(f"/staff/reports/ledger.csv?{MARCH}&currency=usd&status=all")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/csv; charset=utf-8")
    assert answer.headers["Content-Disposition"] == (
        'attachment; filename="ledger_2026-03-01_to_2026-03-31.csv"'
    )
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_data()
    assert b"\r\n" in body
    table = read_csv(body)
    assert table[0][:5] == [
        "donation_id",
        "date_time",
        "supporter_email",
        "supporter_name",
        "amount",
    ]
    assert [row[0] for row in table[1:]] == [str(seeded[k]) for k in ("d5", "d2", "d1", "d6")]
    d1 = table[3]
    assert d1[1:11] == [
        "2026-03-15 06:00:00", "one@example.org", "Zoë O'Brien, Jr.",
        "10.50", "0.50", "0.59", "2.00", "7.91", "0.09", "USD",
    ]  # fmt: skip
    assert d1[-5:] == ["pi_1", "ch_1", "", "po_1", "partially_refunded"]
    assert table[2][3] == "'" + PAYLOADS["two@example.org"]
    assert table[1][3] == "'@SUM(A1:A9)"

    started, finished = audit_entries(app)
    assert started.action == "export.started"
    assert started.staff_id == staff.id
    assert started.details["filters"] == {
        "from": "2026-03-01", "to": "2026-03-31", "currency": "USD",
    }  # fmt: skip
    assert started.details["time_zone"] == "America/New_York"
    assert finished.action == "export.finished"
    assert finished.details["rows"] == 4
    assert finished.details["started"] == started.id
    assert finished.details["format"] == "csv"


def test_every_payload_is_neutralised_in_the_supporters_csv(signed_in, seeded) -> None:
    client, _ = signed_in(Role.ADMIN)
    table = read_csv(client.get("/staff/reports/supporters.csv").get_data())
    names = {row[1]: row[2] for row in table[1:]}
    for email, payload in PAYLOADS.items():
        assert names[email] == "'" + payload, email
    assert names["one@example.org"] == "Zoë O'Brien, Jr."


def test_plans_csv_neutralises_the_cancellation_reason(signed_in, seeded) -> None:
    client, _ = signed_in(Role.FINANCE)
    table = read_csv(client.get("/staff/reports/plans.csv?status=canceled").get_data())
    assert len(table) == 2
    assert table[1][13] == "'=cmd|' /C calc'!A0"


def test_ledger_xlsx_download_reads_back(signed_in, seeded, app, tmp_path) -> None:
    client, _ = signed_in(Role.FINANCE)
    answer = client.get(f"/staff/reports/ledger.xlsx?{MARCH}")
    assert answer.status_code == 200
    assert answer.mimetype == ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert answer.headers["Content-Disposition"].startswith("attachment; filename=")
    assert answer.headers["Cache-Control"] == "no-store"
    path = tmp_path / "ledger.xlsx"
    path.write_bytes(answer.get_data())
    workbook = openpyxl.load_workbook(path)
    sheet = workbook.worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["donation_id", "date_time", "supporter_email", "supporter_name"]
    data = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    assert len(data) == 6
    by_email = {row[2]: row for row in data}
    for email in ("two@example.org", "five@example.org", "six@example.org"):
        cell = sheet.cell(next(i for i, row in enumerate(data, start=2) if row[2] == email), 4)
        assert cell.data_type == "s"
        assert unescape(cell.value) == PAYLOADS[email]
    d1 = next(row for row in data if row[0] == seeded["d1"])
    assert d1[4:9] == [10.5, 0.5, 0.59, 2, 7.91]
    assert str(d1[1]) == "2026-03-15 06:00:00"
    assert by_email["six@example.org"][10] == "KWD"
    about = {row[0].value: row[1].value for row in workbook["About"].iter_rows()}
    assert about["Filters"] == "from=2026-03-01, to=2026-03-31"
    assert about["Time zone"] == "America/New_York"
    assert audit_entries(app)[-1].details["rows"] == 6


@pytest.mark.parametrize("name", sorted(REPORTS))
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_every_report_downloads(signed_in, seeded, name: str, fmt: str, tmp_path) -> None:
    client, _ = signed_in(Role.FINANCE)
    answer = client.get(f"/staff/reports/{name}.{fmt}")
    assert answer.status_code == 200
    if fmt == "csv":
        table = read_csv(answer.get_data())
        assert table[0] == [c.key for c in REPORTS[name].columns]
        assert len(table) > 1
    else:
        path = tmp_path / "r.xlsx"
        path.write_bytes(answer.get_data())
        sheet = openpyxl.load_workbook(path).worksheets[0]
        assert [c.value for c in sheet[1]] == [c.key for c in REPORTS[name].columns]
        assert sheet.max_row > 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-13-01", "'from' must be a date written YYYY-MM-DD"),
        ("from=01/03/2026", "'from' must be a date written YYYY-MM-DD"),
        ("to=20260301", "'to' must be a date written YYYY-MM-DD"),
        ("from=2026-03-31&to=2026-03-01", "is after"),
        ("from=0001-01-01", "between 2000 and 2999"),
        ("status=paid", "'status' must be one of all, pending"),
        ("currency=EURO", "three-letter ISO code"),
        ("frequency=weekly", "'frequency' must be one of once, monthly, annual"),
        ("method=%3DHYPERLINK()", "payment method name"),
        ("payout=po_1%27%3B--", "Stripe payout id"),
        ("campaign=" + "x" * 101, "at most 100 characters"),
    ],
)
def test_bad_filters_are_refused(signed_in, app, query: str, message: str) -> None:
    client, _ = signed_in(Role.FINANCE)
    for url in (f"/staff/reports/ledger.csv?{query}", f"/staff/reports/ledger?{query}"):
        answer = client.get(url)
        assert answer.status_code == 400, url
        assert "Content-Disposition" not in answer.headers
        assert message in answer.text.replace("&#39;", "'"), answer.text
    assert audit_entries(app) == []


def test_consent_filter_is_checked(signed_in) -> None:
    client, _ = signed_in(Role.FINANCE)
    answer = client.get("/staff/reports/supporters.xlsx?consent=maybe")
    assert answer.status_code == 400
    assert "'consent' must be all, yes or no" in answer.text.replace("&#39;", "'")


def test_an_interrupted_download_is_audited(signed_in, app) -> None:
    with app.app_context():
        fast_ledger(1500)
        commit()
    client, _ = signed_in(Role.FINANCE)
    answer = client.get("/staff/reports/ledger.csv", buffered=False)
    chunks = iter(answer.response)
    assert next(chunks).startswith(b"\xef\xbb\xbfdonation_id,")
    answer.close()
    started, ended = audit_entries(app)
    assert started.action == "export.started"
    assert ended.action == "export.failed"
    assert ended.details["error"] == "the download was interrupted"
    assert ended.details["rows"] < 1500
