"""What an operator watches: JSON logs with a request id, Prometheus metrics, readiness.

* Every request gets an id (a well-formed ``X-Request-ID`` from the proxy, or
  a new one), answered in ``X-Request-ID``, put on every log line written
  while it runs, carried into the Celery tasks it queues and into the audit
  entries it writes.
* ``LOG_FORMAT=json`` (the default) writes one JSON object a line to stderr;
  ``text`` is the classic format.
* ``/metrics`` serves Prometheus' text format: requests by route and status
  with latency histograms, webhook events by type and outcome, task runs,
  reminders and mail sent or failed, and -- read from the database at each
  scrape, so every process agrees -- the work waiting: unprocessed and
  parked webhook events, the mail outbox, due reminders, with the age of the
  oldest of each, plus the Celery queue's length. With
  ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn, several workers) the counters
  of every process on the host are added up.
* ``/readyz`` answers 200 only when the database answers at the migrations'
  head and Redis (when configured) answers; ``flask ops ready worker|beat``
  checks the Celery side.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter

from donations.public import ROUTE_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# Taken from a proxy only when it looks like an id, never a log-injection vector.
_GOOD_ID = re.compile(r"[A-Za-z0-9._-]{8,64}\Z")

# -- logging ----------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    """Puts the current request's (or task's) id on each record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True


def log_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")


def configure_logging(fmt: str) -> None:
    """One handler on the root logger, unless the host (pytest, gunicorn) set one up."""
    root = logging.getLogger()
    if root.handlers:
        for handler in root.handlers:
            if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                handler.addFilter(RequestIdFilter())
        return
    handler = logging.StreamHandler()
    handler.setFormatter(log_formatter(fmt))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def new_request_id(proposed: str | None = None) -> str:
    if proposed and _GOOD_ID.match(proposed):
        return proposed
    return secrets.token_hex(16)  # 128 random bits, as uuid4 (which builds an object first)


# -- metrics -----------------------------------------------------------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "donations_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "donations_http_request_duration_seconds",
    "Time to answer, by route",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
WEBHOOK_EVENTS = Counter(
    "donations_webhook_events_total",
    "Stripe events by type and outcome (received, duplicate, processed, failed, parked)",
    ["type", "outcome"],
)
TASK_RUNS = Counter("donations_task_runs_total", "Celery task runs", ["task", "outcome"])
REMINDERS = Counter("donations_reminders_total", "Due reminders handled", ["outcome"])
MAIL = Counter("donations_mail_total", "Outbox messages handled", ["outcome"])
RECONCILE_DIFFERENCES = Gauge(
    "donations_reconcile_differences",
    "Differences the last reconciliation left unrepaired",
    multiprocess_mode="mostrecent",
)


def webhook_event(event_type: str, outcome: str) -> None:
    # Stripe's event types are a closed vocabulary; anything else is one label.
    label = event_type if re.fullmatch(r"[a-z_.]{1,100}", event_type) else "other"
    WEBHOOK_EVENTS.labels(label, outcome).inc()


# The work waiting, by queue: (items, age of the oldest in seconds), read at scrape.
Backlog = Callable[[], dict[str, tuple[int, float]]]


class BacklogCollector(Collector):
    """Work waiting, read from the database at scrape time (the same for every process)."""

    def __init__(self, app: Flask, backlog: Backlog) -> None:
        self.app = app
        self.backlog = backlog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily(
            "donations_backlog_items", "Items waiting to be processed", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "donations_backlog_oldest_age_seconds",
            "Age of the oldest waiting item (0 when none)",
            labels=["queue"],
        )
        with self.app.app_context():
            for name, (count, oldest) in self.backlog().items():
                size.add_metric([name], count)
                age.add_metric([name], oldest)
        depth = celery_queue_depth(self.app)
        if depth is not None:
            size.add_metric(["celery"], depth)
        yield size
        yield age


def celery_queue_depth(app: Flask) -> int | None:
    """Messages waiting in Celery's default queue on Redis (None when inline)."""
    redis_url = app.config["SETTINGS"].redis_url
    if not redis_url:
        return None
    import redis

    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=1)
        return int(client.llen("celery"))
    except redis.RedisError:
        return None


def render_metrics(app: Flask, backlog: Backlog) -> bytes:
    """Prometheus' text format: this process's (or every process's) counters, plus backlog."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)  # type: ignore[no-untyped-call]
    else:
        counters = REGISTRY
    waiting = CollectorRegistry(auto_describe=False)
    waiting.register(BacklogCollector(app, backlog))
    return generate_latest(counters) + generate_latest(waiting)


class RequestMetrics:
    """WSGI middleware (outermost): request id, access metrics, ``X-Request-ID``.

    Outside Flask and the public page cache, so answers served from that
    cache are counted and timed too; the route is the URL rule Flask matched
    (kept with cached answers), ``unmatched`` otherwise, so the number of
    series stays bounded whatever URLs are requested.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status_code = ["500"]

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_code[0] = status[:3]
            headers.append(("X-Request-ID", request_id))
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            method = environ.get("REQUEST_METHOD", "")
            count, latency = _series(
                environ.get(ROUTE_KEY, "unmatched"),
                method if method in _METHODS else "other",
                status_code[0],
            )
            count.inc()
            latency.observe(time.perf_counter() - started)
            REQUEST_ID.reset(token)


_SERIES: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def _series(route: str, method: str, status: str) -> tuple[Any, Any]:
    """The request counter and latency histogram of one route, method and status.

    Looked up once per combination (labels() takes a lock and builds a key per
    call); all three are bounded: URL rules, ``_METHODS`` + other, status codes.
    """
    found = _SERIES.get((route, method, status))
    if found is None:
        found = HTTP_REQUESTS.labels(route, method, status), HTTP_LATENCY.labels(route)
        _SERIES[(route, method, status)] = found
    return found


def metrics_allowed(settings: Any, remote_addr: str | None, authorization: str | None) -> bool:
    """``METRICS_TOKEN`` as a bearer token when set; otherwise loopback scrapers only."""
    token = settings.metrics_token
    if token:
        expected = f"Bearer {token}"
        return authorization is not None and hmac.compare_digest(
            authorization.encode(), expected.encode()
        )
    return remote_addr in {"127.0.0.1", "::1"}


# -- Celery: the id travels with the task ---------------------------------------


_signals_connected = False


def connect_celery_signals() -> None:
    global _signals_connected
    if _signals_connected:
        return
    _signals_connected = True
    from celery import signals

    @signals.before_task_publish.connect(weak=False)
    def _carry(headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers is not None and REQUEST_ID.get():
            headers["request_id"] = REQUEST_ID.get()

    @signals.task_prerun.connect(weak=False)
    def _adopt(task: Any = None, **_: Any) -> None:
        if task is None:
            return
        carried = getattr(task.request, "request_id", None)
        if carried is None and isinstance(getattr(task.request, "headers", None), dict):
            carried = task.request.headers.get("request_id")
        if carried or not REQUEST_ID.get():
            task.request.observability_token = REQUEST_ID.set(
                carried or new_request_id(task.request.id)
            )

    @signals.task_postrun.connect(weak=False)
    def _done(task: Any = None, state: str | None = None, **_: Any) -> None:
        if task is None:
            return
        TASK_RUNS.labels(task.name or "-", (state or "unknown").lower()).inc()
        token = getattr(task.request, "observability_token", None)
        if token is not None:
            REQUEST_ID.reset(token)
            task.request.observability_token = None


def readiness(app: Flask) -> dict[str, str]:
    """What the web process needs to serve: the database at our migrations' head, and Redis."""
    from sqlalchemy import text

    from donations.db import db

    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        logging.getLogger(__name__).warning("readiness: database unreachable", exc_info=True)
        checks["database"] = "unreachable"
        db.session.remove()
    if checks["database"] == "ok":
        try:
            applied = set(
                db.session.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
        except Exception:
            applied = set()
        finally:
            db.session.remove()
        if not applied:
            checks["migrations"] = "not migrated"
        else:
            checks["migrations"] = "ok" if applied == migration_heads(app) else "behind"
    redis_url = app.config["SETTINGS"].redis_url
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_timeout=1).ping()
            checks["redis"] = "ok"
        except redis.RedisError:
            checks["redis"] = "unreachable"
    return checks


def migration_heads(app: Flask) -> set[str]:
    heads: set[str] | None = app.extensions.get("migration_heads")
    if heads is None:
        from alembic.script import ScriptDirectory

        directory = app.extensions["migrate"].directory
        heads = set(ScriptDirectory(directory).get_heads())
        app.extensions["migration_heads"] = heads
    return heads


def init_app(app: Flask, backlog: Backlog) -> None:
    """``backlog`` reads the areas' queues (the wiring passes it: the kernel imports no area)."""
    from flask import Response, abort, request
    from flask.globals import request_ctx

    settings = app.config["SETTINGS"]
    configure_logging(settings.log_format)
    connect_celery_signals()

    def metrics() -> Response:
        if not metrics_allowed(settings, request.remote_addr, request.headers.get("Authorization")):
            abort(404)
        return Response(render_metrics(app, backlog), mimetype=CONTENT_TYPE_LATEST)

    def readyz() -> tuple[dict[str, str], int]:
        checks = readiness(app)
        ready = all(value == "ok" for value in checks.values())
        return {"status": "ready" if ready else "unavailable", **checks}, 200 if ready else 503

    app.add_url_rule("/metrics", "metrics", metrics)
    app.add_url_rule("/readyz", "readyz", readyz)

    @app.before_request
    def _route() -> None:
        matched = request_ctx.request
        if matched.url_rule is not None:
            matched.environ[ROUTE_KEY] = matched.url_rule.rule

    app.wsgi_app = RequestMetrics(app.wsgi_app)  # type: ignore[method-assign]
