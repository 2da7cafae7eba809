"""``/staff/reports``: a screen per report, and its CSV and XLSX downloads.

Everyone on staff may look at the screens; downloading needs the finance
role. A viewer sees aggregated figures only: the totals, and the rows of
reports whose rows are sums (per month, per article); rows that are one
donation, plan, payout or supporter -- with emails and names -- need the
finance role as well. Every download is audited twice: ``export.started`` with its filters,
committed before the first byte leaves, and ``export.finished`` (or
``export.failed``) with the number of rows when the stream ends, in a
transaction of its own. A download cut short -- the browser closed, the
database gone, the worker killed -- therefore still leaves its trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    render_template,
    request,
    stream_with_context,
)
from flask.typing import ResponseReturnValue

from donations.db import commit, db, utcnow
from donations.staff.auth import has_role, require_role, require_staff
from donations.staff.models import Role, StaffUser
from donations.staff.reports.catalogue import REPORTS, Report
from donations.staff.reports.exporters import (
    CSV_MIMETYPE,
    XLSX_MIMETYPE,
    Progress,
    copy_csv_chunks,
    copy_xlsx_chunks,
    csv_chunks,
    xlsx_chunks,
)
from donations.staff.reports.filters import Consent, FilterError, ReportFilters, parse_filters
from donations.staff.services import audit
from donations.supporters.models import Frequency

log = logging.getLogger(__name__)

bp = Blueprint("reports", __name__, url_prefix="/staff/reports")

PREVIEW_ROWS = 50
FORMATS = ("csv", "xlsx")
_NAMES = "any(" + ", ".join(f"'{name}'" for name in REPORTS) + ")"


def reporting_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["SETTINGS"].reporting_time_zone)


def this_month(zone: ZoneInfo) -> dict[str, str]:
    today = utcnow().astimezone(zone).date()
    return {"from": today.replace(day=1).isoformat(), "to": today.isoformat()}


@bp.get("/")
@require_staff
def index() -> ResponseReturnValue:
    zone = reporting_zone()
    return render_template(
        "reports/index.html", reports=REPORTS.values(), defaults=this_month(zone), zone=zone.key
    )


def _filters(report: Report) -> ReportFilters:
    return parse_filters(request.args, report.filters, report.statuses)


def _render(
    report: Report,
    filters: ReportFilters | None,
    problems: list[str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    zone = reporting_zone()
    preview: list[Any] = []
    totals = None
    more = False
    rows_visible = report.aggregated or has_role(Role.FINANCE)
    if filters is not None and rows_visible:
        rows = report.rows(filters, zone)
        try:
            preview = list(islice(rows, PREVIEW_ROWS + 1))
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()
        more = len(preview) > PREVIEW_ROWS
        preview = preview[:PREVIEW_ROWS]
    if filters is not None:
        totals = report.totals(filters, zone)
    return render_template(
        "reports/report.html",
        report=report,
        filters=filters,
        params=filters.params() if filters is not None else {},
        form=request.args,
        problems=problems or [],
        preview=preview,
        rows_visible=rows_visible,
        more=more,
        totals=totals,
        zone=zone.key,
        frequencies=[f.value for f in Frequency],
        consents=[c.value for c in Consent],
        formats=FORMATS,
    ), status


@bp.get(f"/<{_NAMES}:name>")
@require_staff
def screen(name: str) -> ResponseReturnValue:
    report = REPORTS[name]
    try:
        filters = _filters(report)
    except FilterError as exc:
        return _render(report, None, exc.problems, 400)
    return _render(report, filters)


def _filename(report: Report, filters: ReportFilters, fmt: str) -> str:
    start = filters.start.isoformat() if filters.start else "start"
    end = (filters.end or utcnow().date()).isoformat()
    return f"{report.name}_{start}_to_{end}.{fmt}"


@bp.get(f"/<{_NAMES}:name>.<any({', '.join(FORMATS)}):fmt>")
@require_role(Role.FINANCE)
def download(name: str, fmt: str) -> ResponseReturnValue:
    report = REPORTS[name]
    try:
        filters = _filters(report)
    except FilterError as exc:
        return _render(report, None, exc.problems, 400)
    zone = reporting_zone()
    details: dict[str, Any] = {
        "report": name,
        "format": fmt,
        "filters": filters.params(),
        "time_zone": zone.key,
    }
    staff_id = g.staff.id
    started_id = audit("export.started", target=f"report:{name}", **details).id
    # Durable before any data leaves, whatever happens to the stream.
    commit()

    progress = Progress()
    body = _export(report, fmt, filters, zone, progress)
    response = Response(
        stream_with_context(_audited(body, progress, staff_id, started_id, details)),
        mimetype=CSV_MIMETYPE if fmt == "csv" else XLSX_MIMETYPE,
    )
    if fmt == "csv":
        response.headers["Content-Type"] = f"{CSV_MIMETYPE}; charset=utf-8; header=present"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{_filename(report, filters, fmt)}"'
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _export(
    report: Report, fmt: str, filters: ReportFilters, zone: ZoneInfo, progress: Progress
) -> Iterator[bytes]:
    """The file, produced as the response is sent.

    Flask has torn down the view's context (and its database session) by
    then; ``stream_with_context`` brings the request back with a fresh
    session, so everything here -- the connection included -- starts here.
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
            yield from copy_xlsx_chunks(
                connection,
                report.xlsx_statement(filters, zone),
                report.columns,
                progress,
                report.title,
                notes,
            )
        else:
            yield from xlsx_chunks(
                report.columns, report.rows(filters, zone), progress, report.title, notes
            )
    elif report.copy_statement is not None and postgresql:
        yield from copy_csv_chunks(
            connection, report.copy_statement(filters, zone), report.columns, progress
        )
    else:
        yield from csv_chunks(report.columns, report.rows(filters, zone), progress)


def _audited(
    body: Iterator[bytes],
    progress: Progress,
    staff_id: int,
    started_id: int,
    details: dict[str, Any],
) -> Iterator[bytes]:
    """Pass the export through, then audit how it ended with the number of rows."""
    outcome, error = "export.failed", None
    try:
        yield from body
        outcome = "export.finished"
    except GeneratorExit:
        error = "the download was interrupted"
        raise
    except Exception as exc:
        error = type(exc).__name__
        log.exception("export %s failed after %d rows", details["report"], progress.rows)
        raise
    finally:
        try:
            # End the reading transaction (and its cursor); the entry gets its own.
            db.session.rollback()
            extra: dict[str, Any] = {"error": error} if error else {}
            audit(
                outcome,
                # The view's StaffUser belonged to its session, closed by now.
                staff=db.session.get(StaffUser, staff_id),
                target=f"report:{details['report']}",
                rows=progress.rows,
                started=started_id,
                **details,
                **extra,
            )
            commit()
        except Exception:
            db.session.rollback()
            log.exception("could not audit the end of export %s", started_id)
