"""Settings an admin edits: the ask's copy, currencies and amounts (the ``ask`` key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from donations.db import Model, utcnow


class Setting(Model):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SettingVersion(Model):
    """Each value a setting has had, newest last, so an admin can restore an earlier one.

    Written by :func:`donations.ask.services.save_ask_config` in the same
    transaction as the setting; never changed afterwards.
    """

    __tablename__ = "setting_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), index=True)
    value: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Who saved it (a plain id, like the audit log: it outlives the account).
    staff_id: Mapped[int | None]
    actor: Mapped[str] = mapped_column(String(320), default="")
    # The version this one restored, if it was a restore.
    restored_from: Mapped[int | None]
