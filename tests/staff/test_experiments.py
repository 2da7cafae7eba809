"""The A/B tests' staff screens: define, start, read, stop; CSRF, roles and the audit log."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask
from sqlalchemy import select

from donations.db import commit, db, utcnow
from donations.embed.experiments.models import Experiment, ExperimentStatus
from donations.embed.models import EmbedCount, EmbedEvent
from donations.staff.models import AuditEntry, Role
from tests import factories
from tests.staff.conftest import csrf_token

VARIANTS = [
    {"key": "control", "share": 50},
    {"key": "monthly-first", "share": 50, "default_frequency": "monthly", "upsell": False},
]


def form(token: str, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "slug": "frequency",
        "title": "Monthly first?",
        "baseline": "2",
        "mde": "20",
        "alpha": "5",
        "power": "80",
        "margin": "20",
        "minimum": "1000",
        "variants": json.dumps(VARIANTS),
        **fields,
    }


def actions(app: Flask) -> list[str]:
    with app.app_context():
        try:
            return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        finally:
            db.session.remove()


def test_an_admin_defines_starts_and_ends_an_experiment(app: Flask, signed_in: Any) -> None:
    client, _ = signed_in(Role.ADMIN)
    page = client.get("/staff/experiments")
    assert page.status_code == 200
    assert "New experiment" in page.text
    token = csrf_token(page.text)
    # Without the token nothing is made.
    assert (
        client.post("/staff/experiments", data={**form(token), "csrf_token": ""}).status_code == 400
    )
    created = client.post("/staff/experiments", data=form(token))
    assert created.status_code == 303
    results = client.get(created.headers["Location"])
    # 2 % and +20 % at alpha 5 %, power 80 %: 21 109 per variant (test_experiment_stats.py).
    assert "21109" in results.text
    assert "No winner yet." in results.text
    token = csrf_token(results.text)
    with app.app_context():
        experiment = db.session.scalar(select(Experiment))
        assert experiment is not None
        ident, challenger = experiment.id, experiment.variants[1].id
        db.session.remove()
    assert (
        client.post(f"/staff/experiments/{ident}/start", data={"csrf_token": token}).status_code
        == 303
    )
    served = client.get("/embed/config.json?lang=en").get_json()["experiment"]
    assert [v["value"] for v in served["variants"]] == [
        "frequency:control",
        "frequency:monthly-first",
    ]
    stop = f"/staff/experiments/{ident}/variants/{challenger}/stop"
    assert client.post(stop, data={"csrf_token": token}).status_code == 303
    assert (
        client.post(f"/staff/experiments/{ident}/end", data={"csrf_token": token}).status_code
        == 303
    )
    assert client.get("/embed/config.json?lang=en").get_json()["experiment"] is None
    with app.app_context():
        found = db.session.get(Experiment, ident)
        assert found is not None
        assert found.status is ExperimentStatus.ENDED
        assert found.variants[1].stopped_reason == "stopped by staff"
        db.session.remove()
    assert [a for a in actions(app) if a.startswith("experiment.")] == [
        "experiment.created",
        "experiment.started",
        "experiment.variant_stopped",
        "experiment.ended",
    ]


def test_bad_definitions_are_explained(app: Flask, signed_in: Any) -> None:
    client, _ = signed_in(Role.ADMIN)
    token = csrf_token(client.get("/staff/experiments").text)
    for fields, why in (
        ({"baseline": "abc"}, "Enter a percentage"),
        ({"baseline": "nan"}, "Enter a percentage"),
        ({"variants": "{not json"}, "cannot be used"),
        ({"variants": json.dumps([{"key": "a", "share": 100}])}, "between 2"),
        ({"slug": "Bad Name"}, "Up to 30"),
        ({"minimum": "-1"}, "whole number"),
        ({"mde": "900000"}, "Enter a percentage"),
        ({"baseline": "50", "mde": "500"}, "must stay below 100"),
    ):
        answer = client.post("/staff/experiments", data=form(token, **fields))
        assert answer.status_code == 400, fields
        assert why in answer.text, (fields, answer.text[-2000:])
    # In Russian, the reason too.
    shares = json.dumps([{"key": "a", "share": 50}, {"key": "b", "share": 40}])
    answer = client.post("/staff/experiments?lang=ru", data=form(token, variants=shares))
    assert "доли должны в сумме давать 100" in answer.text
    with app.app_context():
        assert db.session.scalar(select(Experiment)) is None
        db.session.remove()


def test_results_screen_in_russian_with_numbers(app: Flask, signed_in: Any) -> None:
    with app.app_context():
        experiment = factories.experiment()
        experiment.status = ExperimentStatus.RUNNING
        day = utcnow().date()
        for key, shown in (("control", 1000), ("urgent", 1000)):
            db.session.add(
                EmbedCount(
                    day=day, event=EmbedEvent.IMPRESSION, variant=f"copy-test:{key}", count=shown
                )
            )
        for i in range(20):
            owner = factories.supporter(email=f"r{i}@example.org")
            factories.donation(owner, 1000, variant="copy-test:control")
        commit()
        ident = experiment.id
    client, _ = signed_in(Role.VIEWER)
    page = client.get(f"/staff/experiments/{ident}?lang=ru")
    assert page.status_code == 200
    assert '<html lang="ru">' in page.text
    assert "Победителя пока нет." in page.text
    text = re.sub(r"\s+", " ", page.text.replace("\xa0", " ").replace("\u202f", " "))
    # 20 of 1000: 2,00 % within the Wilson interval 1,30 %–3,07 %; $10 x 20 / 1000 = $0,2000.
    assert "2,00 %" in text
    assert "1,30 % – 3,07 %" in text
    assert "0,2000 $" in text
    # A viewer sees no buttons that change anything.
    assert "Остановить вариант" not in page.text
    assert "csrf_token" not in page.text.split("</header>", 1)[1]
