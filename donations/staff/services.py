"""Staff accounts, sign-in, sessions and the audit log.

Functions here flush and never commit: the request (or CLI command)
commits once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import re
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
from flask import current_app, has_request_context, request
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import delete, func, select, update
from zxcvbn import zxcvbn

from donations.db import db, insert_ignoring_conflicts, spend_once, utcnow
from donations.mail.addresses import normalise_address
from donations.money import Money
from donations.observability import REQUEST_ID
from donations.staff.models import (
    AuditEntry,
    LoginThrottle,
    Role,
    StaffLoginChallenge,
    StaffSession,
    StaffUser,
)

log = logging.getLogger(__name__)

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# last_seen_at is written at most this often, not on every click.
TOUCH_INTERVAL = timedelta(seconds=60)
MIN_PASSWORD_LENGTH = 12
TOTP_ISSUER = "Donations staff"
# Where donations.staff.auth leaves the signed-in StaffUser of a request.
STAFF_ENVIRON_KEY = "donations.staff"

# argon2-cffi's default: RFC 9106's low-memory profile.
_DEFAULT_HASHER = PasswordHasher()


def _hasher() -> PasswordHasher:
    """The argon2 hasher: the default, unless the app was built with a
    ``PASSWORD_HASHER`` (only the tests' app is, to a cheap one: they hash
    hundreds of throwaway passwords). No setting or variable reaches it."""
    hasher = current_app.config.get("PASSWORD_HASHER")
    return hasher if isinstance(hasher, PasswordHasher) else _DEFAULT_HASHER


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Verified against when the email is unknown, so a wrong address costs the
    same time as a wrong password and does not reveal which staff exist.
    Made at first use, not at import: every process and CLI command imports this."""
    return hasher.hash(secrets.token_urlsafe(16))


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
        request_id=REQUEST_ID.get(),
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
    return db.session.scalar(
        select(StaffUser).where(StaffUser.email_key == normalise_address(email))
    )


def create_staff(email: str, role: Role | str, password: str) -> StaffUser:
    """A new staff account; they enrol their second factor at first login."""
    address = normalise_email(email)
    try:
        role = Role(role)
    except ValueError as exc:
        choices = ", ".join(r.value for r in Role)
        raise StaffError(f"{role!r} is not a role; choose one of {choices}") from exc
    check_password_strength(password, (address,))
    if find_staff(address) is not None:
        raise StaffError(f"a staff account for {address} already exists")
    staff = StaffUser(
        email=address,
        email_key=normalise_address(address),
        password_hash=_hasher().hash(password),
        role=role,
    )
    db.session.add(staff)
    db.session.flush()
    audit("staff.created", target=f"staff:{staff.id}", email=address, role=role)
    return staff


def change_password(staff: StaffUser, password: str) -> None:
    """A new password; every open session of the account ends."""
    check_password_strength(password, (staff.email,))
    staff.password_hash = _hasher().hash(password)
    end_all_sessions(staff, "password_changed")
    db.session.flush()


# zxcvbn (Dropbox's estimator, with its bundled list of the 30,000 passwords
# seen most often in breaches, and dictionaries of names and words) must rate
# a password at least this (0-4; 3 is "safely unguessable: moderate
# protection from offline slow-hash scenario"). https://github.com/dwolfhub/zxcvbn-python
MIN_PASSWORD_SCORE = 3
# zxcvbn's work grows quickly with length; beyond this a password is rated on its start.
STRENGTH_CHECKED_LENGTH = 100


def check_password_strength(password: str, user_inputs: tuple[str, ...] = ()) -> None:
    """Refuse short, common, breached or guessable passwords (raises StaffError)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if password.strip() != password:
        raise StaffError("the password must not start or end with spaces")
    inputs = [part for value in user_inputs for part in re.split(r"[@.+_-]", value) if part]
    result = zxcvbn(password[:STRENGTH_CHECKED_LENGTH], user_inputs=[*user_inputs, *inputs])
    whole = [
        match
        for match in result["sequence"]
        if match.get("dictionary_name") == "passwords" and match["token"] == password
    ]
    if whole:
        raise StaffError("this password is on the list of common and breached passwords")
    if result["score"] < MIN_PASSWORD_SCORE:
        hint = result["feedback"].get("warning") or "it is too easy to guess"
        suggestions = " ".join(result["feedback"].get("suggestions") or [])
        raise StaffError(f"this password is too easy to guess: {hint} {suggestions}".strip())


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
    """Forget every failed attempt that typed this account's address (from anywhere)."""
    db.session.execute(
        delete(LoginThrottle).where(LoginThrottle.account_hash == account_hash(staff.email))
    )
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
#
# Nothing a stranger sends can tell which staff exist or keep one out:
# unknown addresses, wrong passwords and throttled keys cost the same argon2
# verification and get the same answers, and failures slow attempts down
# (LoginThrottle) instead of locking an account. A browser that has signed in
# to an account before carries a signed device mark for it
# (https://owasp.org/www-community/Slow_Down_Online_Guessing_Attacks_with_Device_Cookies)
# and is not held back by failures others caused from elsewhere.


class LoginOutcome(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class PasswordCheck:
    outcome: LoginOutcome
    staff: StaffUser | None = None
    # Seconds to wait before the next attempt is looked at (THROTTLED, or the
    # failure that started a wait).
    retry_after: int = 0


@dataclass(frozen=True)
class ThrottleRule:
    free: int  # failures before any wait
    first_wait: int  # seconds after the first failure past the free ones; then doubling


# The same rules whether or not the account exists.
THROTTLE_RULES: dict[str, ThrottleRule] = {
    "pair": ThrottleRule(free=3, first_wait=2),  # one address typed, from one IP
    "account": ThrottleRule(free=10, first_wait=2),  # one address typed, from anywhere
    "address": ThrottleRule(free=20, first_wait=2),  # one IP, whatever was typed
}
MAX_THROTTLE_WAIT = timedelta(minutes=15)
# Failures older than this are forgotten.
THROTTLE_MEMORY = timedelta(hours=24)
DEVICE_MAX_AGE = timedelta(days=90)


def account_hash(email: str) -> str:
    """What throttles and device marks know of a typed address: a hash of its key."""
    return hashlib.sha256(normalise_address(email)[:320].encode()).hexdigest()


def _throttle_keys(email: str, ip: str | None) -> dict[str, tuple[str, str | None]]:
    """scope -> (row key, account hash) for an attempt."""
    account = account_hash(email)
    where = ip or "unknown"
    return {
        "pair": (hashlib.sha256(f"pair:{account}:{where}".encode()).hexdigest(), account),
        "account": (hashlib.sha256(f"account:{account}".encode()).hexdigest(), account),
        "address": (hashlib.sha256(f"address:{where}".encode()).hexdigest(), None),
    }


def _wait_seconds(blocked_until: datetime | None, now: datetime) -> int:
    if blocked_until is None or blocked_until <= now:
        return 0
    return max(1, math.ceil((blocked_until - now).total_seconds()))


def throttle_wait(email: str, ip: str | None, *, trusted_device: bool, now: datetime) -> int:
    """Seconds this attempt must still wait (0: it may be checked)."""
    keys = _throttle_keys(email, ip)
    if trusted_device:
        keys.pop("account")
    rows = db.session.scalars(
        select(LoginThrottle).where(LoginThrottle.key.in_([key for key, _ in keys.values()]))
    ).all()
    return max((_wait_seconds(row.blocked_until, now) for row in rows), default=0)


def record_login_failure(email: str, ip: str | None, now: datetime | None = None) -> int:
    """Count one failure against every key of the attempt; the wait it starts (seconds).

    Each key that passes its free failures waits ``first_wait`` seconds,
    doubled with each further failure, at most MAX_THROTTLE_WAIT; starting
    or lengthening a wait adds a ``login.throttled`` alert to the audit log.
    """
    now = now or utcnow()
    longest = 0
    for scope, (key, account) in _throttle_keys(email, ip).items():
        rule = THROTTLE_RULES[scope]
        # Insert-or-keep, then lock the row: parallel failures neither collide
        # on the key nor lose a count.
        db.session.execute(
            insert_ignoring_conflicts(
                LoginThrottle,
                {
                    "key": key,
                    "scope": scope,
                    "account_hash": account,
                    "failures": 0,
                    "last_failure_at": now,
                },
                ["key"],
            )
        )
        row = db.session.get(LoginThrottle, key, with_for_update=True, populate_existing=True)
        assert row is not None
        if now - row.last_failure_at > THROTTLE_MEMORY:
            row.failures = 0
            row.blocked_until = None
        row.failures = (row.failures or 0) + 1
        row.last_failure_at = now
        past = row.failures - rule.free
        if past > 0:
            wait = min(
                timedelta(seconds=rule.first_wait * 2 ** min(past - 1, 20)), MAX_THROTTLE_WAIT
            )
            row.blocked_until = now + wait
            seconds = int(wait.total_seconds())
            longest = max(longest, seconds)
            audit(
                "login.throttled",
                actor=email.strip()[:320],
                scope=scope,
                failures=row.failures,
                wait_seconds=seconds,
            )
    db.session.flush()
    return longest


def clear_login_failures(email: str, ip: str | None) -> None:
    """A full sign-in: forget the failures of this address typed (from here and anywhere)."""
    keys = _throttle_keys(email, ip)
    db.session.execute(
        delete(LoginThrottle).where(LoginThrottle.key.in_([keys["pair"][0], keys["account"][0]]))
    )


def is_throttled(staff: StaffUser, now: datetime | None = None) -> bool:
    """For the team screen: is anyone's typing of this address being slowed down?"""
    now = now or utcnow()
    return bool(
        db.session.scalar(
            select(func.count())
            .select_from(LoginThrottle)
            .where(
                LoginThrottle.account_hash == account_hash(staff.email),
                LoginThrottle.blocked_until > now,
            )
        )
    )


def check_password(
    email: str, password: str, *, trusted_device: bool = False, now: datetime | None = None
) -> PasswordCheck:
    """The first factor, the same work and answer for every address typed.

    Exactly one argon2 verification happens on every path: against the
    account's hash, or a dummy one when the address is unknown, the account
    inactive or the attempt must wait.
    """
    now = now or utcnow()
    ip = _client_ip()
    staff = find_staff(email)
    wait = throttle_wait(email, ip, trusted_device=trusted_device, now=now)
    if wait:
        _verify(_dummy_hash(_hasher()), password)
        audit("login.failed", actor=email.strip()[:320], reason="throttled", wait_seconds=wait)
        return PasswordCheck(LoginOutcome.THROTTLED, retry_after=wait)
    usable = staff is not None and staff.active
    verified = _verify(staff.password_hash if usable else _dummy_hash(_hasher()), password)  # type: ignore[union-attr]
    if not (usable and verified):
        reason = "unknown_email" if staff is None else ("inactive" if not usable else "password")
        audit("login.failed", actor=email.strip()[:320], staff=staff, reason=reason)
        wait = record_login_failure(email, ip, now)
        if wait:
            return PasswordCheck(LoginOutcome.THROTTLED, retry_after=wait)
        return PasswordCheck(LoginOutcome.BAD_CREDENTIALS)
    assert staff is not None
    if _hasher().check_needs_rehash(staff.password_hash):
        # argon2 parameters were raised since this hash was made.
        staff.password_hash = _hasher().hash(password)
    db.session.flush()
    return PasswordCheck(LoginOutcome.OK, staff)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# -- the pending second factor --------------------------------------------

# Password accepted, second factor pending: this long to type (or enrol) the code.
CHALLENGE_LIFETIME = timedelta(minutes=5)
# Wrong codes one challenge takes before the password is asked again.
CHALLENGE_ATTEMPTS = 5


def _user_agent_hash() -> str:
    agent = request.user_agent.string if has_request_context() else ""
    return hashlib.sha256(agent.encode()).hexdigest()


def start_challenge(staff: StaffUser, next_path: str = "") -> str:
    """The password was right: a single-use token for the second step (kept in the session)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        StaffLoginChallenge(
            token_hash=_hash_token(token),
            staff=staff,
            created_at=now,
            expires_at=now + CHALLENGE_LIFETIME,
            user_agent_hash=_user_agent_hash(),
            next_path=next_path[:500],
        )
    )
    db.session.flush()
    return token


def open_challenge(token: str, now: datetime | None = None) -> StaffLoginChallenge | None:
    """The challenge this token names, if it can still be answered from this browser."""
    now = now or utcnow()
    row = db.session.scalar(
        select(StaffLoginChallenge).where(StaffLoginChallenge.token_hash == _hash_token(token))
    )
    if (
        row is None
        or row.used_at is not None
        or row.expires_at <= now
        or row.attempts >= CHALLENGE_ATTEMPTS
        or not hmac.compare_digest(row.user_agent_hash, _user_agent_hash())
        or not row.staff.active
    ):
        return None
    return row


def use_challenge(row: StaffLoginChallenge, now: datetime | None = None) -> bool:
    """Spend the challenge (compare-and-set: of two requests racing with it, one wins)."""
    now = now or utcnow()
    if not spend_once(row, StaffLoginChallenge.used_at, now, StaffLoginChallenge.expires_at > now):
        return False
    # Any other half-finished sign-in of this account is void now.
    db.session.execute(
        update(StaffLoginChallenge)
        .where(StaffLoginChallenge.staff_id == row.staff_id, StaffLoginChallenge.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return True


def challenge_failed(row: StaffLoginChallenge) -> int:
    """A wrong code: counted on the challenge and the throttles; the wait it starts."""
    db.session.execute(
        update(StaffLoginChallenge)
        .where(StaffLoginChallenge.id == row.id)
        .values(attempts=StaffLoginChallenge.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(row)
    return record_login_failure(row.staff.email, _client_ip())


def code_wait(staff: StaffUser, *, trusted_device: bool, now: datetime | None = None) -> int:
    """Seconds before a code may be tried for this account from here."""
    return throttle_wait(
        staff.email, _client_ip(), trusted_device=trusted_device, now=now or utcnow()
    )


# -- device marks -----------------------------------------------------------


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="staff-device")  # type: ignore[arg-type]


def device_mark(staff: StaffUser) -> str:
    """A signed mark that this browser signed in to this account (no secret in it)."""
    return _device_serializer().dumps(account_hash(staff.email))


def device_trusted(mark: str | None, email: str) -> bool:
    """Is ``mark`` a valid device mark for the address typed?"""
    if not mark or len(mark) > 500:
        return False
    try:
        value = _device_serializer().loads(mark, max_age=int(DEVICE_MAX_AGE.total_seconds()))
    except BadData:
        return False
    return isinstance(value, str) and hmac.compare_digest(value, account_hash(email))


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
    one, so a code seen over a shoulder cannot be used again. Failures are
    audited; the caller counts them (:func:`challenge_failed`).
    """
    if staff.totp_secret is None:
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
    audit(
        "login.failed",
        staff=staff,
        reason="totp_replayed" if accepted is not None else "totp",
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
    clear_login_failures(staff.email, _client_ip())
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
