"""``flask --app wsgi statements ...``: the annual giving statements."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from donations.manage import statements

statements_cli = AppGroup("statements", help="Annual giving statements (one email per supporter).")


@statements_cli.command("send")
@click.option("--year", type=click.IntRange(2000, 2999), required=True, help="The fiscal year.")
def send_command(year: int) -> None:
    """Queue the job that emails each supporter with gifts in fiscal YEAR their statement.

    Once per supporter and year: running it again sends only to those who
    have none yet (a job stopped half-way carries on). Refused until the
    fiscal year (FISCAL_YEAR_START) is over, so no statement misses a gift.
    """
    from donations.manage.tasks import send_statements_task

    if not statements.year_ended(year):
        first, last = statements.fiscal_year_days(year)
        raise click.ClickException(
            f"Fiscal year {year} runs from {first} to {last}: statements can be sent once it "
            "is over."
        )
    due = len(statements.supporters_due(year, limit=1_000_000))
    send_statements_task.delay(year)
    click.echo(f"Queued the statements of fiscal year {year}: {due} supporters without one yet.")
