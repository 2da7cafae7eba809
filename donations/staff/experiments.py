"""Experiment changes with their audit trail: what the task, the CLI and the staff screen call."""

from __future__ import annotations

from donations.embed.experiments.models import Experiment, ExperimentVariant
from donations.embed.experiments.services import check_guardrails, end_experiment, start_experiment
from donations.staff.services import audit


def start_audited(experiment: Experiment) -> None:
    """Serve the experiment (:func:`start_experiment`), with an audit entry (flushed)."""
    start_experiment(experiment)
    audit("experiment.started", target=f"experiment:{experiment.slug}")


def end_audited(experiment: Experiment) -> None:
    """Stop serving the experiment (:func:`end_experiment`), with an audit entry (flushed)."""
    end_experiment(experiment)
    audit("experiment.ended", target=f"experiment:{experiment.slug}")


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
