"""A report's file: streamed as it is downloaded, or prepared in the background.

:func:`export_chunks` is the file itself, in chunks, whichever way it
leaves. A download streams it straight to the browser, which shows the
bytes arriving but not how many rows are left; for a long selection (a
year of the ledger, a million rows) the report screen also offers to
*prepare* the file: :func:`request_export` records the request and queues
:func:`prepare_export`, which a worker runs (in the request itself with
the embedded default) writing the file under ``EXPORT_DIR`` and counting
its rows as it goes. The page of the export shows how far it is, and the
download once it is ready; only the staff member who asked may fetch it.
Files are deleted after ``EXPORT_RETENTION_HOURS`` (:func:`expire_exports`).

Progress is written from a connection of its own, every second, so the
reading transaction is never committed under the stream; on SQLite (the
embedded default, where the export runs inside the request and nobody is
looking) a second writer would wait for the reader, so only the end is
recorded there.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select, update

from donations.db import commit, db, utcnow
from donations.staff.models import ExportStatus, ReportExport, StaffUser
from donations.staff.reports.catalogue import REPORTS, Report
from donations.staff.reports.exporters import (
    Progress,
    copy_csv_chunks,
    copy_xlsx_chunks,
    csv_chunks,
    xlsx_chunks,
)
from donations.staff.reports.filters import ReportFilters, parse_filters
from donations.staff.services import audit
from donations.status import InvalidTransition, change_status

log = logging.getLogger(__name__)

# A staff member's exports waiting or running at once; more is refused.
MAX_UNFINISHED = 3
# How often a running export writes its row count for the reports screen: one
# small UPDATE, often enough that even a short export is seen moving.
PROGRESS_EVERY_SECONDS = 0.2


class ExportRefused(Exception):
    """The export cannot be queued; the message says why."""


def export_chunks(
    report: Report, fmt: str, filters: ReportFilters, zone: ZoneInfo, progress: Progress
) -> Iterator[bytes]:
    """The file of ``report`` in ``fmt``, in chunks, counting its rows in ``progress``.

    On PostgreSQL the ledger's rows come from COPY (CSV cells, or worksheet
    rows for XLSX); otherwise from the report's Python rows. Everything --
    the connection included -- starts here, so a streamed response (whose
    request context is restored by ``stream_with_context``) gets a fresh session.
    """
    connection = db.session.connection()
    postgresql = connection.dialect.name == "postgresql"
    if fmt == "xlsx":
        notes = {
            "Report": report.title,
            "Filters": ", ".join(f"{k}={v}" for k, v in filters.params().items()) or "none",
            "Time zone": zone.key,
            "Generated": utcnow().strftime("%Y-%m-%d %H:%M:%S UTC"),
            **{f"Note {i}": note for i, note in enumerate(report.notes, start=1)},
        }
        if report.xlsx_statement is not None and postgresql:
            statement = report.xlsx_statement(filters, zone)
            yield from copy_xlsx_chunks(
                connection, statement, report.columns, progress, report.title, notes
            )
        else:
            rows = report.rows(filters, zone)
            yield from xlsx_chunks(report.columns, rows, progress, report.title, notes)
    elif report.copy_statement is not None and postgresql:
        statement = report.copy_statement(filters, zone)
        yield from copy_csv_chunks(connection, statement, report.columns, progress)
    else:
        yield from csv_chunks(report.columns, report.rows(filters, zone), progress)


def file_name(report: Report, filters: ReportFilters, fmt: str) -> str:
    start = filters.start.isoformat() if filters.start else "start"
    end = (filters.end or utcnow().date()).isoformat()
    return f"{report.name}_{start}_to_{end}.{fmt}"


def export_path(export: ReportExport) -> Path:
    return Path(current_app.config["SETTINGS"].export_dir) / f"export-{export.id}.{export.format}"


def request_export(
    report: Report, fmt: str, filters: ReportFilters, zone: ZoneInfo, staff: StaffUser
) -> ReportExport:
    """Record the request; the caller queues staff.tasks.prepare_export_task and commits."""
    unfinished = db.session.scalar(
        select(func.count()).where(
            ReportExport.staff_id == staff.id,
            ReportExport.status.in_([ExportStatus.QUEUED, ExportStatus.RUNNING]),
        )
    )
    if (unfinished or 0) >= MAX_UNFINISHED:
        raise ExportRefused(
            f"You already have {MAX_UNFINISHED} exports being prepared: "
            "wait for one to finish, then ask again."
        )
    export = ReportExport(
        staff_id=staff.id,
        report=report.name,
        format=fmt,
        params=filters.params(),
        time_zone=zone.key,
        file_name=file_name(report, filters, fmt),
    )
    db.session.add(export)
    db.session.flush()
    audit(
        "export.requested",
        staff=staff,
        target=f"export:{export.id}",
        report=report.name,
        format=fmt,
        filters=export.params,
        time_zone=zone.key,
    )
    return export


def _claim(export_id: int) -> ReportExport | None:
    """Mark a queued export running; None if it is not queued (a redelivered task)."""
    export = db.session.get(ReportExport, export_id)
    if export is None or export.status is not ExportStatus.QUEUED:
        return None
    try:
        claimed = change_status(export, ExportStatus.RUNNING, started_at=utcnow())
    except InvalidTransition:  # another worker took it and finished meanwhile
        claimed = False
    commit()
    return export if claimed else None


def prepare_export(export_id: int) -> ExportStatus | None:
    """Write the export's file; its final status (None if it was not waiting)."""
    export = _claim(export_id)
    if export is None:
        return None
    report = REPORTS[export.report]
    zone = ZoneInfo(export.time_zone)
    filters = parse_filters(export.params, report.filters, report.statuses)
    progress = Progress()
    path = export_path(export)
    partial = path.with_suffix(path.suffix + ".partial")
    details: dict[str, Any] = {
        "report": export.report,
        "format": export.format,
        "filters": export.params,
    }
    staff = db.session.get(StaffUser, export.staff_id)
    try:
        expected = _count(report, filters, zone)
        _set(export_id, rows_expected=expected)
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as out:
            _write(
                export_id,
                export_chunks(report, export.format, filters, zone, progress),
                out,
                progress,
            )
            out.flush()
            os.fsync(out.fileno())
        partial.replace(path)
    except Exception as exc:
        log.exception("export %s failed after %d rows", export_id, progress.rows)
        db.session.rollback()
        partial.unlink(missing_ok=True)
        error = type(exc).__name__
        return _finish(
            export,
            ExportStatus.FAILED,
            progress.rows,
            staff,
            {"error": error},
            {"error": error, **details},
        )
    db.session.rollback()  # end the reading transaction
    return _finish(
        export,
        ExportStatus.READY,
        progress.rows,
        staff,
        {"size": path.stat().st_size},
        {"background": True, **details},
    )


def _finish(
    export: ReportExport,
    outcome: ExportStatus,
    rows: int,
    staff: StaffUser | None,
    values: dict[str, Any],
    noted: dict[str, Any],
) -> ExportStatus:
    """Record how the export ended (``values`` on the row, ``noted`` in its audit entry); commit."""
    change_status(export, outcome, rows_written=rows, **values, finished_at=utcnow())
    audit(
        "export.failed" if outcome is ExportStatus.FAILED else "export.finished",
        staff=staff,
        target=f"export:{export.id}",
        rows=rows,
        **noted,
    )
    commit()
    return outcome


def _count(report: Report, filters: ReportFilters, zone: ZoneInfo) -> int | None:
    """How many rows the file will have, where the report's COPY query can tell (PostgreSQL)."""
    if report.copy_statement is None or db.session.get_bind().dialect.name != "postgresql":
        return None
    statement = report.copy_statement(filters, zone).order_by(None).subquery()
    return db.session.scalar(select(func.count()).select_from(statement))


def _write(export_id: int, chunks: Iterator[bytes], out: IO[bytes], progress: Progress) -> None:
    """Copy the chunks to ``out``, recording the rows written about every second."""
    concurrent = db.engine.dialect.name != "sqlite"
    last = time.monotonic()
    for chunk in chunks:
        out.write(chunk)
        if concurrent and time.monotonic() - last >= PROGRESS_EVERY_SECONDS:
            _set(export_id, rows_written=progress.rows)
            last = time.monotonic()


def _set(export_id: int, **values: object) -> None:
    """Update the export from a connection of its own (never the stream's transaction)."""
    with db.engine.begin() as connection:
        connection.execute(
            update(ReportExport).where(ReportExport.id == export_id).values(**values)
        )


def expire_exports() -> int:
    """Delete the files older than EXPORT_RETENTION_HOURS; how many expired."""
    hours = current_app.config["SETTINGS"].export_retention_hours
    old = db.session.scalars(
        select(ReportExport).where(
            ReportExport.status.in_([ExportStatus.READY, ExportStatus.FAILED]),
            ReportExport.finished_at < utcnow() - timedelta(hours=hours),
        )
    ).all()
    for export in old:
        export_path(export).unlink(missing_ok=True)
        change_status(export, ExportStatus.EXPIRED)
    commit()
    return len(old)
