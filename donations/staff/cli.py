"""`flask --app wsgi staff ...`: staff accounts from the shell."""

from __future__ import annotations

import os

import click
from flask.cli import AppGroup

from donations.db import commit, db
from donations.staff.models import Role, StaffUser
from donations.staff.services import (
    StaffError,
    audit,
    change_password,
    check_password_strength,
    create_staff,
    find_staff,
    normalise_email,
    reset_second_factor,
    unlock,
)

staff_cli = AppGroup("staff", help="Back-office staff accounts.")

ROLE_CHOICE = click.Choice([r.value for r in Role], case_sensitive=False)


def _password() -> str:
    from_env = os.environ.get("STAFF_PASSWORD")
    if from_env is not None:
        return from_env
    password: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password"
    )
    return password


@staff_cli.command("create")
@click.argument("email")
@click.option("--role", required=True, type=ROLE_CHOICE, help="viewer, finance or admin.")
def create(email: str, role: str) -> None:
    """Create a staff account (password prompted, or from STAFF_PASSWORD).

    The second factor is enrolled at the first login.
    """
    try:
        address = normalise_email(email)
        if find_staff(address) is not None:
            raise StaffError(f"a staff account for {address} already exists")
        password = _password()
        check_password_strength(password, (address,))
        staff = create_staff(address, Role(role.lower()), password)
    except StaffError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    commit()
    click.echo(
        f"Created {staff.role} account {staff.email}; they set up two-factor sign-in "
        "at their first login."
    )


def _existing(email: str) -> StaffUser:
    staff = find_staff(email)
    if staff is None:
        raise click.ClickException(f"there is no staff account for {email}")
    return staff


@staff_cli.command("unlock")
@click.argument("email")
def unlock_command(email: str) -> None:
    """Forget the failed sign-ins that typed this address (their waits end)."""
    staff = _existing(email)
    unlock(staff)
    commit()
    click.echo(f"Failed sign-ins of {staff.email} forgotten.")


@staff_cli.command("reset-2fa")
@click.argument("email")
def reset_2fa_command(email: str) -> None:
    """Forget the account's authenticator: a new one is enrolled at the next login."""
    staff = _existing(email)
    reset_second_factor(staff)
    commit()
    click.echo(f"{staff.email} will set up two-factor sign-in again at their next login.")


@staff_cli.command("set-password")
@click.argument("email")
def set_password_command(email: str) -> None:
    """Set a new password (prompted, or from STAFF_PASSWORD); ends their sessions."""
    staff = _existing(email)
    try:
        change_password(staff, _password())
    except StaffError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    audit("staff.password_set", target=f"staff:{staff.id}", email=staff.email)
    commit()
    click.echo(f"New password set for {staff.email}.")
