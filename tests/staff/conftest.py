"""Staff accounts and signed-in clients for the back-office tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from flask import Flask, g, has_app_context
from flask.testing import FlaskClient

from donations.db import commit, db, utcnow
from donations.staff.auth import SESSION_KEY
from donations.staff.models import Role, StaffUser
from donations.staff.services import create_staff, start_session

PASSWORD = "correct horse battery staple"


def forget_cached_csrf() -> None:
    """Flask-WTF caches the token on ``g``; with the test's app context pushed,
    ``g`` outlives a request, so a second client would get the first one's token."""
    if has_app_context():
        g.pop("csrf_token", None)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'type="hidden" name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token in the page"
    return match.group(1)


def totp_now(staff: StaffUser, offset_steps: int = 0) -> str:
    assert staff.totp_secret
    totp = pyotp.TOTP(staff.totp_secret)
    return totp.at(utcnow(), counter_offset=offset_steps)


@pytest.fixture
def make_staff(app: Flask) -> Callable[..., StaffUser]:
    """A committed staff account; ``enrolled`` gives it a confirmed TOTP secret."""

    def make(
        role: Role = Role.VIEWER,
        email: str | None = None,
        *,
        enrolled: bool = True,
        password: str = PASSWORD,
    ) -> StaffUser:
        with app.app_context():
            staff = create_staff(email or f"{role.value}@newsroom.org", role, password)
            if enrolled:
                staff.totp_secret = pyotp.random_base32()
                staff.totp_enrolled_at = utcnow()
            commit()
            db.session.refresh(staff)
            db.session.expunge(staff)
            return staff

    return make


def sign_in(app: Flask, client: FlaskClient, staff: StaffUser) -> str:
    """A server-side session for ``staff`` in this client, without the login pages."""
    with app.test_request_context():
        token = start_session(db.session.get(StaffUser, staff.id))
        commit()
    with client.session_transaction() as session:
        session[SESSION_KEY] = token
    return token


@pytest.fixture
def signed_in(app: Flask, make_staff: Callable[..., StaffUser]) -> Callable[..., Any]:
    def make(role: Role) -> tuple[FlaskClient, StaffUser]:
        client = app.test_client()
        staff = make_staff(role)
        sign_in(app, client, staff)
        return client, staff

    return make
