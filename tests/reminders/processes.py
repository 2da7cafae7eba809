"""The test app's configuration as an environment, for real worker processes."""

from __future__ import annotations

import os

from flask import Flask

from tests.harness import ROOT


def app_env(app: Flask, **extra: str) -> dict[str, str]:
    """What a `flask` or `celery` process needs to act as the test app (same database)."""
    settings = app.config["SETTINGS"]
    env = {
        **os.environ,
        "SECRET_KEY": settings.secret_key,
        "DATABASE_URL": settings.database_url,
        "STRIPE_SECRET_KEY": settings.stripe_secret_key,
        "STRIPE_PUBLISHABLE_KEY": settings.stripe_publishable_key,
        "STRIPE_WEBHOOK_SECRET": settings.stripe_webhook_secret,
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "BASE_URL": settings.base_url,
        "SMTP_URL": settings.smtp_url or "",
        "MAIL_FROM": settings.mail_from,
        "MAIL_DIR": str(settings.mail_dir),
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    if "REDIS_URL" not in extra:
        env.pop("REDIS_URL", None)
    return env
