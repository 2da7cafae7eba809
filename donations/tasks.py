"""Celery, bound to the Flask app.

With ``REDIS_URL`` unset (the embedded default) tasks run inline, in the
caller, right after the commit that queued them; in production they go to
workers through Redis. Either way the same task functions run.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask, has_app_context

celery_app = Celery("donations")


def init_celery(app: Flask) -> Celery:
    settings = app.config["SETTINGS"]

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            if has_app_context():
                return self.run(*args, **kwargs)
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app.Task = FlaskTask
    celery_app.conf.update(
        broker_url=settings.redis_url or "memory://",
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
    )
    app.extensions["celery"] = celery_app
    return celery_app
