"""Periodic back-office work: the A/B tests' guardrail, every minute (beat or inline)."""

from __future__ import annotations

import logging

from donations.db import commit
from donations.staff.experiments import apply_guardrails
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
