"""The insert idioms in donations/db.py, alone and with two writers at once."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest
from flask import Flask
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError

from donations.db import commit, db, insert_ignoring_conflicts, insert_or_fetch, upsert
from donations.embed.models import EmbedCount, EmbedEvent
from donations.mail.models import Suppression, SuppressionReason
from donations.supporters.models import Supporter
from tests.conftest import BACKEND

KEY = "race@example.org"
VALUES = {"email": KEY, "name": "", "locale": "en", "newsletter_opt_in": False}


def supporters() -> int:
    return db.session.scalar(select(func.count()).select_from(Supporter)) or 0


def test_insert_or_fetch_inserts_once_then_fetches(ctx) -> None:
    first, created = insert_or_fetch(Supporter, {"email_key": KEY}, VALUES)
    again, created_again = insert_or_fetch(Supporter, {"email_key": KEY}, {**VALUES, "name": "X"})
    assert (created, created_again) == (True, False)
    assert again is first
    assert again.name == ""
    commit()
    assert supporters() == 1


def test_insert_or_fetch_raises_what_no_row_explains(ctx) -> None:
    # Another constraint refused the insert: nothing to fetch, the error stands,
    # and only the savepoint is lost (the transaction's earlier work is kept).
    insert_or_fetch(Supporter, {"email_key": "kept@example.org"}, VALUES)
    with pytest.raises(IntegrityError):
        insert_or_fetch(Supporter, {"email_key": KEY}, {**VALUES, "email": None})
    commit()
    assert db.session.scalars(select(Supporter.email_key)).all() == ["kept@example.org"]


def _blocked_backends() -> int:
    with db.engine.connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )


@pytest.mark.sweep  # two threads with their own sessions
def test_two_writers_inserting_one_key_both_get_the_one_row(app: Flask, ctx) -> None:
    """Writer B looks while A's row is uncommitted, finds nothing, and inserts.

    On PostgreSQL B's insert waits on the unique index until A commits (the
    test sees it waiting before letting A commit), then fails; on SQLite it
    waits for the write lock. Either way B rolls back its savepoint and
    returns A's row.
    """
    a_inserted, b_inserting, a_may_commit = threading.Event(), threading.Event(), threading.Event()
    results: dict[str, tuple[int, bool] | BaseException] = {}

    def writer(name: str) -> None:
        with app.app_context():
            try:
                if name == "b":
                    assert a_inserted.wait(10)
                row, created = insert_or_fetch(Supporter, {"email_key": KEY}, VALUES)
                if name == "a":
                    a_inserted.set()
                    assert a_may_commit.wait(10)
                commit()
                results[name] = (row.id, created)
            except BaseException as exc:  # reported below
                results[name] = exc
                a_inserted.set()
            finally:
                db.session.remove()

    def announce_b_insert(conn, cursor, statement, *args) -> None:
        # SQLite: B waits for A's write lock at its BEGIN IMMEDIATE.
        if threading.current_thread().name == "b" and statement.startswith(("INSERT", "BEGIN")):
            b_inserting.set()

    event.listen(db.engine, "before_cursor_execute", announce_b_insert)
    threads = [threading.Thread(target=writer, args=(n,), name=n) for n in ("a", "b")]
    try:
        for thread in threads:
            thread.start()
        assert b_inserting.wait(10), results
        if BACKEND == "postgresql":
            deadline = time.monotonic() + 10
            while _blocked_backends() == 0:
                assert time.monotonic() < deadline, "B's insert never waited for A"
                time.sleep(0.01)
        a_may_commit.set()
        for thread in threads:
            thread.join(20)
            assert not thread.is_alive()
    finally:
        a_may_commit.set()
        event.remove(db.engine, "before_cursor_execute", announce_b_insert)

    a, b = results["a"], results["b"]
    assert isinstance(a, tuple), a
    assert isinstance(b, tuple), b
    assert a[1] is True
    assert b[1] is False
    assert a[0] == b[0]
    assert supporters() == 1


def test_insert_ignoring_conflicts_skips_stored_keys(ctx) -> None:
    def insert(*hashes: str) -> list[str]:
        rows = [{"address_hash": h, "reason": SuppressionReason.UNSUBSCRIBED} for h in hashes]
        statement = insert_ignoring_conflicts(Suppression, rows, ["address_hash"])
        return list(db.session.scalars(statement.returning(Suppression.address_hash)))

    assert insert("a" * 64) == ["a" * 64]
    assert insert("a" * 64, "b" * 64) == ["b" * 64]
    commit()
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 2


def test_upsert_updates_the_stored_row(ctx) -> None:
    values = {"day": date(2025, 1, 2), "event": EmbedEvent.IMPRESSION, "article": "a"}
    for _ in range(3):
        db.session.execute(
            upsert(
                EmbedCount,
                {**values, "campaign": "", "variant": "", "count": 1},
                ["day", "event", "article", "campaign", "variant"],
                {"count": EmbedCount.count + 1},
            )
        )
    commit()
    assert db.session.scalars(select(EmbedCount.count)).all() == [3]


def test_a_rollback_undoes_insert_or_fetch(ctx) -> None:
    # On SQLite a savepoint opened outside a transaction would commit on release.
    insert_or_fetch(Supporter, {"email_key": KEY}, VALUES)
    db.session.rollback()
    assert supporters() == 0
