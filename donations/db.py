"""Database session, model base and the after-commit hook.

Services flush; the request (or task, or CLI command) commits once. Work
that must only happen once the data is durable -- sending mail, queueing a
task -- is registered with :func:`on_commit` and runs after that commit, or
is dropped if the transaction rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Session, registry
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


db = SQLAlchemy(model_class=Base)

if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


def utcnow() -> datetime:
    return datetime.now(UTC)


_AFTER_COMMIT = "donations.after_commit"


def on_commit(callback: Callable[[], object]) -> None:
    """Run ``callback`` once the current transaction has committed."""
    db.session().info.setdefault(_AFTER_COMMIT, []).append(callback)


def commit() -> None:
    """Commit the current transaction, then run what waited for it.

    Callbacks run after ``commit()`` returns rather than in SQLAlchemy's
    ``after_commit`` event, because they may use the session themselves
    (an inline task loading the row it was handed).
    """
    session = db.session()
    callbacks = session.info.pop(_AFTER_COMMIT, [])
    session.commit()
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The data is committed; a failed follow-up (a mail server hiccup,
            # say) is retried from its own durable row, never re-raised into a
            # request that has already succeeded.
            log.exception("after-commit callback failed")


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def str_enum(enum_cls: type[StrEnum], length: int = 20) -> SAEnum:
    """A ``StrEnum`` stored by value in a plain VARCHAR column."""
    return SAEnum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )
