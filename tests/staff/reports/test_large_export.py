"""An export of 120,000 rows, run in a fresh process with its peak memory measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from donations.db import commit, db
from donations.staff.models import AuditEntry
from tests.conftest import make_env
from tests.staff.reports.seed import fast_ledger

ROWS = 120_000
ROOT = Path(__file__).resolve().parents[3]
# What the export may add to the process at its peak: streaming adds about
# 8 MB whatever the row count (measured at 80,000 and 120,000 rows). Holding
# the CSV (about 19 MB here) or the rows (a few hundred MB as Python objects)
# would blow through it.
MAX_GROWTH_MB = 15


@pytest.fixture
def big_ledger(app: Flask) -> None:
    with app.app_context():
        fast_ledger(ROWS)
        commit()


def measure(env: dict[str, str], mode: str, url: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.staff.reports.measure_export", mode, url],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def finished_rows(app: Flask) -> int:
    with app.app_context():
        entry = db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "export.finished")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry is not None
        return int(entry.details["rows"])


@pytest.mark.sweep  # the export runs in another process
def test_a_large_export_streams_in_flat_memory(
    app, big_ledger, database_url, simulator, app_port, tmp_path
) -> None:
    env = make_env(database_url, simulator, app_port, tmp_path)
    # The download as a browser gets it: COPY on PostgreSQL, Python rows on SQLite.
    http = measure(env, "http", "/staff/reports/ledger.csv")
    assert finished_rows(app) == ROWS
    assert http["bytes"] > 18 * 2**20  # more than the growth allowed
    assert http["peak_mb"] - http["before_mb"] < MAX_GROWTH_MB, http
    # The Python rows (a server-side cursor on PostgreSQL) as CSV.
    rows = measure(env, "rows", "/staff/reports/ledger.csv")
    assert rows["rows"] == ROWS
    assert rows["bytes"] == http["bytes"]
    assert rows["peak_mb"] - rows["before_mb"] < MAX_GROWTH_MB, rows
    # XLSX goes through XlsxWriter's constant_memory mode and a temporary file.
    # Twenty days of the ledger (about 47,000 rows) keep the test short.
    xlsx = measure(env, "http", "/staff/reports/ledger.xlsx?from=2026-03-01&to=2026-03-20")
    assert finished_rows(app) > 40_000
    assert xlsx["peak_mb"] - xlsx["before_mb"] < MAX_GROWTH_MB, xlsx
