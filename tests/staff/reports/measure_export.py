"""Run one export in a fresh process and print its memory use as JSON.

``python -m tests.staff.reports.measure_export MODE URL`` with the app's settings in
the environment. MODE is ``http`` (download URL through the test client, as a
browser would) or ``rows`` (the report's Python rows written as CSV, the path
PostgreSQL's COPY otherwise takes over for the ledger). The peak is the
process's RSS high-water mark during the export, so it counts C allocations
(libpq, SQLite, XlsxWriter) as well as Python's.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pyotp

from donations import create_app
from donations.db import commit, db, utcnow
from donations.staff.models import Role
from donations.staff.reports.catalogue import REPORTS
from donations.staff.reports.exporters import Progress, csv_chunks
from donations.staff.reports.filters import parse_filters
from donations.staff.services import create_staff
from tests.staff.conftest import sign_in


def status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise LookupError(field)


def reset_peak() -> None:
    """Start the RSS high-water mark again from here (Linux >= 4.0, proc(5) clear_refs).

    Importing the staff code hashes a dummy password with argon2, which
    takes 64 MiB for a moment: that peak is not the export's.
    """
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def main(mode: str, url: str) -> dict[str, float]:
    app = create_app(dict(os.environ), TESTING=True)
    with app.app_context():
        staff = create_staff(
            f"measure-{uuid.uuid4().hex[:8]}@newsroom.org",
            Role.FINANCE,
            "measure-export " + uuid.uuid4().hex,  # strong enough for the password check
        )
        staff.totp_secret = pyotp.random_base32()
        staff.totp_enrolled_at = utcnow()
        commit()
        db.session.refresh(staff)
        db.session.expunge(staff)
    client = app.test_client()
    sign_in(app, client, staff)
    # Warm up: every import, the connection pool, a template.
    client.get("/staff/reports/ledger.csv?from=2000-01-01&to=2000-01-01").get_data()
    client.get("/staff/reports/ledger.xlsx?from=2000-01-01&to=2000-01-01").get_data()
    reset_peak()
    before = status_mb("VmRSS")
    size = rows = 0
    if mode == "http":
        answer = client.get(url, buffered=False)
        assert answer.status_code == 200, answer.status
        for chunk in answer.response:
            size += len(chunk)
        answer.close()
    else:
        parts = urlsplit(url)
        report = REPORTS[parts.path.rsplit("/", 1)[1].split(".")[0]]
        args = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with app.test_request_context():
            filters = parse_filters(args, report.filters, report.statuses)
            zone = ZoneInfo(app.config["SETTINGS"].reporting_time_zone)
            progress = Progress()
            for chunk in csv_chunks(report.columns, report.rows(filters, zone), progress):
                size += len(chunk)
            rows = progress.rows
    return {"bytes": size, "rows": rows, "before_mb": before, "peak_mb": status_mb("VmHWM")}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
