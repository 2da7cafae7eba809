"""The donations ledger as CSV and XLSX on PostgreSQL, against the bare COPY.

A fresh PostgreSQL database gets the migrations and then 1,000,000 donations
from one ``INSERT ... SELECT generate_series``. Four exports of the same rows
(the ledger's query, every donation, in date order), each in a process of
its own, one at a time, ``--rounds`` times in alternating order:

* csv baseline: ``COPY (that query) TO STDOUT WITH (FORMAT csv, HEADER)``
  read through psycopg's ``cursor.copy()`` -- no formatting, no HTTP;
* csv formatted COPY: ``COPY`` of the app's own statement (the cells already
  neutralised, in major units and the reporting zone), read the same way --
  what the database alone takes to write our file, so that ours/this is the
  app's own share (HTTP, CRLF, audit) and this/baseline the formatting's;
* csv ours: ``GET /staff/reports/ledger.csv`` through the app (Flask test
  client, streamed), i.e. COPY with neutralisation, money and time zone
  done in SQL, CRLF records, the audit entries;
* xlsx ours: ``GET /staff/reports/ledger.xlsx``: the worksheet rows written
  by PostgreSQL, zipped as they arrive.

The targets (issue: "exports at the speed of the database"): csv ours within
1.3x of the COPY, xlsx ours within 3x of csv ours, and memory flat.

Each process reports its wall time from the request (or query) to the last
byte, and its memory: the RSS when the export starts and the high-water mark
during it (reset at the start through ``/proc/self/clear_refs``, so the
app's start-up -- argon2 hashes a dummy password with 64 MiB when the staff
module is imported -- does not count as the export's), plus the whole
process's peak from ``wait4``. The app process holds ~100 MB before it
exports anything; "added" is what the export adds on top, which is what must
stay flat.

    python -m bench exports [--rows N] [--rounds R] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.harness import (
    ROOT,
    Outcome,
    app_environment,
    flask,
    machine_load,
    postgres_database,
    write_results,
)

# The generated donations run from this day, DAY_ROWS a day.
FIRST_DAY = date(2025, 1, 1)
DAY_ROWS = 2500
CSV_TARGET, XLSX_TARGET = 1.3, 3.0  # csv ours/COPY, xlsx ours/csv ours
CSV_MB, XLSX_MB = 100, 150


# One statement per entry; the donations are the single INSERT ... SELECT generate_series.
# Parameters are psycopg's, so a literal % is written %%.
GENERATE = [
    """
    INSERT INTO supporters (email, email_key, name, country, locale, newsletter_opt_in,
                            stripe_customer_id, created_at, updated_at)
    SELECT 'reader' || i || '@example.org', 'reader' || i || '@example.org',
           CASE WHEN i %% 50 = 0 THEN '=HYPERLINK("http://example.org","x")'
                WHEN i %% 7 = 0 THEN 'Müller, Jörg "Jo"'
                ELSE 'Reader ' || i END,
           'DE', 'en', i %% 2 = 0, 'cus_bench_' || i, %(start)s, %(start)s
    FROM generate_series(1, 20000) AS i
    """,
    """
    INSERT INTO payouts (stripe_payout_id, amount, currency, status, automatic, arrival_date,
                         stripe_created_at, created_at, updated_at)
    SELECT 'po_bench_' || i, 100000, 'EUR', 'paid', true, %(start)s + i * interval '1 day',
           %(start)s, %(start)s, %(start)s
    FROM generate_series(1, 400) AS i
    """,
    """
    INSERT INTO donations (attempt_key, public_token, supporter_id, amount, fee_cover_amount,
                           currency, frequency, status, method, fee, net, refunded_amount,
                           payout_id, campaign, locale, stripe_payment_intent_id,
                           stripe_charge_id, stripe_invoice_id, created_at, updated_at,
                           succeeded_at)
    SELECT 'bench-' || i, 'bench-' || i,
           (SELECT min(id) FROM supporters) + i %% 20000,
           100 + (i::bigint * 7919) %% 100000,
           CASE WHEN i %% 4 = 0 THEN 50 ELSE 0 END,
           CASE i %% 10 WHEN 0 THEN 'USD' WHEN 1 THEN 'JPY' WHEN 2 THEN 'GBP' ELSE 'EUR' END,
           CASE i %% 3 WHEN 0 THEN 'once' WHEN 1 THEN 'monthly' ELSE 'annual' END,
           CASE WHEN i %% 25 = 0 THEN 'failed' ELSE 'succeeded' END,
           CASE WHEN i %% 5 = 0 THEN 'sepa_debit' ELSE 'card' END,
           CASE WHEN i %% 9 = 0 THEN NULL ELSE 30 + i %% 300 END,
           NULL,
           CASE WHEN i %% 40 = 0 THEN 100 ELSE 0 END,
           CASE WHEN i %% 25 = 0 THEN NULL ELSE (SELECT min(id) FROM payouts) + i %% 400 END,
           CASE WHEN i %% 3 = 0 THEN 'spring-appeal' WHEN i %% 101 = 0 THEN '+plus' END,
           'en',
           'pi_bench_' || i,
           'ch_bench_' || i,
           CASE WHEN i %% 3 <> 0 THEN 'in_bench_' || i END,
           %(start)s + i * %(step)s * interval '1 second',
           %(start)s + i * %(step)s * interval '1 second',
           CASE WHEN i %% 25 = 0 THEN NULL
                ELSE %(start)s + i * %(step)s * interval '1 second' END
    FROM generate_series(1, %(rows)s) AS i
    """,
]


def prepare(env: dict[str, str], rows: int) -> float:
    """Migrate, then generate the rows; the seconds it took."""
    import psycopg

    began = time.perf_counter()
    flask(env, "db", "upgrade")
    start = datetime.combine(FIRST_DAY, datetime.min.time(), tzinfo=UTC)
    params = {"start": start, "rows": rows, "step": 86400 / DAY_ROWS}
    with psycopg.connect(env["BENCH_PSYCOPG_URL"], autocommit=True) as conn:
        for statement in GENERATE:
            conn.execute(statement, params)
        conn.execute("ANALYZE")
    return time.perf_counter() - began


def _literal_sql(env: dict[str, str], statement: Any) -> str:
    import psycopg
    from sqlalchemy.dialects import postgresql

    compiled = statement.compile(
        dialect=postgresql.psycopg.dialect(), compile_kwargs={"render_postcompile": True}
    )
    with psycopg.connect(env["BENCH_PSYCOPG_URL"]) as conn:
        return psycopg.ClientCursor(conn).mogrify(str(compiled), compiled.params)


def formatted_sql(env: dict[str, str], filters: Any) -> str:
    """The statement the app gives COPY for the CSV, as plain SQL."""
    from donations.staff.reports.ledger import ledger_copy_statement

    return _literal_sql(env, ledger_copy_statement(filters, ZoneInfo(env["REPORTING_TIME_ZONE"])))


def baseline_sql(env: dict[str, str], filters: Any) -> str:
    """The ledger's own query (stored values, same rows, same order), as plain SQL.

    With ``net`` added, so the bare XLSX loop writes as many cells per row as ours.
    """
    from donations.staff.reports.ledger import FEE, GROSS, ledger_statement
    from donations.supporters.models import Donation

    zone = ZoneInfo(env["REPORTING_TIME_ZONE"])
    statement = ledger_statement(filters, zone).add_columns(
        (GROSS - FEE - Donation.refunded_amount).label("net")
    )
    return _literal_sql(env, statement)


# -- the measured processes ---------------------------------------------------------


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


_STARTUP_PEAK: list[float] = []


def _reset_peak() -> None:
    """Restart the RSS high-water mark here (proc(5): clear_refs, Linux >= 4.0).

    The mark so far (start-up: imports, the app, argon2) is kept for the report.
    """
    _STARTUP_PEAK.append(_status_mb("VmHWM"))
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def _finish(began: float, size: int, rows: int, start_mb: float) -> dict[str, float]:
    peak = _status_mb("VmHWM")
    return {
        "seconds": time.perf_counter() - began,
        "bytes": size,
        "rows": rows,
        "start_mb": start_mb,
        "peak_mb": peak,
        # VmHWM belongs to the process image since exec(); getrusage's
        # ru_maxrss for children would also count the parent it was forked from.
        "process_peak_mb": max([peak, *_STARTUP_PEAK]),
    }


def child_copy(sql: str) -> dict[str, float]:
    import psycopg

    with psycopg.connect(os.environ["BENCH_PSYCOPG_URL"]) as conn, conn.cursor() as cursor:
        _reset_peak()
        start_mb, began, size, rows = _status_mb("VmRSS"), time.perf_counter(), 0, 0
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for data in copy:
                size += len(data)
                rows += 1
        return _finish(began, size, rows - 1, start_mb)


def child_ours(url: str) -> dict[str, float]:
    import pyotp

    from donations import create_app
    from donations.db import commit, db, utcnow
    from donations.staff.auth import SESSION_KEY
    from donations.staff.models import Role, StaffUser
    from donations.staff.services import create_staff, start_session

    app = create_app(dict(os.environ))
    with app.app_context():
        address = f"bench-{uuid.uuid4().hex[:8]}@newsroom.org"
        staff = create_staff(address, Role.FINANCE, secrets.token_urlsafe(24))
        staff.totp_secret = pyotp.random_base32()
        staff.totp_enrolled_at = utcnow()
        commit()
        staff_id = staff.id
    with app.test_request_context():
        token = start_session(db.session.get(StaffUser, staff_id))  # type: ignore[arg-type]
        commit()
    client = app.test_client()
    with client.session_transaction() as session:
        session[SESSION_KEY] = token
    # Warm up on an empty day: imports, the connection pool, templates.
    fmt = url.rsplit(".", 1)[1].split("?")[0]
    client.get(f"/staff/reports/ledger.{fmt}?from=2000-01-01&to=2000-01-01").get_data()

    _reset_peak()
    start_mb, began, size = _status_mb("VmRSS"), time.perf_counter(), 0
    answer = client.get(url, buffered=False)
    if answer.status_code != 200:
        raise SystemExit(f"bench: {url} answered {answer.status}")
    for chunk in answer.response:
        size += len(chunk)
    answer.close()
    result = _finish(began, size, 0, start_mb)
    from sqlalchemy import select

    from donations.staff.models import AuditEntry

    with app.app_context():
        entry = db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "export.finished")
            .order_by(AuditEntry.id.desc())
        ).first()
        result["rows"] = int(entry.details["rows"]) if entry is not None else -1
    return result


def run_child(kind: str, argument: str, env: dict[str, str]) -> dict[str, float]:
    """One export in a new process."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "exports", "--child", kind, argument],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"bench: the {kind} export failed ({done.returncode})")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


CHILDREN = {"copy": child_copy, "ours": child_ours}


# -- the run ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="donations to generate")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the four exports")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "ARGUMENT"), help=argparse.SUPPRESS)


def _line(name: str, result: dict[str, float]) -> str:
    added = result["peak_mb"] - result["start_mb"]
    return (
        f"{name:<14}{result['seconds']:>9.2f}{result['rows']:>11,}{result['bytes'] / 2**20:>9.1f}"
        f"{result['start_mb']:>9.1f}{result['peak_mb']:>9.1f}{added:>8.1f}"
        f"{result['process_peak_mb']:>10.1f}"
    )


def _verdict(ratio: float, target: float, added: float, limit: float) -> str:
    met = ratio <= target and added < limit
    return "met" if met else "NOT met"


def run(args: argparse.Namespace) -> Outcome:
    if args.child:
        kind, argument = args.child
        print(json.dumps(CHILDREN[kind](argument)))
        return Outcome(0)
    from donations.staff.reports.filters import ReportFilters

    print(
        f"bench exports: {args.rows:,} donations on PostgreSQL, one process per export; "
        f"load average {machine_load()}"
    )
    with tempfile.TemporaryDirectory() as workdir, postgres_database(args.keep) as url:
        env = app_environment(Path(workdir), url, REPORTING_TIME_ZONE="Europe/Berlin")
        env["BENCH_PSYCOPG_URL"] = url
        print(f"  generated in {prepare(env, args.rows):.1f} s")

        every = ReportFilters()
        results: dict[str, list[dict[str, float]]] = {}
        legs = [("csv baseline", "copy", baseline_sql(env, every)),
                ("csv formatted", "copy", formatted_sql(env, every)),
                ("csv ours", "ours", "/staff/reports/ledger.csv"),
                ("xlsx ours", "ours", "/staff/reports/ledger.xlsx")]  # fmt: skip
        for round_ in range(args.rounds):
            for name, kind, argument in legs if round_ % 2 == 0 else legs[::-1]:
                results.setdefault(name, []).append(run_child(kind, argument, env))
                print(f"  {name}: {results[name][-1]['seconds']:.2f} s")

    best = {name: min(runs, key=lambda r: r["seconds"]) for name, runs in results.items()}
    print()
    print(f"{'export':<14}{'seconds':>9}{'rows':>11}{'MiB out':>9}{'RSS at':>9}"
          f"{'peak':>9}{'added':>8}{'process':>10}")  # fmt: skip
    print(f"{'':<14}{'':>9}{'':>11}{'':>9}{'start':>9}{'':>9}{'':>8}{'peak':>10}")
    for name, result in best.items():
        print(_line(name, result))
    csv_ratio = best["csv ours"]["seconds"] / best["csv baseline"]["seconds"]
    formatting = best["csv formatted"]["seconds"] / best["csv baseline"]["seconds"]
    app_share = best["csv ours"]["seconds"] / best["csv formatted"]["seconds"]
    xlsx_ratio = best["xlsx ours"]["seconds"] / best["csv ours"]["seconds"]
    csv_added = best["csv ours"]["peak_mb"] - best["csv ours"]["start_mb"]
    xlsx_added = best["xlsx ours"]["peak_mb"] - best["xlsx ours"]["start_mb"]
    print()
    print(
        f"csv  ours/baseline time: {csv_ratio:.2f}x (target <= {CSV_TARGET}x); "
        f"memory added {csv_added:.1f} MiB (target < {CSV_MB}) -- "
        f"{_verdict(csv_ratio, CSV_TARGET, csv_added, CSV_MB)}"
    )
    print(
        f"  of which: formatted COPY/baseline {formatting:.2f}x (the cells made in SQL), "
        f"ours/formatted COPY {app_share:.2f}x (the app around the COPY)"
    )
    print(
        f"xlsx ours/csv ours time: {xlsx_ratio:.2f}x (target <= {XLSX_TARGET}x); "
        f"memory added {xlsx_added:.1f} MiB (target < {XLSX_MB}) -- "
        f"{_verdict(xlsx_ratio, XLSX_TARGET, xlsx_added, XLSX_MB)}"
    )
    print(
        "  'RSS at start' is the process when the export begins (the app alone holds "
        "~100 MiB);\n  'added' = peak - start, the export's own memory; 'process peak' "
        "includes start-up."
    )
    rows_match = (
        best["csv ours"]["rows"]
        == best["csv baseline"]["rows"]
        == best["csv formatted"]["rows"]
        == best["xlsx ours"]["rows"]
    )
    outcome = Outcome(
        0,
        {
            "csv ours/COPY": (csv_ratio, f"<= {CSV_TARGET:g}"),
            "xlsx ours/csv ours": (xlsx_ratio, f"<= {XLSX_TARGET:g}"),
        },
    )
    if not rows_match:
        print("INVALID RUN: the exports did not have the same number of rows")
        outcome.status = 2
        return outcome
    write_results(
        "exports",
        {
            "rows": args.rows,
            "csv_ratio": csv_ratio,
            "csv_formatting_ratio": formatting,
            "csv_app_ratio": app_share,
            "xlsx_ratio": xlsx_ratio,
            "runs": results,
        },
    )
    met = csv_ratio <= CSV_TARGET and xlsx_ratio <= XLSX_TARGET
    outcome.status = 0 if met and csv_added < CSV_MB and xlsx_added < XLSX_MB else 1
    return outcome
