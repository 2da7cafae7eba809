"""Back-office work: the A/B tests' guardrail and old exports, every minute (beat or inline);
reports prepared in the background."""

from __future__ import annotations

import logging

from donations.db import commit
from donations.staff.experiments import apply_guardrails
from donations.staff.reports.exports import expire_exports, prepare_export
from donations.tasks import celery_app

log = logging.getLogger(__name__)


@celery_app.task(name="experiments.check_guardrails", ignore_result=True)
def check_guardrails_task() -> int:
    """Stop the running experiment's variants that breach the guardrail; how many were stopped."""
    stopped = apply_guardrails()
    commit()
    for variant in stopped:
        log.warning("experiment variant stopped by the guardrail: %s", variant.attribution)
    return len(stopped)


@celery_app.task(name="reports.prepare_export", ignore_result=True)
def prepare_export_task(export_id: int) -> str | None:
    """Write a report file a staff member asked for (a redelivered task finds it taken)."""
    status = prepare_export(export_id)
    return status.value if status is not None else None


@celery_app.task(name="reports.expire_exports", ignore_result=True)
def expire_exports_task() -> int:
    """Delete the prepared files older than EXPORT_RETENTION_HOURS."""
    return expire_exports()
