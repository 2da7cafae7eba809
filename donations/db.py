"""Database session, model base, the after-commit hook and the insert idioms.

Services flush; the request (or task, or CLI command) commits once, with
:func:`commit` (tests/test_architecture.py fails on a raw
``session.commit()`` elsewhere). Work that must only happen once the data is
durable -- sending mail, queueing a task -- is registered with
:func:`on_commit` and runs after that commit, or is dropped if the
transaction rolls back.

Two idioms for rows that concurrent writers may insert at the same moment
live here and nowhere else: :func:`insert_or_fetch` (the ORM row, whoever
inserted it) and :func:`insert_ignoring_conflicts` / :func:`upsert` (one
``INSERT ... ON CONFLICT`` statement in the database's own dialect). And one
for single-use rows (links, codes): :func:`spend_once`, a compare-and-set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ColumnElement, DateTime, MetaData, Table, event, select, update
from sqlalchemy import Enum as SAEnum
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session, registry
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


def begin_writing() -> None:
    """On SQLite, start the transaction as a writer (BEGIN IMMEDIATE) unless one is open.

    pysqlite opens a transaction only before INSERT, UPDATE or DELETE: a
    SAVEPOINT outside one starts its own, and releasing it commits -- the
    savepoint's work would be durable at once and a later rollback would
    not undo it. And a transaction that read first and writes later can meet
    another writer and fail at once with "database is locked"; taking the
    write lock up front makes it wait its turn instead.
    https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    """
    connection = db.session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if raw is not None and not getattr(raw, "in_transaction", True):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


M = TypeVar("M", bound=Base)


def insert_or_fetch(
    model: type[M], unique_keys: Mapping[str, Any], values: Mapping[str, Any] | None = None
) -> tuple[M, bool]:
    """The ``model`` row with these unique column values, inserted if missing.

    Returns ``(row, created)``. A new row is ``model(**unique_keys, **values)``,
    added in a savepoint, so a concurrent writer inserting the same key at the
    same moment costs only that savepoint: the loser of the unique-constraint
    race (on PostgreSQL its insert waits for the winner's commit) reads the
    winner's row and gets ``created=False``. An IntegrityError that leaves no
    row to read (another constraint refused the insert) is raised.
    """
    query = select(model).filter_by(**unique_keys)
    row = db.session.scalar(query)
    if row is not None:
        return row, False
    begin_writing()  # a savepoint inside the transaction, on SQLite too
    try:
        with db.session.begin_nested():
            # Built inside the savepoint: its rollback forgets the new row
            # and whatever it was attached to.
            row = model(**unique_keys, **(values or {}))
            db.session.add(row)
    except IntegrityError:
        found = db.session.scalar(query)
        if found is None:
            raise
        return found, False
    return row, True


def spend_once(
    row: Base, used_at: InstrumentedAttribute[Any], now: datetime, *also: ColumnElement[bool]
) -> bool:
    """Mark a single-use row (a link, a code) used: True for the one writer that did.

    ``UPDATE … SET used_at = now WHERE <its key> AND used_at IS NULL [AND also]``,
    a compare-and-set, so of two requests spending the same row at once one wins;
    ``also`` adds what the row must still be at that moment (unexpired, say).
    The session's copy of ``row`` is not refreshed.
    """
    mapper = sa_inspect(row).mapper
    (key,) = mapper.primary_key
    (row_id,) = mapper.primary_key_from_instance(row)
    result = db.session.execute(
        update(mapper)
        .where(key == row_id, used_at.is_(None), *also)
        .values({used_at.key: now})
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


InsertStatement = postgresql.Insert | sqlite.Insert
ConflictTarget = Sequence[str | InstrumentedAttribute[Any]]


def _dialect_insert(model: type[Base] | Table, dialect: str | None = None) -> InsertStatement:
    """``INSERT`` for the session's database (or ``dialect``), each with its own ``ON CONFLICT``."""
    if (dialect or db.session.get_bind().dialect.name) == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def insert_ignoring_conflicts(
    model: type[Base] | Table,
    values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    conflict_on: ConflictTarget,
    dialect: str | None = None,
) -> InsertStatement:
    """``INSERT ... ON CONFLICT (conflict_on) DO NOTHING`` of one row or many.

    Rows whose key is already stored are skipped without an error (and are
    absent from a ``RETURNING``), however many writers insert at once. With
    ``dialect`` and bound parameters as values, the statement can be built
    once and executed with each row's parameters.
    """
    return (
        _dialect_insert(model, dialect)
        .values(values)
        .on_conflict_do_nothing(index_elements=conflict_on)
    )


def upsert(
    model: type[Base],
    values: Mapping[str, Any],
    conflict_on: ConflictTarget,
    set_: Mapping[str, Any],
) -> InsertStatement:
    """``INSERT ... ON CONFLICT (conflict_on) DO UPDATE SET set_``: one statement, no read."""
    return (
        _dialect_insert(model)
        .values(values)
        .on_conflict_do_update(index_elements=conflict_on, set_=set_)
    )


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
