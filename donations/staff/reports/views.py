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
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue

from donations.db import commit, db, utcnow
from donations.staff.auth import has_role, require_role, require_staff
from donations.staff.models import ExportStatus, ReportExport, Role, StaffUser
from donations.staff.reports.catalogue import REPORTS, Report
from donations.staff.reports.exporters import CSV_MIMETYPE, XLSX_MIMETYPE, Progress
from donations.staff.reports.exports import (
    ExportRefused,
    export_chunks,
    export_path,
    file_name,
    request_export,
)
from donations.staff.reports.filters import Consent, FilterError, ReportFilters, parse_filters
from donations.staff.services import audit
from donations.staff.tasks import prepare_export_task
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
    body = export_chunks(report, fmt, filters, zone, progress)
    response = Response(
        stream_with_context(_audited(body, progress, staff_id, started_id, details)),
        mimetype=CSV_MIMETYPE if fmt == "csv" else XLSX_MIMETYPE,
    )
    if fmt == "csv":
        response.headers["Content-Type"] = f"{CSV_MIMETYPE}; charset=utf-8; header=present"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{file_name(report, filters, fmt)}"'
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


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


# -- prepared in the background ------------------------------------------------------


@bp.post(f"/<{_NAMES}:name>.<any({', '.join(FORMATS)}):fmt>/prepare")
@require_role(Role.FINANCE)
def prepare(name: str, fmt: str) -> ResponseReturnValue:
    """Queue the file for the filters in the form; its page shows the progress."""
    report = REPORTS[name]
    try:
        filters = parse_filters(request.form, report.filters, report.statuses)
        export = request_export(report, fmt, filters, reporting_zone(), g.staff)
    except FilterError as exc:
        return _render(report, None, exc.problems, 400)
    except ExportRefused as exc:
        return _render(report, None, [str(exc)], 429)
    prepare_export_task.delay_on_commit(export.id)
    commit()
    return redirect(url_for("reports.prepared", export_id=export.id), 303)


def _own_export(export_id: int) -> ReportExport:
    export = db.session.get(ReportExport, export_id)
    if export is None or export.staff_id != g.staff.id:
        abort(404)  # another staff member's file is not even acknowledged
    return export


@bp.get("/exports/<int:export_id>")
@require_role(Role.FINANCE)
def prepared(export_id: int) -> ResponseReturnValue:
    export = _own_export(export_id)
    report = REPORTS[export.report]
    retention = current_app.config["SETTINGS"].export_retention_hours
    return render_template(
        "reports/prepared.html", export=export, report=report, Status=ExportStatus,
        retention=retention,
    )  # fmt: skip


@bp.get("/exports/<int:export_id>/file")
@require_role(Role.FINANCE)
def prepared_file(export_id: int) -> ResponseReturnValue:
    export = _own_export(export_id)
    path = export_path(export)
    if export.status is not ExportStatus.READY or not path.exists():
        abort(404)
    audit("export.downloaded", target=f"export:{export.id}", report=export.report,
          format=export.format, rows=export.rows_written)  # fmt: skip
    commit()
    response = send_file(
        path,
        mimetype=CSV_MIMETYPE if export.format == "csv" else XLSX_MIMETYPE,
        as_attachment=True,
        download_name=export.file_name,
        conditional=False,
        etag=False,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
