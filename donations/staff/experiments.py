"""The guardrail with its audit trail: what the task, the CLI and the staff screen call."""

from __future__ import annotations

from donations.embed.experiments.models import ExperimentVariant
from donations.embed.experiments.services import check_guardrails
from donations.staff.services import audit


def apply_guardrails() -> list[ExperimentVariant]:
    """Stop the running experiment's failing challengers, each with an audit entry (flushed)."""
    stopped = check_guardrails()
    for variant, reason in stopped:
        audit(
            "experiment.variant_stopped",
            target=f"experiment:{variant.experiment.slug}",
            actor="guardrail",
            variant=variant.key,
            reason=reason,
        )
    return [variant for variant, _ in stopped]
