"""Signing in with a password and TOTP, lockout, sessions and signing out."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from donations.db import commit, db, utcnow
from donations.staff.auth import SESSION_KEY
from donations.staff.models import AuditEntry, Role, StaffSession, StaffUser
from donations.staff.services import audit
from tests.staff.conftest import PASSWORD, csrf_token, forget_cached_csrf, totp_now


def post_password(client, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    forget_cached_csrf()
    page = client.get("/staff/login")
    return client.post(
        "/staff/login",
        data={"csrf_token": csrf_token(page.text), "email": email, "password": password},
    )


def post_code(client, code: str, path: str = "/staff/login/code"):  # type: ignore[no-untyped-def]
    forget_cached_csrf()
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf_token": csrf_token(page.text), "code": code})


def staff_row(staff_id: int) -> StaffUser:
    db.session.expire_all()
    row = db.session.get(StaffUser, staff_id)
    assert row is not None
    return row


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_first_login_enrols_totp_with_qr_and_manual_key(client, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.FINANCE, enrolled=False)
    assert client.get("/staff/").status_code == 302
    answer = post_password(client, staff.email)
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/staff/login/enrol")
    page = client.get("/staff/login/enrol")
    assert re.search(r'<img class="qr" src="data:image/svg\+xml;base64,[A-Za-z0-9+/=]+"', page.text)
    key = re.search(r'<code id="manual-key" class="key">([A-Z2-7 ]+)</code>', page.text).group(1)
    secret = key.replace(" ", "")
    assert staff_row(staff.id).totp_secret == secret
    # Reloading shows the same secret until it is confirmed.
    assert key in client.get("/staff/login/enrol").text

    wrong = post_code(client, "000000", "/staff/login/enrol")
    assert wrong.status_code == 401
    done = post_code(client, pyotp.TOTP(secret).now(), "/staff/login/enrol")
    assert done.status_code == 302
    assert done.headers["Location"].endswith("/staff/")
    assert staff_row(staff.id).totp_enrolled_at is not None
    assert client.get("/staff/").status_code == 200
    assert actions()[-1] == "login.succeeded"
    # From now on the code is asked for, not enrolment.
    other = client.application.test_client()
    assert post_password(other, staff.email).headers["Location"].endswith("/staff/login/code")
    assert other.get("/staff/login/enrol").headers["Location"].endswith("/staff/login/code")


def test_login_with_password_and_totp(client, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.VIEWER)
    assert post_password(client, staff.email.upper()).status_code == 302
    # The password alone is not a session.
    assert client.get("/staff/").status_code == 302
    assert post_code(client, "123 45").status_code == 400
    assert post_code(client, totp_now(staff)).status_code == 302
    dashboard = client.get("/staff/")
    assert dashboard.status_code == 200
    assert dashboard.headers["Cache-Control"] == "no-store"
    assert staff_row(staff.id).last_login_at is not None


def test_a_totp_code_cannot_be_replayed(app, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.VIEWER)
    code = totp_now(staff)
    first, second = app.test_client(), app.test_client()
    post_password(first, staff.email)
    assert post_code(first, code).status_code == 302
    post_password(second, staff.email)
    replay = post_code(second, code)
    assert replay.status_code == 401
    assert "used already" in replay.text
    # An earlier step than the last accepted one is refused too.
    assert post_code(second, totp_now(staff, -1)).status_code == 401
    assert post_code(second, totp_now(staff, 1)).status_code == 302
    reasons = db.session.scalars(
        select(AuditEntry.details).where(AuditEntry.action == "login.failed")
    ).all()
    assert {"reason": "totp_replayed", "locked": False} in reasons


def test_wrong_password_and_unknown_email_look_the_same(client, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.VIEWER)
    wrong = post_password(client, staff.email, "not the password!")
    unknown = post_password(client, "nobody@newsroom.org")
    assert wrong.status_code == unknown.status_code == 401
    assert "The email or password is not correct." in wrong.text
    assert "The email or password is not correct." in unknown.text
    assert actions() == ["staff.created", "login.failed", "login.failed"]
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "login.failed")
    ).all()
    assert [(e.actor, e.details["reason"]) for e in entries] == [
        (staff.email, "password"),
        ("nobody@newsroom.org", "unknown_email"),
    ]


def test_lockout_after_five_failures_for_fifteen_minutes(client, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.ADMIN)
    for _ in range(4):
        assert post_password(client, staff.email, "wrong password!!").status_code == 401
    fifth = post_password(client, staff.email, "wrong password!!")
    assert "locked for 15 minutes" in fifth.text
    row = staff_row(staff.id)
    assert row.locked_until is not None
    assert timedelta(minutes=14) < row.locked_until - utcnow() <= timedelta(minutes=15)
    # Even the right password is refused while locked.
    locked = post_password(client, staff.email)
    assert locked.status_code == 401
    assert "locked" in locked.text
    assert "staff.locked" in actions()

    row.locked_until = utcnow() - timedelta(seconds=1)
    commit()
    assert post_password(client, staff.email).status_code == 302
    assert post_code(client, totp_now(staff)).status_code == 302
    assert staff_row(staff.id).failed_logins == 0


def test_wrong_codes_count_towards_the_lockout(client, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.FINANCE)
    post_password(client, staff.email)
    for _ in range(4):
        assert post_code(client, "000000").status_code == 401
    last = post_code(client, "000000")
    assert last.status_code == 302
    assert last.headers["Location"].endswith("/staff/login")
    assert staff_row(staff.id).locked_until is not None
    # Half-signed-in state is gone; a valid code does not get in now.
    assert client.get("/staff/login/code").status_code == 302


def test_login_is_rate_limited_per_address(app, client, ctx, make_staff, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(app.config, "STAFF_LOGIN_RATE_LIMIT", "3 per minute")
    for _ in range(3):
        assert post_password(client, "a@newsroom.org", "whatever password").status_code == 401
    assert post_password(client, "a@newsroom.org", "whatever password").status_code == 429


def test_session_id_changes_at_login(client, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.VIEWER)
    with client.session_transaction() as session:
        session[SESSION_KEY] = "planted-by-an-attacker"
        session["other"] = "left over"
    post_password(client, staff.email)
    post_code(client, totp_now(staff))
    with client.session_transaction() as session:
        first = session[SESSION_KEY]
        assert first != "planted-by-an-attacker"
        assert "other" not in session
    post_code_again = client.application.test_client()
    post_password(post_code_again, staff.email)
    post_code(post_code_again, totp_now(staff, 1))
    with post_code_again.session_transaction() as session:
        assert session[SESSION_KEY] != first
    assert db.session.scalar(select(func.count()).select_from(StaffSession)) == 2


def test_logout_kills_the_session_on_the_server(app, client, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.VIEWER)
    post_password(client, staff.email)
    post_code(client, totp_now(staff))
    forget_cached_csrf()
    page = client.get("/staff/")
    cookie = client.get_cookie("session").value
    copy = app.test_client()
    copy.set_cookie("session", cookie)
    assert copy.get("/staff/").status_code == 200

    out = client.post("/staff/logout", data={"csrf_token": csrf_token(page.text)})
    assert out.status_code == 302
    assert out.headers["Location"].endswith("/staff/login")
    assert client.get("/staff/").status_code == 302
    # The copied cookie still carries the old token, which the server has ended.
    assert copy.get("/staff/").status_code == 302
    row = db.session.scalar(select(StaffSession))
    assert row.end_reason == "logout"
    assert row.ended_at is not None
    assert actions()[-1] == "logout"


def test_logout_needs_the_csrf_token(client, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.VIEWER)
    post_password(client, staff.email)
    post_code(client, totp_now(staff))
    assert client.post("/staff/logout").status_code == 400
    assert client.get("/staff/").status_code == 200


@pytest.mark.parametrize(
    ("created_ago", "seen_ago", "reason"),
    [
        (timedelta(hours=1), timedelta(minutes=31), "idle_timeout"),
        (timedelta(hours=12, minutes=1), timedelta(minutes=1), "absolute_timeout"),
    ],
)
def test_session_timeouts(signed_in, ctx, created_ago, seen_ago, reason) -> None:  # type: ignore[no-untyped-def]
    client, _ = signed_in(Role.VIEWER)
    assert client.get("/staff/").status_code == 200
    row = db.session.scalar(select(StaffSession))
    row.created_at = utcnow() - created_ago
    row.last_seen_at = utcnow() - seen_ago
    commit()
    answer = client.get("/staff/supporters")
    assert answer.status_code == 302
    assert "/staff/login" in answer.headers["Location"]
    db.session.expire_all()
    assert db.session.scalar(select(StaffSession.end_reason)) == reason


def test_activity_keeps_the_session_alive(signed_in, ctx) -> None:  # type: ignore[no-untyped-def]
    client, _ = signed_in(Role.VIEWER)
    row = db.session.scalar(select(StaffSession))
    row.last_seen_at = utcnow() - timedelta(minutes=29)
    commit()
    assert client.get("/staff/").status_code == 200
    db.session.expire_all()
    assert utcnow() - db.session.scalar(select(StaffSession.last_seen_at)) < timedelta(minutes=1)


def test_deactivated_staff_are_signed_out(signed_in, ctx) -> None:  # type: ignore[no-untyped-def]
    client, staff = signed_in(Role.ADMIN)
    staff_row(staff.id).active = False
    commit()
    assert client.get("/staff/").status_code == 302


def test_password_is_rehashed_when_parameters_change(client, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.VIEWER)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    staff_row(staff.id).password_hash = weak
    commit()
    assert post_password(client, staff.email).status_code == 302
    rehashed = staff_row(staff.id).password_hash
    assert rehashed != weak
    assert not PasswordHasher().check_needs_rehash(rehashed)


def test_next_is_followed_only_within_the_back_office(client, ctx, make_staff) -> None:  # type: ignore[no-untyped-def]
    staff = make_staff(Role.VIEWER)
    forget_cached_csrf()
    bounced = client.get("/staff/supporters?q=ada")
    assert "next=/staff/supporters?q%3Dada" in bounced.headers["Location"]
    page = client.get(bounced.headers["Location"])
    client.post(
        bounced.headers["Location"],
        data={"csrf_token": csrf_token(page.text), "email": staff.email, "password": PASSWORD},
    )
    assert (
        post_code(client, totp_now(staff)).headers["Location"].endswith("/staff/supporters?q=ada")
    )

    evil = client.application.test_client()
    forget_cached_csrf()
    page = evil.get("/staff/login?next=//evil.example/")
    evil.post(
        "/staff/login?next=//evil.example/",
        data={"csrf_token": csrf_token(page.text), "email": staff.email, "password": PASSWORD},
    )
    assert post_code(evil, totp_now(staff, 1)).headers["Location"].endswith("/staff/")


def test_audit_log_is_append_only(app, ctx) -> None:  # type: ignore[no-untyped-def]
    entry = audit("test.entry", target="x", amount=5)
    commit()
    entry.action = "changed"
    with pytest.raises(PermissionError):
        db.session.flush()
    db.session.rollback()
    for statement in ("UPDATE audit_entries SET action = 'changed'", "DELETE FROM audit_entries"):
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
    assert db.session.scalar(select(AuditEntry.action)) == "test.entry"
