"""``flask --app wsgi stripe ...``: Stripe operations for operators."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import AppGroup

from donations.db import utcnow
from donations.payments.reconcile import period, reconcile

stripe_cli = AppGroup("stripe", help="Stripe: reconciliation and maintenance.")


def _day_start(day: date) -> datetime:
    """Midnight of ``day`` in the reporting time zone."""
    zone = ZoneInfo(current_app.config["SETTINGS"].reporting_time_zone)
    return datetime(day.year, day.month, day.day, tzinfo=zone)


@stripe_cli.command("reconcile")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d"]),
    required=True,
    help="First day (YYYY-MM-DD, reporting time zone).",
)
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Last day, inclusive (default: up to now).",
)
@click.option("--dry-run", is_flag=True, help="Report the differences; change nothing.")
def reconcile_command(since: datetime, until: datetime | None, dry_run: bool) -> None:
    """Compare the ledger with Stripe for a period and repair what differs.

    Exits 1 while differences remain that could not be repaired (in a dry
    run: while there are any differences at all).
    """
    start = _day_start(since.date())
    end_day = _day_start(until.date()) if until is not None else None
    if end_day is not None and end_day < start:
        raise click.UsageError("--until is before --since")
    start, end = period(start, end_day, utcnow())
    report = reconcile(start, end, dry_run=dry_run)
    for line in report.lines():
        click.echo(line)
    if report.remaining:
        raise SystemExit(1)
