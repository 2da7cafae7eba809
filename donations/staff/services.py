"""Staff accounts, sign-in, sessions and the audit log.

Functions here flush and never commit: the request (or CLI command)
commits once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import has_request_context, request
from sqlalchemy import func, select, update

from donations.db import db, utcnow
from donations.money import Money
from donations.staff.models import AuditEntry, Role, StaffSession, StaffUser

log = logging.getLogger(__name__)

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# last_seen_at is written at most this often, not on every click.
TOUCH_INTERVAL = timedelta(seconds=60)
MIN_PASSWORD_LENGTH = 12
TOTP_ISSUER = "Donations staff"
# Where donations.staff.auth leaves the signed-in StaffUser of a request.
STAFF_ENVIRON_KEY = "donations.staff"

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a wrong address costs the
# same time as a wrong password and does not reveal which staff exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class StaffError(ValueError):
    """A staff account request that cannot be carried out; the message says why."""


# -- the audit log -------------------------------------------------------


def audit(
    action: str,
    /,
    *,
    supporter_id: int | None = None,
    target: str | None = None,
    staff: StaffUser | None = None,
    actor: str | None = None,
    **details: Any,
) -> AuditEntry:
    """Append one entry to the audit log (flushes; the caller commits).

    ``action`` is a dotted name such as ``"refund.created"`` or
    ``"export.downloaded"``. The actor is ``staff``, else the signed-in
    staff member of this request; ``actor`` names who it was when there is
    no account (a failed login for an unknown email). ``supporter_id`` puts
    the entry on that supporter's timeline; ``target`` names the object
    (``"donation:42"``). Everything else goes into ``details`` as JSON:
    ``Money`` becomes ``{"amount": minor units, "currency": ...}``, dates
    become ISO strings.
    """
    who = staff if staff is not None else _request_staff()
    entry = AuditEntry(
        action=action,
        staff_id=who.id if who is not None else None,
        actor=actor if actor is not None else _actor_name(who),
        supporter_id=supporter_id,
        target=target,
        details={key: _jsonable(value) for key, value in details.items()},
        ip=_client_ip(),
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def _actor_name(staff: StaffUser | None) -> str:
    if staff is not None:
        return staff.email
    # Outside a request it was a shell command (the CLI) or a task.
    return "" if has_request_context() else "cli"


def _request_staff() -> StaffUser | None:
    if has_request_context():
        staff: StaffUser | None = request.environ.get(STAFF_ENVIRON_KEY)
        return staff
    return None


def _client_ip() -> str | None:
    return request.remote_addr if has_request_context() else None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Money):
        return {"amount": value.amount, "currency": value.currency}
    if isinstance(value, StrEnum | Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def audit_page(page: int, per_page: int = 50) -> tuple[list[AuditEntry], int]:
    """One page of the audit log, newest first, and the number of pages."""
    total = db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    entries = db.session.scalars(
        select(AuditEntry)
        .order_by(AuditEntry.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(entries), pages


# -- accounts -------------------------------------------------------------


def normalise_email(email: str) -> str:
    """The address as validated (raises StaffError with a readable reason)."""
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise StaffError(f"{email!r} is not a valid email address: {exc}") from exc


def find_staff(email: str) -> StaffUser | None:
    return db.session.scalar(select(StaffUser).where(StaffUser.email_key == email.strip().lower()))


def create_staff(email: str, role: Role | str, password: str) -> StaffUser:
    """A new staff account; they enrol their second factor at first login."""
    address = normalise_email(email)
    try:
        role = Role(role)
    except ValueError as exc:
        choices = ", ".join(r.value for r in Role)
        raise StaffError(f"{role!r} is not a role; choose one of {choices}") from exc
    check_password_strength(password)
    if find_staff(address) is not None:
        raise StaffError(f"a staff account for {address} already exists")
    staff = StaffUser(
        email=address,
        email_key=address.lower(),
        password_hash=_hasher.hash(password),
        role=role,
    )
    db.session.add(staff)
    db.session.flush()
    audit("staff.created", target=f"staff:{staff.id}", email=address, role=role)
    return staff


def change_password(staff: StaffUser, password: str) -> None:
    """A new password; every open session of the account ends."""
    check_password_strength(password)
    staff.password_hash = _hasher.hash(password)
    end_all_sessions(staff, "password_changed")
    db.session.flush()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if password.strip() != password:
        raise StaffError("the password must not start or end with spaces")


def set_role(staff: StaffUser, role: Role) -> None:
    previous = staff.role
    staff.role = role
    audit(
        "staff.role_changed",
        target=f"staff:{staff.id}",
        email=staff.email,
        before=previous,
        after=role,
    )
    db.session.flush()


def set_active(staff: StaffUser, active: bool) -> None:
    staff.active = active
    if not active:
        end_all_sessions(staff, "deactivated")
    audit(
        "staff.activated" if active else "staff.deactivated",
        target=f"staff:{staff.id}",
        email=staff.email,
    )
    db.session.flush()


def unlock(staff: StaffUser) -> None:
    staff.failed_logins = 0
    staff.locked_until = None
    audit("staff.unlocked", target=f"staff:{staff.id}", email=staff.email)
    db.session.flush()


def reset_second_factor(staff: StaffUser) -> None:
    """Forget the TOTP secret: they enrol a new one at their next login."""
    staff.totp_secret = None
    staff.totp_enrolled_at = None
    staff.totp_last_step = None
    end_all_sessions(staff, "2fa_reset")
    audit("staff.2fa_reset", target=f"staff:{staff.id}", email=staff.email)
    db.session.flush()


def list_staff() -> list[StaffUser]:
    return list(db.session.scalars(select(StaffUser).order_by(StaffUser.email_key)))


# -- signing in -----------------------------------------------------------


class LoginOutcome(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    LOCKED = "locked"


@dataclass(frozen=True)
class PasswordCheck:
    outcome: LoginOutcome
    staff: StaffUser | None = None


def is_locked(staff: StaffUser, now: datetime | None = None) -> bool:
    return staff.locked_until is not None and staff.locked_until > (now or utcnow())


def check_password(email: str, password: str) -> PasswordCheck:
    """The first factor. Failures count towards the account's lockout."""
    staff = find_staff(email)
    if staff is None or not staff.active:
        _verify(_DUMMY_HASH, password)
        audit(
            "login.failed",
            actor=email.strip()[:320],
            staff=staff,
            reason="unknown_email" if staff is None else "inactive",
        )
        return PasswordCheck(LoginOutcome.BAD_CREDENTIALS)
    if is_locked(staff):
        audit("login.failed", staff=staff, reason="locked")
        return PasswordCheck(LoginOutcome.LOCKED, staff)
    if not _verify(staff.password_hash, password):
        locked = record_failure(staff)
        audit("login.failed", staff=staff, reason="password", locked=locked)
        return PasswordCheck(LoginOutcome.LOCKED if locked else LoginOutcome.BAD_CREDENTIALS, staff)
    if _hasher.check_needs_rehash(staff.password_hash):
        # argon2 parameters were raised since this hash was made.
        staff.password_hash = _hasher.hash(password)
    db.session.flush()
    return PasswordCheck(LoginOutcome.OK, staff)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def record_failure(staff: StaffUser) -> bool:
    """Count one failed attempt; True if this one locked the account."""
    # An UPDATE with an expression, so parallel attempts cannot both read 4.
    db.session.execute(
        update(StaffUser)
        .where(StaffUser.id == staff.id)
        .values(failed_logins=StaffUser.failed_logins + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(staff)
    if staff.failed_logins >= MAX_FAILED_LOGINS:
        staff.failed_logins = 0
        staff.locked_until = utcnow() + LOCKOUT
        db.session.flush()
        audit(
            "staff.locked",
            staff=staff,
            target=f"staff:{staff.id}",
            minutes=int(LOCKOUT.total_seconds() // 60),
        )
        return True
    return False


def new_totp_secret(staff: StaffUser) -> str:
    """The secret to enrol (kept until confirmed, so a reload shows the same code)."""
    if staff.totp_secret is None or staff.totp_enrolled_at is not None:
        staff.totp_secret = pyotp.random_base32()
        staff.totp_enrolled_at = None
        staff.totp_last_step = None
        db.session.flush()
    return staff.totp_secret


def totp_uri(staff: StaffUser) -> str:
    assert staff.totp_secret is not None
    return pyotp.TOTP(staff.totp_secret).provisioning_uri(name=staff.email, issuer_name=TOTP_ISSUER)


def check_totp(staff: StaffUser, code: str, now: datetime | None = None) -> bool:
    """The second factor (RFC 6238), one step of clock drift either way.

    A code is accepted only for a time step later than the last accepted
    one, so a code seen over a shoulder cannot be used again. Failures count
    towards the lockout like wrong passwords.
    """
    if staff.totp_secret is None or is_locked(staff):
        return False
    code = "".join(code.split())
    moment = now or utcnow()
    totp = pyotp.TOTP(staff.totp_secret)
    current = totp.timecode(moment)
    accepted: int | None = None
    if len(code) == totp.digits and code.isdigit():
        for step in (current - 1, current, current + 1):
            if hmac.compare_digest(totp.generate_otp(step), code):
                accepted = step
                break
    if accepted is not None and (staff.totp_last_step is None or accepted > staff.totp_last_step):
        # Compare-and-set, so two requests racing with one code cannot both win.
        result = db.session.execute(
            update(StaffUser)
            .where(
                StaffUser.id == staff.id,
                (StaffUser.totp_last_step.is_(None)) | (StaffUser.totp_last_step < accepted),
            )
            .values(totp_last_step=accepted)
            .execution_options(synchronize_session=False)
        )
        db.session.refresh(staff)
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return True
    locked = record_failure(staff)
    audit(
        "login.failed",
        staff=staff,
        reason="totp_replayed" if accepted is not None else "totp",
        locked=locked,
    )
    return False


# -- sessions -------------------------------------------------------------


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(staff: StaffUser, *, enrolled: bool = False) -> str:
    """Both factors passed: a new server-side session; returns the cookie token."""
    now = utcnow()
    if enrolled:
        staff.totp_enrolled_at = now
    staff.failed_logins = 0
    staff.locked_until = None
    staff.last_login_at = now
    token = secrets.token_urlsafe(32)
    db.session.add(
        StaffSession(
            token_hash=_hash_token(token),
            staff=staff,
            created_at=now,
            last_seen_at=now,
            ip=_client_ip(),
            user_agent=(request.user_agent.string[:300] if has_request_context() else None),
        )
    )
    db.session.flush()
    audit("login.succeeded", staff=staff, enrolled_2fa=enrolled)
    return token


def resume_session(token: str, now: datetime | None = None) -> StaffSession | None:
    """The live session for this cookie token, or None (ended or timed out)."""
    now = now or utcnow()
    row = db.session.scalar(
        select(StaffSession).where(StaffSession.token_hash == _hash_token(token))
    )
    if row is None or row.ended_at is not None:
        return None
    if not row.staff.active:
        end_session(row, "deactivated", now)
        return None
    if now - row.created_at > ABSOLUTE_TIMEOUT:
        end_session(row, "absolute_timeout", now)
        return None
    if now - row.last_seen_at > IDLE_TIMEOUT:
        end_session(row, "idle_timeout", now)
        return None
    if now - row.last_seen_at > TOUCH_INTERVAL:
        row.last_seen_at = now
    return row


def end_session(row: StaffSession, reason: str, now: datetime | None = None) -> None:
    if row.ended_at is None:
        row.ended_at = now or utcnow()
        row.end_reason = reason
        db.session.flush()
        if reason != "logout":
            audit("session.ended", staff=row.staff, reason=reason, session=row.id)


def logout(token: str) -> None:
    row = db.session.scalar(
        select(StaffSession).where(StaffSession.token_hash == _hash_token(token))
    )
    if row is not None and row.ended_at is None:
        end_session(row, "logout")
        audit("logout", staff=row.staff, session=row.id)


def end_all_sessions(staff: StaffUser, reason: str) -> None:
    for row in db.session.scalars(
        select(StaffSession).where(
            StaffSession.staff_id == staff.id, StaffSession.ended_at.is_(None)
        )
    ):
        end_session(row, reason)
