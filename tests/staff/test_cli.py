"""`flask --app wsgi staff create EMAIL --role ROLE` and friends."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from donations.db import db
from donations.staff.models import AuditEntry, Role, StaffUser
from tests.staff.conftest import PASSWORD


def count_staff() -> int:
    return db.session.scalar(select(func.count()).select_from(StaffUser)) or 0


def test_create_with_password_from_environment(app, ctx) -> None:
    result = app.test_cli_runner().invoke(
        args=["staff", "create", "Fin@Newsroom.org", "--role", "finance"],
        env={"STAFF_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 0, result.output
    staff = db.session.scalar(select(StaffUser))
    assert (staff.email, staff.email_key, staff.role) == (
        "Fin@newsroom.org",
        "fin@newsroom.org",
        Role.FINANCE,
    )
    assert staff.password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(staff.password_hash, PASSWORD)
    assert staff.totp_enrolled_at is None
    entry = db.session.scalar(select(AuditEntry))
    assert (entry.action, entry.actor, entry.details["role"]) == ("staff.created", "cli", "finance")


def test_create_prompts_for_the_password_twice(app, ctx, monkeypatch) -> None:
    monkeypatch.delenv("STAFF_PASSWORD", raising=False)
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["staff", "create", "admin@newsroom.org", "--role", "admin"],
        input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output.lower() or "don't match" in result.output.lower()
    assert db.session.scalar(select(StaffUser.role)) is Role.ADMIN


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["staff", "create", "x@newsroom.org", "--role", "owner"], "owner"),
        (["staff", "create", "not an email", "--role", "viewer"], "not a valid email"),
        (["staff", "create", "x@newsroom.org"], "--role"),
    ],
)
def test_bad_input_is_refused_and_creates_nothing(app, ctx, args, message) -> None:
    result = app.test_cli_runner().invoke(args=args, env={"STAFF_PASSWORD": PASSWORD})
    assert result.exit_code != 0
    assert message in result.output
    assert count_staff() == 0


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("password1234", "list of common and breached passwords"),
        ("qwertyuiop123", "list of common and breached passwords"),
        ("iloveyou2024!", "too easy to guess"),
        ("aaaaaaaaaaaaaaaa", "too easy to guess"),
        ("Password2024", "too easy to guess"),
        ("1qaz2wsx3edc", "list of common and breached passwords"),
    ],
)
def test_common_breached_and_guessable_passwords_are_refused(
    app, ctx, make_staff, password, message
) -> None:
    runner = app.test_cli_runner()
    refused = runner.invoke(
        args=["staff", "create", "editor@newsroom.org", "--role", "viewer"],
        env={"STAFF_PASSWORD": password},
    )
    assert refused.exit_code != 0
    assert message in refused.output
    assert count_staff() == 0
    staff = make_staff(Role.VIEWER)
    changed = runner.invoke(
        args=["staff", "set-password", staff.email], env={"STAFF_PASSWORD": password}
    )
    assert changed.exit_code != 0
    assert message in changed.output


def test_short_password_and_duplicates_are_refused(app, ctx) -> None:
    runner = app.test_cli_runner()
    short = runner.invoke(
        args=["staff", "create", "a@newsroom.org", "--role", "viewer"],
        env={"STAFF_PASSWORD": "short"},
    )
    assert short.exit_code != 0
    assert "at least 12" in short.output
    assert count_staff() == 0
    ok = runner.invoke(
        args=["staff", "create", "a@newsroom.org", "--role", "viewer"],
        env={"STAFF_PASSWORD": PASSWORD},
    )
    assert ok.exit_code == 0
    again = runner.invoke(
        args=["staff", "create", "A@NEWSROOM.org", "--role", "admin"],
        env={"STAFF_PASSWORD": PASSWORD},
    )
    assert again.exit_code != 0
    assert "already exists" in again.output
    assert count_staff() == 1


def test_unlock_and_reset_2fa(app, ctx, make_staff) -> None:
    from donations.staff.models import LoginThrottle
    from donations.staff.services import record_login_failure

    staff = make_staff(Role.VIEWER)
    for _ in range(12):
        record_login_failure(staff.email, "192.0.2.7")
    record_login_failure("someone.else@newsroom.org", "192.0.2.7")
    db.session.commit()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["staff", "unlock", staff.email]).exit_code == 0
    assert runner.invoke(args=["staff", "reset-2fa", staff.email]).exit_code == 0
    db.session.expire_all()
    row = db.session.get(StaffUser, staff.id)
    assert (row.totp_secret, row.totp_enrolled_at) == (None, None)
    # The account's throttles are gone; the address's and the other account's stay.
    assert sorted(db.session.scalars(select(LoginThrottle.scope))) == [
        "account",
        "address",
        "pair",
    ]
    missing = runner.invoke(args=["staff", "unlock", "nobody@newsroom.org"])
    assert missing.exit_code != 0
    assert "no staff account" in missing.output
