"""What an operator watches: request ids in logs, tasks and the audit log; /metrics; readiness."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from donations.db import db
from donations.observability import REQUEST_ID, RequestIdFilter, log_formatter
from donations.payments.models import StripeEvent
from donations.staff.models import AuditEntry
from donations.tasks import celery_app, heartbeat
from tests.harness import ROOT, WEBHOOK_SECRET, sign_webhook_payload

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        match = re.fullmatch(r"([a-zA-Z_:]+)(?:\{(.*)\})?", sample)
        if match is None or match.group(1) != name:
            continue
        found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if found == wanted:
            return float(value)
    return 0.0


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter("json"))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_each_answer_carries_a_request_id(client: FlaskClient) -> None:
    first = client.get("/healthz")
    second = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    # A proxy's well-formed id is kept; anything else is replaced.
    kept = client.get("/healthz", headers={"X-Request-ID": "edge-1234abcd"})
    assert kept.headers["X-Request-ID"] == "edge-1234abcd"
    forged = client.get("/healthz", headers={"X-Request-ID": 'a" level="ERROR'})
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])


def test_a_log_line_is_json_with_the_request_id(client: FlaskClient, json_log: io.StringIO) -> None:
    response = client.post(
        "/webhooks/stripe",
        data=b"{}",
        headers={"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    rejected = [line for line in lines if line["message"].startswith("rejected webhook")]
    assert len(rejected) == 1
    assert rejected[0]["request_id"] == response.headers["X-Request-ID"]
    assert rejected[0]["level"] == "WARNING"
    assert rejected[0]["logger"] == "donations.payments.views"


def test_the_audit_log_records_the_request_id(client: FlaskClient, ctx: None) -> None:
    from tests.staff.conftest import csrf_token

    form = client.get("/staff/login")
    response = client.post(
        "/staff/login",
        data={
            "csrf_token": csrf_token(form.text),
            "email": "nobody@newsroom.org",
            "password": "wrong password here",
        },
    )
    assert response.status_code == 401
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.actor == "nobody@newsroom.org")
    ).one()
    assert entry.request_id == response.headers["X-Request-ID"]


def test_a_queued_task_carries_the_request_id_to_the_broker() -> None:
    """The id travels in the message's headers (read back from Redis, as a worker would)."""
    broker = redis.Redis.from_url(REDIS_URL)
    broker.delete("observability-test")
    previous = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = REDIS_URL, False
    token = REQUEST_ID.set("req-0123456789")
    try:
        with celery_app.connection_for_write() as connection:
            heartbeat.apply_async(
                connection=connection,
                queue="observability-test",
                routing_key="observability-test",
            )
    finally:
        REQUEST_ID.reset(token)
        celery_app.conf.broker_url, celery_app.conf.task_always_eager = previous
    raw = broker.lpop("observability-test")
    assert raw is not None
    message = json.loads(raw)
    assert message["headers"]["request_id"] == "req-0123456789"
    assert message["headers"]["task"] == "ops.heartbeat"


def test_metrics_count_requests_by_route_and_status(client: FlaskClient) -> None:
    before = client.get("/metrics").text
    for _ in range(3):
        assert client.get("/support").status_code == 200  # the 2nd and 3rd from the page cache
    client.get("/no/such/page/here")
    after = client.get("/metrics")
    assert after.status_code == 200
    assert after.mimetype == "text/plain"
    text = after.text
    key = {"route": "/support", "method": "GET", "status": "200"}
    assert (
        metric(text, "donations_http_requests_total", **key)
        - metric(before, "donations_http_requests_total", **key)
        == 3
    )
    assert (
        metric(text, "donations_http_request_duration_seconds_count", route="/support")
        - metric(before, "donations_http_request_duration_seconds_count", route="/support")
        == 3
    )
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert metric(text, "donations_http_requests_total", **unmatched) >= 1


def test_a_made_up_method_is_counted_as_other(client: FlaskClient) -> None:
    before = client.get("/metrics").text
    for method in ("BREW", "PROPFIND", "X" * 20):
        assert client.open("/support", method=method).status_code == 405
    text = client.get("/metrics").text
    other = {"route": "unmatched", "method": "other", "status": "405"}
    assert (
        metric(text, "donations_http_requests_total", **other)
        - metric(before, "donations_http_requests_total", **other)
        == 3
    )
    assert "BREW" not in text
    assert "PROPFIND" not in text


def test_metrics_count_webhook_events_and_show_the_backlog(client: FlaskClient, app: Flask) -> None:
    before = client.get("/metrics").text
    event = {
        "id": "evt_observability_1",
        "object": "event",
        "type": "product.created",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": {"id": "prod_1", "object": "product"}},
    }
    body = json.dumps(event)
    for _ in range(2):
        response = client.post(
            "/webhooks/stripe",
            data=body,
            headers={
                "Stripe-Signature": sign_webhook_payload(body, WEBHOOK_SECRET, int(time.time())),
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 200
    text = client.get("/metrics").text

    def grew(outcome: str) -> float:
        labels = {"type": "product.created", "outcome": outcome}
        return metric(text, "donations_webhook_events_total", **labels) - metric(
            before, "donations_webhook_events_total", **labels
        )

    assert grew("received") == 1
    assert grew("duplicate") == 1
    assert grew("processed") == 1
    for queue in ("webhook_events", "webhook_events_parked", "mail_outbox", "reminders_due"):
        assert f'donations_backlog_items{{queue="{queue}"}}' in text
    # Ours is processed; what the backlog shows is what the table holds (a late
    # event of an earlier test's subscription may be waiting for its retry).
    with app.app_context():
        ours = db.session.execute(
            select(StripeEvent).where(StripeEvent.stripe_event_id == "evt_observability_1")
        ).scalar_one()
        assert ours.processed_at is not None
        waiting = db.session.scalar(
            select(func.count()).where(
                StripeEvent.processed_at.is_(None), StripeEvent.parked_at.is_(None)
            )
        )
    assert metric(text, "donations_backlog_items", queue="webhook_events") == waiting


def test_metrics_are_not_served_to_strangers(app: Flask, client: FlaskClient) -> None:
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 404
    assert "donations_" not in remote.text


def test_metrics_token_is_required_when_set(make_app) -> None:
    guarded = make_app(METRICS_TOKEN="s3cret-token-0123456789").test_client()
    assert guarded.get("/metrics").status_code == 404  # loopback is not enough now
    wrong = guarded.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 404
    right = guarded.get("/metrics", headers={"Authorization": "Bearer s3cret-token-0123456789"})
    assert right.status_code == 200
    assert "donations_http_requests_total" in right.text


def test_readiness_needs_the_migrated_database(
    client: FlaskClient,
    make_app,
    tmp_path,
) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "database": "ok", "migrations": "ok"}
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    fresh = make_app(database=empty).test_client()
    unready = fresh.get("/readyz")
    assert unready.status_code == 503
    assert unready.json["status"] == "unavailable"
    assert unready.json["migrations"] == "not migrated"


def test_ops_ready_web_and_inline(app: Flask) -> None:
    """With Redis, worker and beat readiness are proved in tests/reminders/test_celery.py."""
    web = app.test_cli_runner().invoke(args=["ops", "ready", "web"])
    assert web.exit_code == 0, web.output
    assert "database: ok, migrations: ok" in web.output
    for role in ("worker", "beat"):
        inline = app.test_cli_runner().invoke(args=["ops", "ready", role])
        assert inline.exit_code == 0
        assert "runs inline" in inline.output


def test_alert_rules_name_only_what_is_exported(client: FlaskClient, app: Flask) -> None:
    rules = (ROOT / "deploy" / "prometheus-alerts.yml").read_text()
    exported = client.get("/metrics").text
    names = set(re.findall(r"\b(donations_[a-z_]+)", rules))
    assert names, "no rules?"
    for name in names:
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert f"# TYPE {base} " in exported or f"{name}{{" in exported, name
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    for route in re.findall(r'route="([^"]+)"', rules):
        assert route in routes, route
