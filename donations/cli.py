"""Command-line entry points, registered by the area that owns them."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from donations.db import commit

demo_cli = AppGroup("demo", help="Demo data for the embedded default.")


@demo_cli.command("seed")
def seed_demo() -> None:
    """Store the demo ask settings (currencies, amounts, appeal copy)."""
    from donations.support.ask import DEMO_ASK
    from donations.support.services import save_ask_config

    save_ask_config(DEMO_ASK)
    commit()
    click.echo("Demo ask settings saved (USD, EUR, GBP).")


def register(app: Flask) -> None:
    from donations.payments.cli import stripe_cli
    from donations.reminders.cli import reminders_cli
    from donations.staff.cli import staff_cli
    from donations.supporters.cli import supporters_cli

    app.cli.add_command(demo_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(reminders_cli)
    app.cli.add_command(stripe_cli)
    app.cli.add_command(supporters_cli)
