"""Reports prepared in the background: the same file as the download, its progress, its owner."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import redis
from flask import Flask
from sqlalchemy import select

from donations.config import ConfigError, load_settings
from donations.db import commit, db, utcnow
from donations.staff.models import AuditEntry, ExportStatus, ReportExport, Role, StaffUser
from donations.staff.reports.catalogue import REPORTS
from donations.staff.reports.exports import MAX_UNFINISHED, expire_exports, request_export
from donations.staff.reports.filters import ReportFilters
from tests import factories
from tests.conftest import BACKEND
from tests.harness import ROOT
from tests.reminders.processes import app_env
from tests.reminders.test_celery import REDIS_URL, process
from tests.staff.conftest import csrf_token, forget_cached_csrf
from tests.staff.reports.seed import fast_ledger, seed
from tests.test_config import GOOD

# Preparing a file records its progress from a connection of its own (and a
# worker is another process): what it updates must be committed.
pytestmark = pytest.mark.sweep

MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.fixture
def export_dir(app: Flask, tmp_path: Path) -> Iterator[Path]:
    settings = app.config["SETTINGS"]
    folder = tmp_path / "exports"
    app.config["SETTINGS"] = dataclasses.replace(settings, export_dir=folder)
    yield folder
    app.config["SETTINGS"] = settings


@pytest.fixture
def seeded(app: Flask, new_york: str) -> None:
    with app.app_context():
        seed()
        commit()


def exports(app: Flask) -> list[ReportExport]:
    with app.app_context():
        rows = db.session.scalars(select(ReportExport).order_by(ReportExport.id)).all()
        db.session.expunge_all()
        return list(rows)


def ask(client, fmt: str, **params: str):
    forget_cached_csrf()
    page = client.get("/staff/reports/ledger", query_string=MARCH)
    form = {"csrf_token": csrf_token(page.text), **params}
    return client.post(f"/staff/reports/ledger.{fmt}/prepare", data=form)


def cells(body: bytes) -> list[tuple[object, ...]]:
    sheet = openpyxl.load_workbook(io.BytesIO(body)).worksheets[0]
    return list(sheet.iter_rows(values_only=True))


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_prepared_file_is_the_download(signed_in, seeded, export_dir, app, fmt) -> None:
    client, _ = signed_in(Role.FINANCE)
    answer = ask(client, fmt, **MARCH)
    assert answer.status_code == 303
    page_url = answer.headers["Location"]
    assert re.fullmatch(r"/staff/reports/exports/\d+", page_url)
    (export,) = exports(app)
    assert export.status is ExportStatus.READY  # inline: prepared before the redirect
    assert export.params == MARCH
    page = client.get(page_url)
    assert page.status_code == 200
    assert f"Ready: {export.rows_written} rows" in page.text
    assert 'http-equiv="refresh"' not in page.text  # done: the page stops refreshing
    file = client.get(f"{page_url}/file")
    body = file.get_data()
    file.close()
    assert file.status_code == 200
    assert file.headers["Cache-Control"] == "no-store"
    assert export.file_name in file.headers["Content-Disposition"]
    direct = client.get(f"/staff/reports/ledger.{fmt}", query_string=MARCH).get_data()
    if fmt == "csv":
        assert body == direct
        assert export.rows_written == direct.count(b"\r\n") - 1
    else:
        assert cells(body) == cells(direct)
        assert export.rows_written == len(cells(direct)) - 1
    assert export.rows_written > 0
    assert export.size == len(body)
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.target == f"export:{export.id}")
            .order_by(AuditEntry.id)
        ).all()
    assert actions == ["export.requested", "export.finished", "export.downloaded"]


def test_a_failed_export_says_why_and_leaves_no_file(
    signed_in, seeded, export_dir, app, monkeypatch
) -> None:
    def broken(*args: object) -> Iterator[bytes]:
        yield b"donation_id\r\n"
        raise RuntimeError("the disk is full")

    monkeypatch.setattr("donations.staff.reports.exports.export_chunks", broken)
    client, _ = signed_in(Role.FINANCE)
    assert ask(client, "csv", **MARCH).status_code == 303
    (export,) = exports(app)
    assert export.status is ExportStatus.FAILED
    assert export.error == "RuntimeError"
    assert export.finished_at is not None
    assert list(export_dir.iterdir()) == []  # not even the partial file
    with app.app_context():
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "export.failed")
        ).one()
    assert entry.target == f"export:{export.id}"
    assert entry.details == {
        "rows": 0,
        "error": "RuntimeError",
        "report": "ledger",
        "format": "csv",
        "filters": MARCH,
    }


def test_only_the_staff_member_who_asked_sees_the_file(signed_in, seeded, export_dir, app) -> None:
    mine, _ = signed_in(Role.FINANCE)
    url = ask(mine, "csv", **MARCH).headers["Location"]
    forget_cached_csrf()
    other, _ = signed_in(Role.ADMIN)
    assert other.get(url).status_code == 404
    assert other.get(f"{url}/file").status_code == 404
    viewer, _ = signed_in(Role.VIEWER)
    assert viewer.get(url).status_code == 403
    assert viewer.post("/staff/reports/ledger.csv/prepare", data=MARCH).status_code in (400, 403)
    assert len(exports(app)) == 1


def test_bad_filters_and_a_missing_token_change_nothing(signed_in, seeded, export_dir, app) -> None:
    client, _ = signed_in(Role.FINANCE)
    bad = ask(client, "csv", **{"from": "2026-13-01", "to": "2026-03-31"})
    assert bad.status_code == 400
    assert "cannot be used" in bad.text
    assert ask(client, "csv", **{"from": "2026-03-01", "to": "x\x00"}).status_code == 400
    no_token = client.post("/staff/reports/ledger.xlsx/prepare", data=MARCH)
    assert no_token.status_code == 400
    assert client.post("/staff/reports/nosuch.csv/prepare", data=MARCH).status_code == 404
    assert exports(app) == []
    assert not export_dir.exists()


def test_at_most_three_exports_wait_at_once(signed_in, seeded, export_dir, app) -> None:
    client, staff = signed_in(Role.FINANCE)
    with app.app_context():
        for _ in range(MAX_UNFINISHED):
            factories.report_export(staff.id)
        commit()
    refused = ask(client, "csv", **MARCH)
    assert refused.status_code == 429
    assert "wait for one to finish" in refused.text
    assert len(exports(app)) == MAX_UNFINISHED


def test_old_files_are_deleted(signed_in, seeded, export_dir, app) -> None:
    client, _ = signed_in(Role.FINANCE)
    url = ask(client, "csv", **MARCH).headers["Location"]
    (export,) = exports(app)
    path = export_dir / f"export-{export.id}.csv"
    assert path.exists()
    with app.app_context():
        assert expire_exports() == 0  # young: kept
        row = db.session.get(ReportExport, export.id)
        row.finished_at = utcnow() - timedelta(hours=25)
        commit()
        assert expire_exports() == 1
    assert not path.exists()
    assert "was deleted after 24 hours" in client.get(url).text
    assert client.get(f"{url}/file").status_code == 404


@pytest.mark.skipif(
    BACKEND != "postgresql", reason="progress is written while the stream runs on PostgreSQL"
)
def test_a_worker_shows_progress_then_the_file(app, ctx, export_dir, make_staff, tmp_path) -> None:
    fast_ledger(100_000)
    staff_id = make_staff(Role.FINANCE, "progress@newsroom.org").id
    with app.test_request_context():
        staff = db.session.get(StaffUser, staff_id)
        export = request_export(REPORTS["ledger"], "xlsx", ReportFilters(), ZoneInfo("UTC"), staff)
        commit()
        export_id = export.id
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    env = app_env(app, REDIS_URL=REDIS_URL, EXPORT_DIR=str(export_dir))
    seen: list[tuple[ExportStatus, int, int | None]] = []
    try:
        with process(
            [
                "worker",
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                "exports-test@%h",
            ],
            env,
            tmp_path / "worker.log",
        ):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "--app",
                    "wsgi:celery",
                    "call",
                    "reports.prepare_export",
                    "--args",
                    f"[{export_id}]",
                ],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                db.session.expire_all()
                row = db.session.get(ReportExport, export_id)
                seen.append((row.status, row.rows_written, row.rows_expected))
                db.session.rollback()
                if row.status in (ExportStatus.READY, ExportStatus.FAILED):
                    break
                time.sleep(0.05)
    finally:
        broker.flushdb()
        broker.close()
    log = (tmp_path / "worker.log").read_text()
    assert seen[-1] == (ExportStatus.READY, 100_000, 100_000), log[-3000:]
    partial = [
        rows for status, rows, _ in seen if status is ExportStatus.RUNNING and 0 < rows < 100_000
    ]
    assert partial, seen[-5:]  # it was seen part-way
    assert partial == sorted(partial)  # and only ever went forward
    workbook = openpyxl.load_workbook(export_dir / f"export-{export_id}.xlsx", read_only=True)
    assert sum(1 for _ in workbook.worksheets[0].iter_rows(values_only=True)) == 100_001
    workbook.close()
    assert (
        os.path.getsize(export_dir / f"export-{export_id}.xlsx")
        == db.session.get(ReportExport, export_id).size
    )


@pytest.mark.parametrize(("raw", "hours"), [("", 24), ("1", 1), (" 720 ", 720)])
def test_retention_setting(raw: str, hours: int, tmp_path: Path) -> None:
    env = {**GOOD, "EXPORT_RETENTION_HOURS": raw, "EXPORT_DIR": str(tmp_path)}
    settings = load_settings(env)
    assert settings.export_retention_hours == hours
    assert settings.export_dir == tmp_path


@pytest.mark.parametrize("raw", ["0", "721", "1.5", "-3", "１", "a day"])
def test_bad_retention_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="EXPORT_RETENTION_HOURS"):
        load_settings({**GOOD, "EXPORT_RETENTION_HOURS": raw})
