"""Celery, bound to the Flask app.

With ``REDIS_URL`` unset (the embedded default) tasks run inline, in the
caller, right after the commit that queued them; in production they go to
workers through Redis. Either way the same task functions run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from flask import Flask, has_app_context

from donations.db import on_commit

log = logging.getLogger(__name__)


class DonationsTask(Task):  # type: ignore[misc]
    """A task that can be queued for when the current transaction commits."""

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> None:
        """``delay()`` once the request's transaction commits; never if it rolls back.

        Celery's own name for it (its Django task class has the same method):
        a worker must not look for rows that are not committed yet.
        """
        on_commit(lambda: self.delay(*args, **kwargs))

    def wake_on_commit(self) -> None:
        """Queue one run of this draining task once the transaction commits,
        unless a run is already queued or running.

        For a task without arguments that works through a table until it
        finds nothing left: many writers, one queued run. The gate is a Redis
        key set with NX (one round trip on a kept connection, where a Celery
        message costs several and a new Redis client each). The task calls
        :meth:`asleep` when it finds nothing, then looks once more, so a row
        committed while it was finishing is never left waiting; it calls
        :meth:`awake` as it works. A run that died (or a message that was
        lost) keeps the gate shut for at most ``WAKE_GATE_SECONDS``, and the
        sweep is behind it.
        """
        on_commit(self._wake)

    def awake(self) -> None:
        """Called by the draining task as it works: wake-ups meanwhile are not needed."""
        gate = _gate()
        if gate is not None:
            gate.set(self._gate_key, "1", ex=WAKE_GATE_SECONDS)

    def asleep(self) -> None:
        """Called by the draining task when it found nothing: the next writer wakes it."""
        gate = _gate()
        if gate is not None:
            gate.delete(self._gate_key)

    @property
    def _gate_key(self) -> str:
        return f"donations:wake:{self.name}"

    def _wake(self) -> None:
        gate = _gate()
        if gate is None:
            self.delay()
        elif gate.set(self._gate_key, "1", nx=True, ex=WAKE_GATE_SECONDS):
            try:
                self.delay()
            except Exception:
                gate.delete(self._gate_key)  # not queued: the next writer tries again
                raise


# How long a wake-up keeps others out if the run it queued never reports.
WAKE_GATE_SECONDS = 30
_gates: dict[str, Any] = {}


def _gate() -> Any:
    """The kept Redis client for wake gates (None inline: the task then runs at once)."""
    from flask import current_app

    url = current_app.config["SETTINGS"].redis_url
    if not url:
        return None
    client = _gates.get(url)
    if client is None:
        import redis

        client = _gates[url] = redis.Redis.from_url(url, socket_timeout=5)
    return client


celery_app = Celery("donations", task_cls=DonationsTask)

# Modules defining tasks, imported by workers at start.
TASK_MODULES = (
    "donations.mail.tasks",
    "donations.reminders.tasks",
    "donations.payments.tasks",
    "donations.staff.tasks",
    "donations.manage.tasks",
)
# Periodic work, every DISPATCH_INTERVAL_SECONDS: beat in production, the
# embedded scheduler when background work is inline. Due reminders live in
# the database, so a missed tick (or a flushed Redis) loses nothing.
PERIODIC_TASKS = (
    "reminders.send_due",
    "mail.send_pending",
    "payments.process_pending_events",
    "experiments.check_guardrails",
    "reports.expire_exports",
    "ops.heartbeat",
    "payments.expire_abandoned_checkouts",
    "payments.send_plan_notices",
)
# Where ops.heartbeat leaves the time it last ran (beat -> broker -> worker).
HEARTBEAT_KEY = "donations:heartbeat"
# Once a night (UTC): reconcile the ledger with Stripe for the last few days.
NIGHTLY_TASKS = {"payments.reconcile_recent": {"hour": 3, "minute": 17}}


def init_celery(app: Flask) -> Celery:
    settings = app.config["SETTINGS"]

    class FlaskTask(DonationsTask):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            if has_app_context():
                return self.run(*args, **kwargs)
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app.Task = FlaskTask
    celery_app.conf.update(
        # memory:// with a host: kombu otherwise warns "No hostname was supplied".
        broker_url=settings.redis_url or "memory://localhost/",
        result_backend=None,
        task_ignore_result=True,
        task_always_eager=settings.background_inline,
        task_eager_propagates=False,
        # A task is acknowledged only after it ran, so a worker killed
        # mid-task leaves it to be redelivered; tasks are idempotent.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        imports=TASK_MODULES,
        beat_schedule={
            name: {
                "task": name,
                "schedule": settings.dispatch_interval,
                # A tick nobody picked up in time is dropped; the next one does the work.
                "options": {"expires": settings.dispatch_interval},
            }
            for name in PERIODIC_TASKS
        },
    )
    celery_app.conf.beat_schedule.update(
        {
            name: {"task": name, "schedule": crontab(**at), "options": {"expires": 3600}}
            for name, at in NIGHTLY_TASKS.items()
        }
    )
    app.extensions["celery"] = celery_app
    if settings.background_inline and not app.testing:
        register_embedded_scheduler(app, settings.dispatch_interval)
    return celery_app


class EmbeddedScheduler:
    """The embedded default's stand-in for beat: a daemon thread running PERIODIC_TASKS.

    Several of them (one per gunicorn worker) may run at once: the tasks
    claim their rows, so nothing is sent twice.
    """

    def __init__(self, app: Flask, interval: float) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="embedded-scheduler", daemon=True)

    def start(self) -> EmbeddedScheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def run_once(self) -> None:
        import importlib

        for module in TASK_MODULES:
            importlib.import_module(module)
        for name in PERIODIC_TASKS:
            with self.app.app_context():
                try:
                    celery_app.tasks[name].run()
                except Exception:
                    log.exception("periodic task %s failed", name)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)


def register_embedded_scheduler(app: Flask, interval: float) -> None:
    """Start the scheduler with the first request this process serves.

    Not at import: `flask db upgrade` and the other commands build the app
    too and must not send mail. The embedded launcher makes one request
    as soon as the server is up, so the thread starts without a visitor.
    """
    lock = threading.Lock()
    started: dict[int, EmbeddedScheduler] = {}

    @app.before_request
    def _start_embedded_scheduler() -> None:
        pid = os.getpid()  # gunicorn forks: one scheduler per worker process
        if pid in started:
            return
        with lock:
            if pid not in started:
                started[pid] = EmbeddedScheduler(app, interval).start()
                log.info("embedded scheduler started (every %ss)", interval)


@celery_app.task(name="ops.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Proof that beat schedules and a worker runs: `flask ops ready beat` reads it."""
    from flask import current_app

    redis_url = current_app.config["SETTINGS"].redis_url
    if not redis_url:  # inline: the embedded scheduler is part of the web process
        return
    import redis

    redis.Redis.from_url(redis_url, socket_timeout=2).set(HEARTBEAT_KEY, str(time.time()))
