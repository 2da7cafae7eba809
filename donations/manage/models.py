"""Sign-in links, sessions, email changes and erasure requests of the supporter portal.

Secrets are kept as SHA-256 hashes: a leaked table is not a set of live
links or sessions.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from donations.db import Model, str_enum, utcnow
from donations.status import RuledStatus, StatusRules
from donations.supporters.models import Supporter


class SignInLink(Model):
    """A single-use sign-in link emailed to a supporter's address.

    The link is this row's id, signed (itsdangerous) when the email is
    rendered: the row holds nothing that opens it without SECRET_KEY.

    ``address_hash`` is the address it was sent to (mail.suppression.address_hash):
    a link sent before an email change no longer signs anyone in.
    """

    __tablename__ = "manage_sign_in_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    address_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    # Set once, by a compare-and-set update: the link signs in one browser, once.
    used_at: Mapped[datetime | None]

    supporter: Mapped[Supporter] = relationship()


class ManageSession(Model):
    """One signed-in browser of a supporter; the cookie holds a token hashed here.

    Checked on every request, so ending the row (sign out, sign out
    everywhere, a timeout, an email change, erasure) ends a copied cookie too.
    """

    __tablename__ = "manage_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    # How the browser signed in: "sign_in_link", or "email:<template>" for the
    # link in an email we sent (receipt, welcome, payment_failed, reminder...).
    source: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(30))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    supporter: Mapped[Supporter] = relationship()


class EmailChange(Model):
    """A new address asked for; it replaces the old one only when its owner confirms.

    The confirmation link is this row's id, signed when the email is rendered.
    """

    __tablename__ = "manage_email_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    new_email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    # A later request, or the change of address itself, spends the others.
    canceled_at: Mapped[datetime | None]

    supporter: Mapped[Supporter] = relationship()


class ErasureStatus(StrEnum):
    PENDING = "pending"  # a plan could still charge them: staff confirm once it cannot
    APPLIED = "applied"  # erased (operations.erasure.erase_supporter)
    DECLINED = "declined"  # staff declined it, with a reason
    WITHDRAWN = "withdrawn"  # the supporter took it back


class ErasureRequest(RuledStatus, Model):
    """A supporter asked to be erased (GDPR Art. 17) from the portal."""

    __tablename__ = "manage_erasure_requests"
    status_rules = StatusRules(
        "erasure request",
        {
            ErasureStatus.PENDING: frozenset(
                {ErasureStatus.APPLIED, ErasureStatus.DECLINED, ErasureStatus.WITHDRAWN}
            ),
            ErasureStatus.APPLIED: frozenset(),
            ErasureStatus.DECLINED: frozenset(),
            ErasureStatus.WITHDRAWN: frozenset(),
        },
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    status: Mapped[ErasureStatus] = mapped_column(
        str_enum(ErasureStatus), default=ErasureStatus.PENDING
    )
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    # The staff member who confirmed or declined it (a plain id, like the audit log).
    decided_by: Mapped[int | None]
    note: Mapped[str | None] = mapped_column(String(500))

    supporter: Mapped[Supporter] = relationship()


class AnnualStatement(Model):
    """A supporter's giving statement for one fiscal year, emailed once.

    The row is written in the transaction that queues the email: the unique
    key makes the send job once-only per supporter and year, and a job
    stopped half-way resumes with the supporters who have no row yet.
    """

    __tablename__ = "annual_statements"
    __table_args__ = (UniqueConstraint("supporter_id", "fiscal_year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporters.id"), index=True)
    fiscal_year: Mapped[int]
    # The outbox row of the statement email (its dedupe key names the same pair).
    email_message_id: Mapped[int | None] = mapped_column(ForeignKey("email_messages.id"))
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<AnnualStatement {self.supporter_id} {self.fiscal_year}>"
