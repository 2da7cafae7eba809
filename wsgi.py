"""WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``."""

import sys

from donations import create_app
from donations.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    print(exc, file=sys.stderr)
    raise SystemExit(2) from None

# `celery --app wsgi:celery worker|beat` (see Procfile).
celery = app.extensions["celery"]
