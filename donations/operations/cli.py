"""``flask --app wsgi supporters ...``: operations on supporter records (erasure)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from donations.db import commit
from donations.operations.erasure import ErasureRefused, erase_supporter
from donations.supporters.services import find_supporter

supporters_cli = AppGroup("supporters", help="Supporter records: erasure.")


@supporters_cli.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_command(email: str, yes: bool) -> None:
    """Erase the personal data of the supporter with EMAIL (any case).

    Their donations stay in the ledger with their amounts; their name,
    address and contact details go, here and at Stripe, and the address is
    kept only as a hash on the suppression list so they are never mailed.
    """
    supporter = find_supporter(email)
    if supporter is None:
        raise click.ClickException("No supporter has that email address.")
    if supporter.erased_at is not None:
        click.echo(f"Supporter {supporter.id} was already erased.")
        return
    if not yes:
        click.confirm(
            f"Erase supporter {supporter.id}'s personal data? This cannot be undone", abort=True
        )
    try:
        result = erase_supporter(supporter, actor="cli")
    except ErasureRefused as exc:
        raise click.ClickException(str(exc)) from exc
    commit()
    click.echo(result.summary())
