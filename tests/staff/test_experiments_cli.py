"""``flask --app wsgi experiments …``: the same services as the staff screen."""

from __future__ import annotations

import json

from flask import Flask
from sqlalchemy import select

from donations.db import db
from donations.embed.experiments.models import Experiment, ExperimentStatus
from donations.staff.models import AuditEntry

VARIANTS = json.dumps(
    [
        {"key": "control", "share": 50},
        {"key": "once-first", "share": 50, "default_frequency": "once"},
    ]
)


def test_create_start_show_end(app: Flask) -> None:
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=[
            "experiments", "create", "frequency", "--title", "Once first?",
            "--variants", VARIANTS, "--baseline", "10", "--mde", "20",
        ]
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "3841 impressions per variant" in created.output
    started = runner.invoke(args=["experiments", "start", "frequency"])
    assert started.exit_code == 0, started.output
    shown = runner.invoke(args=["experiments", "show"])
    assert "frequency\trunning\tnot_yet\tplanned 3841 per variant" in shown.output
    assert "once-first\t50%\tserved\t0 shown" in shown.output
    assert "No variant breaches" in runner.invoke(args=["experiments", "check"]).output
    assert runner.invoke(args=["experiments", "end", "frequency"]).exit_code == 0
    with app.app_context():
        experiment = db.session.scalar(select(Experiment))
        assert experiment is not None
        assert experiment.status is ExperimentStatus.ENDED
        actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions == ["experiment.created", "experiment.started", "experiment.ended"]
        db.session.remove()


def test_bad_input_is_a_message_not_a_traceback(app: Flask) -> None:
    runner = app.test_cli_runner()
    base = ["experiments", "create", "x", "--title", "X", "--baseline", "2", "--mde", "20"]
    for extra in (
        ["--variants", "not json"],
        ["--variants", '[{"key": "a", "share": 100}]'],
        ["--variants", VARIANTS, "--alpha", "nan"],
        ["--variants", "@/nonexistent.json"],
    ):
        result = runner.invoke(args=base + extra)
        assert result.exit_code != 0
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert runner.invoke(args=["experiments", "start", "missing"]).exit_code == 1
