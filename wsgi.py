"""WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``.

The Flask CLI reads ``.env`` first (``make run`` writes it), so the commands
in the README need no variables in a checkout where ``make run`` ran.
"""

import sys

from donations import create_app
from donations.cli import asks_only_for_help, help_app
from donations.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    if not asks_only_for_help(sys.argv):
        print(
            f"{exc}\n(In a checkout, `make run` writes the embedded default's to .env.)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    # `flask --app wsgi [... ] --help` lists and explains the commands without settings.
    app = help_app(exc)

# `celery --app wsgi:celery worker|beat` (see Procfile).
celery = app.extensions["celery"]
