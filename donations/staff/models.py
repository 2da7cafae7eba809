"""Staff accounts, their server-side sessions, notes, refunds and the audit log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from donations.db import Model, str_enum, utcnow
from donations.status import RuledStatus, StatusRules


class Role(StrEnum):
    """What a staff member may do; each role includes the ones before it."""

    VIEWER = "viewer"  # reads aggregated figures: the dashboard, report totals
    FINANCE = "finance"  # also personal data, exports, refunds, plans, receipts
    ADMIN = "admin"  # also manages staff, settings and erasure

    @property
    def rank(self) -> int:
        return ROLE_ORDER.index(self)

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


ROLE_ORDER: tuple[Role, ...] = (Role.VIEWER, Role.FINANCE, Role.ADMIN)


class StaffUser(Model):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    # Lower-cased address: one account per address regardless of case.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(str_enum(Role, 10))
    active: Mapped[bool] = mapped_column(default=True)
    # Base32 TOTP secret: generated at the first login, confirmed by a code
    # (totp_enrolled_at), then required at every login.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enrolled_at: Mapped[datetime | None]
    # The RFC 6238 time step of the last accepted code: a code is accepted
    # only for a later step, so an observed code cannot be replayed.
    totp_last_step: Mapped[int | None]
    last_login_at: Mapped[datetime | None]
    # The back office's language for numbers, money and dates; their own choice
    # (Your account), English until they make it.
    locale: Mapped[str] = mapped_column(String(5), default="en", server_default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<StaffUser {self.id} {self.role}>"


class StaffSession(Model):
    """One signed-in browser; the cookie holds a token whose hash is stored here.

    Checked on every request, so ending the row (logout, timeout, an admin
    deactivating the account) kills a copied cookie as well.
    """

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the random token in the cookie: a leaked table is not a
    # set of live sessions.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(20))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    staff: Mapped[StaffUser] = relationship()


class LoginThrottle(Model):
    """Failed sign-in attempts under one key, and until when that key must wait.

    Keys are hashes of what the attempt named, never of what exists: the
    address typed (``account``), the client's IP (``address``), or both
    (``pair``). An unknown address is therefore throttled exactly like a
    real one, and nothing here says which accounts exist. There is no hard
    lock: each failure past a few free ones doubles the wait, up to a cap.
    """

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(10))
    # Hash of the typed address (account and pair keys), so an admin's
    # "unlock" can clear every key of one account.
    account_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    blocked_until: Mapped[datetime | None]


class StaffLoginChallenge(Model):
    """The password was right; the second factor is still to come.

    The browser's session holds a random token whose hash is stored here.
    It is good for one sign-in only (``used_at`` is set by a compare-and-set
    update), for a few minutes, for a few wrong codes, and only from the
    browser (user agent) that passed the password.
    """

    __tablename__ = "staff_login_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    user_agent_hash: Mapped[str] = mapped_column(String(64))
    next_path: Mapped[str] = mapped_column(String(500), default="")

    staff: Mapped[StaffUser] = relationship()


class AuditEntry(Model):
    """One thing a staff member (or a login attempt) did. Append-only.

    There is no code path that updates or deletes a row; the ORM refuses it
    below, and the migration adds database triggers that refuse UPDATE and
    DELETE on both SQLite and PostgreSQL.

    ``staff_id`` and ``supporter_id`` are plain integers, not foreign keys:
    the log must outlive what it talks about (an erased supporter, say), and
    an ON DELETE action would itself be an update.
    """

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(50), index=True)
    staff_id: Mapped[int | None] = mapped_column(index=True)
    # Who, as they were called then (also for failed logins of unknown emails).
    actor: Mapped[str] = mapped_column(String(320), default="")
    supporter_id: Mapped[int | None] = mapped_column(index=True)
    target: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(45))
    # The request (or task) that wrote it, as in the logs (donations.observability).
    request_id: Mapped[str | None] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"<AuditEntry {self.id} {self.action}>"


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _refuse_change(mapper: Any, connection: Any, target: AuditEntry) -> None:
    raise PermissionError("the audit log is append-only")


class SupporterNote(Model):
    """A note a staff member left on a supporter's record."""

    __tablename__ = "supporter_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    staff: Mapped[StaffUser] = relationship()


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    EXPIRED = "expired"  # the file was deleted after EXPORT_RETENTION_HOURS


class ReportExport(RuledStatus, Model):
    """A report file prepared in the background for the staff member who asked for it."""

    __tablename__ = "report_exports"
    status_rules = StatusRules(
        "report export",
        {
            ExportStatus.QUEUED: frozenset({ExportStatus.RUNNING}),
            ExportStatus.RUNNING: frozenset({ExportStatus.READY, ExportStatus.FAILED}),
            ExportStatus.READY: frozenset({ExportStatus.EXPIRED}),
            ExportStatus.FAILED: frozenset({ExportStatus.EXPIRED}),
            ExportStatus.EXPIRED: frozenset(),
        },
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    report: Mapped[str] = mapped_column(String(40))
    format: Mapped[str] = mapped_column(String(8))
    # The filters as query-string parameters (ReportFilters.params()) and the zone.
    params: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    time_zone: Mapped[str] = mapped_column(String(64))
    status: Mapped[ExportStatus] = mapped_column(
        str_enum(ExportStatus), default=ExportStatus.QUEUED, index=True
    )
    rows_expected: Mapped[int | None]
    rows_written: Mapped[int] = mapped_column(default=0)
    size: Mapped[int | None] = mapped_column(BigInteger)  # bytes, once ready
    file_name: Mapped[str] = mapped_column(String(200))  # what the download is called
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<ReportExport {self.id} {self.report}.{self.format} {self.status}>"
