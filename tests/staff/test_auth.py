"""Signing in with a password and TOTP, throttling, sessions and signing out."""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from donations.db import commit, db, utcnow
from donations.staff.auth import SESSION_KEY
from donations.staff.models import (
    AuditEntry,
    LoginThrottle,
    Role,
    StaffLoginChallenge,
    StaffSession,
    StaffUser,
)
from donations.staff.services import account_hash, audit, record_login_failure
from tests.harness import change_settings
from tests.staff.conftest import PASSWORD, csrf_token, forget_cached_csrf, totp_now


def post_password(client, email: str, password: str = PASSWORD):
    forget_cached_csrf()
    page = client.get("/staff/login")
    return client.post(
        "/staff/login",
        data={"csrf_token": csrf_token(page.text), "email": email, "password": password},
    )


def post_code(client, code: str, path: str = "/staff/login/code"):
    forget_cached_csrf()
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf_token": csrf_token(page.text), "code": code})


# Where a signed-out request for the dashboard is sent, and a finished login.
SIGNED_OUT = "/staff/login?next=/staff/"
DASHBOARD = "/staff/"


def redirect_of(answer) -> str:
    assert answer.status_code == 302, answer.status_code
    return str(answer.headers["Location"])


def staff_row(staff_id: int) -> StaffUser:
    db.session.expire_all()
    row = db.session.get(StaffUser, staff_id)
    assert row is not None
    return row


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_first_login_enrols_totp_with_qr_and_manual_key(client, ctx, make_staff) -> None:
    staff = make_staff(Role.FINANCE, enrolled=False)
    assert redirect_of(client.get("/staff/")) == SIGNED_OUT
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


def test_login_with_password_and_totp(client, ctx, make_staff) -> None:
    staff = make_staff(Role.VIEWER)
    assert redirect_of(post_password(client, staff.email.upper())) == "/staff/login/code"
    # The password alone is not a session.
    assert redirect_of(client.get("/staff/")) == SIGNED_OUT
    assert post_code(client, "123 45").status_code == 400
    assert redirect_of(post_code(client, totp_now(staff))) == DASHBOARD
    dashboard = client.get("/staff/")
    assert dashboard.status_code == 200
    assert dashboard.headers["Cache-Control"] == "no-store"
    assert staff_row(staff.id).last_login_at is not None


def test_a_totp_code_cannot_be_replayed(app, ctx, make_staff) -> None:
    staff = make_staff(Role.VIEWER)
    code = totp_now(staff)
    first, second = app.test_client(), app.test_client()
    post_password(first, staff.email)
    assert redirect_of(post_code(first, code)) == DASHBOARD
    post_password(second, staff.email)
    replay = post_code(second, code)
    assert replay.status_code == 401
    assert "used already" in replay.text
    # An earlier step than the last accepted one is refused too.
    assert post_code(second, totp_now(staff, -1)).status_code == 401
    assert redirect_of(post_code(second, totp_now(staff, 1))) == DASHBOARD
    reasons = db.session.scalars(
        select(AuditEntry.details).where(AuditEntry.action == "login.failed")
    ).all()
    assert {"reason": "totp_replayed"} in reasons


def test_wrong_password_and_unknown_email_look_the_same(client, ctx, make_staff) -> None:
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


def test_login_is_rate_limited_per_address(app, client, ctx, make_staff, monkeypatch) -> None:
    change_settings(monkeypatch, app, staff_login_rate_limit="3 per minute")
    for _ in range(3):
        assert post_password(client, "a@newsroom.org", "whatever password").status_code == 401
    assert post_password(client, "a@newsroom.org", "whatever password").status_code == 429


def test_session_id_changes_at_login(client, ctx, make_staff) -> None:
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


def test_logout_kills_the_session_on_the_server(app, client, ctx, make_staff) -> None:
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
    assert redirect_of(client.get("/staff/")) == SIGNED_OUT
    # The copied cookie still carries the old token, which the server has ended.
    assert redirect_of(copy.get("/staff/")) == SIGNED_OUT
    row = db.session.scalar(select(StaffSession))
    assert row.end_reason == "logout"
    assert row.ended_at is not None
    assert actions()[-1] == "logout"


def test_logout_needs_the_csrf_token(client, ctx, make_staff) -> None:
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
def test_session_timeouts(signed_in, ctx, created_ago, seen_ago, reason) -> None:
    client, _ = signed_in(Role.VIEWER)
    assert client.get("/staff/").status_code == 200
    row = db.session.scalar(select(StaffSession))
    row.created_at = utcnow() - created_ago
    row.last_seen_at = utcnow() - seen_ago
    commit()
    answer = client.get("/staff/")
    assert answer.status_code == 302
    assert "/staff/login" in answer.headers["Location"]
    # Durable, not rolled back with the request: read in a new transaction.
    db.session.remove()
    assert db.session.scalar(select(StaffSession.end_reason)) == reason
    assert db.session.scalar(select(StaffSession.ended_at)) is not None
    ended = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "session.ended"))
    assert ended is not None
    assert ended.details["reason"] == reason


def test_activity_keeps_the_session_alive(signed_in, ctx) -> None:
    client, _ = signed_in(Role.VIEWER)
    row = db.session.scalar(select(StaffSession))
    row.last_seen_at = utcnow() - timedelta(minutes=29)
    commit()
    assert client.get("/staff/").status_code == 200
    db.session.expire_all()
    assert utcnow() - db.session.scalar(select(StaffSession.last_seen_at)) < timedelta(minutes=1)


def test_deactivated_staff_are_signed_out(signed_in, ctx) -> None:
    client, staff = signed_in(Role.ADMIN)
    staff_row(staff.id).active = False
    commit()
    assert redirect_of(client.get("/staff/")) == SIGNED_OUT


def test_password_is_rehashed_when_parameters_change(
    real_password_cost, client, ctx, make_staff
) -> None:
    staff = make_staff(Role.VIEWER)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    staff_row(staff.id).password_hash = weak
    commit()
    assert redirect_of(post_password(client, staff.email)) == "/staff/login/code"
    rehashed = staff_row(staff.id).password_hash
    assert rehashed != weak
    assert not PasswordHasher().check_needs_rehash(rehashed)


def test_next_is_followed_only_within_the_back_office(client, ctx, make_staff) -> None:
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


def test_audit_log_is_append_only(app, ctx) -> None:
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


def _throttle_rows() -> list[LoginThrottle]:
    db.session.expire_all()
    return list(db.session.scalars(select(LoginThrottle).order_by(LoginThrottle.scope)))


def _end_waits() -> None:
    db.session.execute(update(LoginThrottle).values(blocked_until=utcnow() - timedelta(seconds=1)))
    commit()


def _same_page(html: str, email: str) -> str:
    """The answer without what differs by design: the CSRF token and the address typed back."""
    html = re.sub(r'name="csrf_token" type="hidden" value="[^"]+"', "", html)
    html = re.sub(r"try again in \d+ s", "try again in N s", html)
    return html.replace(email, "EMAIL")


@pytest.fixture
def slow_waits(monkeypatch):
    """Waits of a minute, so that none runs out while a test (on a busy machine) looks at it."""
    from donations.staff import services

    for scope, rule in list(services.THROTTLE_RULES.items()):
        monkeypatch.setitem(services.THROTTLE_RULES, scope, services.ThrottleRule(rule.free, 60))


def from_address(app, ip: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def test_failures_slow_down_any_address_typed_alike(
    app, ctx, make_staff, slow_waits, monkeypatch
) -> None:
    change_settings(monkeypatch, app, staff_login_rate_limit="1000 per minute")
    staff = make_staff(Role.ADMIN)
    answers: dict[str, list] = {}
    for email in (staff.email, "nobody@newsroom.org"):
        client = from_address(app, "203.0.113.9")
        answers[email] = [post_password(client, email, "wrong password!!") for _ in range(4)]
        # Waiting: even the right password is not looked at now.
        answers[email].append(post_password(client, email))
    real, unknown = answers[staff.email], answers["nobody@newsroom.org"]
    assert [a.status_code for a in real] == [401, 401, 401, 429, 429]
    assert [a.status_code for a in unknown] == [401, 401, 401, 429, 429]
    assert "The email or password is not correct." in real[0].text
    assert "Too many attempts: try again in 60 s." in real[3].text
    for mine, theirs in zip(real, unknown, strict=True):
        assert _same_page(mine.text, staff.email) == _same_page(theirs.text, "nobody@newsroom.org")
    alerts = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "login.throttled").order_by(AuditEntry.id)
    ).all()
    assert [(a.actor, a.details["scope"], a.details["wait_seconds"]) for a in alerts] == [
        (staff.email, "pair", 60),
        ("nobody@newsroom.org", "pair", 60),
    ]
    # The staff member at their own address is not held back by it...
    elsewhere = from_address(app, "198.51.100.4")
    assert redirect_of(post_password(elsewhere, staff.email)) == "/staff/login/code"
    # ... and once the wait is over, the right password works from there too.
    _end_waits()
    client = from_address(app, "203.0.113.9")
    assert redirect_of(post_password(client, staff.email)) == "/staff/login/code"
    assert redirect_of(post_code(client, totp_now(staff))) == DASHBOARD
    # A full sign-in forgets this account's failures.
    assert all(row.account_hash != account_hash(staff.email) for row in _throttle_rows())


def test_waits_double_and_stop_at_fifteen_minutes(ctx) -> None:
    waits = [record_login_failure("someone@newsroom.org", "192.0.2.1") for _ in range(16)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3:8] == [2, 4, 8, 16, 32]
    assert waits[-1] == 900


def test_a_known_browser_is_not_kept_out_by_failures_from_elsewhere(
    app, ctx, make_staff, slow_waits, monkeypatch
) -> None:
    change_settings(monkeypatch, app, staff_login_rate_limit="1000 per minute")
    staff = make_staff(Role.ADMIN)
    own = from_address(app, "198.51.100.4")
    assert redirect_of(post_password(own, staff.email)) == "/staff/login/code"
    assert redirect_of(post_code(own, totp_now(staff))) == DASHBOARD
    assert own.get_cookie("staff_device", path="/staff") is not None
    forget_cached_csrf()
    page = own.get("/staff/")
    own.post("/staff/logout", data={"csrf_token": csrf_token(page.text)})
    # Someone tries the address from many addresses (each one free per address).
    for i in range(11):
        post_password(from_address(app, f"203.0.113.{i + 1}"), staff.email, "guess password!")
    # A new browser, even from the staff member's address, waits ...
    assert post_password(from_address(app, "198.51.100.4"), staff.email).status_code == 429
    # ... their own browser does not.
    assert redirect_of(post_password(own, staff.email)) == "/staff/login/code"
    assert redirect_of(post_code(own, totp_now(staff, 1))) == DASHBOARD
    # Their sign-in forgot the failures; the guessing goes on. A forged mark counts for nothing.
    for i in range(11):
        post_password(from_address(app, f"203.0.113.{i + 20}"), staff.email, "guess password!")
    other = from_address(app, "198.51.100.5")
    other.set_cookie(
        "staff_device", own.get_cookie("staff_device", path="/staff").value + "x", path="/staff"
    )
    assert post_password(other, staff.email).status_code == 429


def test_unknown_wrong_and_waiting_cost_the_same(
    real_password_cost, app, ctx, make_staff, monkeypatch
) -> None:
    """One argon2 verification on every path; medians within a factor (loose: a shared machine)."""
    change_settings(monkeypatch, app, staff_login_rate_limit="10000 per minute")
    staff = make_staff(Role.FINANCE)
    waiting = make_staff(Role.VIEWER, "waiting@newsroom.org")
    for i in range(12):
        record_login_failure(waiting.email, f"192.0.2.{i + 1}")
    db.session.execute(update(LoginThrottle).values(blocked_until=utcnow() + timedelta(hours=1)))
    commit()
    timings: dict[str, list[float]] = {"unknown": [], "wrong": [], "waiting": []}
    bodies: dict[str, set[str]] = {key: set() for key in timings}
    for i in range(9):
        for case in timings:
            client = from_address(app, f"198.51.100.{i * 3 + len(timings[case]) + 10}")
            email = {
                "unknown": f"nobody{i}@newsroom.org",
                "wrong": staff.email,
                "waiting": waiting.email,
            }[case]
            forget_cached_csrf()
            token = csrf_token(client.get("/staff/login").text)
            started = time.perf_counter()
            answer = client.post(
                "/staff/login",
                data={"csrf_token": token, "email": email, "password": "not the password!"},
            )
            timings[case].append(time.perf_counter() - started)
            bodies[case].add(_same_page(answer.text, email))
    medians = {case: statistics.median(values) for case, values in timings.items()}
    print("login medians (ms):", {k: round(v * 1000, 1) for k, v in medians.items()})
    assert max(medians.values()) / min(medians.values()) < 1.6, medians
    hashed = PasswordHasher().hash("x")
    verifies = []
    for _ in range(3):
        started = time.perf_counter()
        PasswordHasher().verify(hashed, "x")
        verifies.append(time.perf_counter() - started)
    one_verify = statistics.median(verifies)
    assert min(medians.values()) > 0.5 * one_verify, (medians, one_verify)
    assert len(bodies["unknown"] | bodies["wrong"]) == 1  # one answer for both


def test_wrong_codes_slow_down_and_burn_the_pending_step(
    client, ctx, make_staff, slow_waits
) -> None:
    staff = make_staff(Role.FINANCE)
    post_password(client, staff.email)
    for _ in range(3):
        assert post_code(client, "000000").status_code == 401
    fourth = post_code(client, "000000")
    assert fourth.status_code == 429
    assert "try again in 60 s" in fourth.text
    # Waiting: not even the right code is looked at.
    assert post_code(client, totp_now(staff)).status_code == 429
    _end_waits()
    last = post_code(client, "000000")
    assert last.status_code == 302
    assert last.headers["Location"].endswith("/staff/login")
    # The half-signed-in state is gone; a valid code does not get in now.
    assert redirect_of(client.get("/staff/login/code")) == "/staff/login"
    assert redirect_of(client.get("/staff/")) == SIGNED_OUT


def test_the_pending_step_is_single_use_short_and_bound_to_the_browser(
    app, ctx, make_staff
) -> None:
    staff = make_staff(Role.FINANCE)
    first = app.test_client()
    post_password(first, staff.email)
    pending_cookie = first.get_cookie("session").value
    # Another browser with a copy of the cookie: not answerable there.
    elsewhere = app.test_client()
    elsewhere.set_cookie("session", pending_cookie)
    assert (
        elsewhere.get("/staff/login/code", headers={"User-Agent": "Other/1.0"}).status_code == 302
    )
    assert redirect_of(post_code(first, totp_now(staff))) == DASHBOARD
    # The copy, replayed after the sign-in, with a fresh code: refused.
    replay = app.test_client()
    replay.set_cookie("session", pending_cookie)
    assert redirect_of(replay.get("/staff/login/code")) == "/staff/login"
    assert redirect_of(replay.get("/staff/")) == SIGNED_OUT
    assert db.session.scalar(select(func.count()).select_from(StaffSession)) == 1
    # A pending step older than five minutes is gone too.
    late = app.test_client()
    post_password(late, staff.email)
    db.session.execute(
        update(StaffLoginChallenge).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    commit()
    assert redirect_of(late.get("/staff/login/code")) == "/staff/login"
