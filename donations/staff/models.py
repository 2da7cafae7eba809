"""Staff accounts, their server-side sessions, notes, refunds and the audit log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from donations.db import Model, str_enum, utcnow


class Role(StrEnum):
    """What a staff member may do; each role includes the ones before it."""

    VIEWER = "viewer"  # reads the dashboard, supporters and reports
    FINANCE = "finance"  # also exports, refunds, cancels plans, resends receipts
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
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
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


class RefundStatus(StrEnum):
    REQUESTED = "requested"  # row written, Stripe has not answered yet
    PENDING = "pending"  # Stripe accepted it; the money is on its way back
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # Stripe refused it, or it failed later


class RefundAttempt(Model):
    """One refund a staff member asked for: one row, one idempotency key.

    The key is the confirmation form's attempt id, so a double-clicked
    "Confirm refund" finds this row again instead of refunding twice.
    """

    __tablename__ = "refund_attempts"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_key: Mapped[str] = mapped_column(String(64), unique=True)
    donation_id: Mapped[int] = mapped_column(ForeignKey("donations.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[RefundStatus] = mapped_column(
        str_enum(RefundStatus), default=RefundStatus.REQUESTED
    )
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]

    staff: Mapped[StaffUser] = relationship()
