"""Command-line entry points, registered by the area that owns them."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click
from flask import Flask
from flask.cli import AppGroup

from donations.config import ConfigError
from donations.db import commit

demo_cli = AppGroup("demo", help="Demo data for the embedded default.")


@demo_cli.command("seed")
@click.option("--migrate", is_flag=True, help="Upgrade the database to the newest revision first.")
def seed_demo(migrate: bool) -> None:
    """Store the demo ask settings (currencies, amounts, appeal copy)."""
    from donations.ask.config import DEMO_ASK
    from donations.ask.services import save_ask_config

    if migrate:
        from flask_migrate import upgrade

        upgrade()

    save_ask_config(DEMO_ASK)
    commit()
    click.echo("Demo ask settings saved (USD, EUR, GBP).")


ops_cli = AppGroup("ops", help="Operations: readiness of web, worker and beat.")


@ops_cli.command("ready")
@click.argument("role", type=click.Choice(["web", "worker", "beat"]))
def ready_command(role: str) -> None:
    """Exit 0 when ROLE can do its work, 1 (saying why) when it cannot.

    web: the database answers at the migrations' head (and Redis, when
    configured). worker: a Celery worker answers a ping. beat: the
    heartbeat beat schedules was run by a worker within three dispatch
    intervals. With background work inline there is no worker or beat.
    """
    import time

    from flask import current_app

    from donations.observability import readiness
    from donations.tasks import HEARTBEAT_KEY, celery_app

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = app.config["SETTINGS"]
    if role == "web":
        checks = readiness(app)
        click.echo(", ".join(f"{name}: {value}" for name, value in checks.items()))
        raise SystemExit(0 if all(v == "ok" for v in checks.values()) else 1)
    if settings.background_inline:
        click.echo(f"{role}: background work runs inline in the web process (no REDIS_URL)")
        return
    if role == "worker":
        replies = celery_app.control.ping(timeout=3.0)
        click.echo(f"worker: {len(replies)} answered")
        raise SystemExit(0 if replies else 1)
    import redis

    try:
        last = redis.Redis.from_url(settings.redis_url, socket_timeout=2).get(HEARTBEAT_KEY)
    except redis.RedisError as exc:
        click.echo(f"beat: Redis unreachable ({exc})")
        raise SystemExit(1) from exc
    if last is None:
        click.echo("beat: no heartbeat yet")
        raise SystemExit(1)
    age = time.time() - float(last)
    click.echo(f"beat: last heartbeat {age:.0f} s ago")
    raise SystemExit(0 if age <= 3 * settings.dispatch_interval else 1)


def register(app: Flask) -> None:
    from donations.manage.cli import statements_cli
    from donations.operations.cli import supporters_cli
    from donations.payments.cli import stripe_cli
    from donations.reminders.cli import reminders_cli
    from donations.staff.cli import staff_cli
    from donations.staff.experiments_cli import experiments_cli
    from donations.support.cli import campaigns_cli

    app.cli.add_command(demo_cli)
    app.cli.add_command(ops_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(reminders_cli)
    app.cli.add_command(stripe_cli)
    app.cli.add_command(supporters_cli)
    app.cli.add_command(campaigns_cli)
    app.cli.add_command(experiments_cli)
    app.cli.add_command(statements_cli)


def asks_only_for_help(argv: Sequence[str]) -> bool:
    """True for ``flask … --help`` (or ``flask --app wsgi`` alone): nothing will run."""
    if os.path.basename(argv[0] if argv else "") not in ("flask", "__main__.py", "-m"):
        return False
    words = list(argv[1:])
    if "--help" in words:
        return True
    if "--app" in words:
        i = words.index("--app")
        del words[i : i + 2]
    return not [w for w in words if not w.startswith("-")]


def help_app(problem: ConfigError) -> Flask:
    """A stand-in app for ``--help`` when the settings are incomplete.

    It carries every command, so their help is shown; it serves nothing. The
    settings' problems are printed once, so the reader knows what the commands
    will need (``make run`` writes them to ``.env``).
    """
    from donations.tasks import celery_app

    print(
        "Note: the settings are incomplete; commands other than --help need them "
        "(`make run` writes them to .env):\n" + "\n".join(f"  - {p}" for p in problem.problems),
        file=sys.stderr,
    )
    app = Flask("donations")
    app.extensions["celery"] = celery_app
    register(app)
    return app
