"""The suite's own harness: a test's writes are rolled back, or swept where they must commit.

The tests run in file order: each pair writes, then checks that the next
test starts from empty tables.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from donations.db import commit, db, on_commit
from donations.supporters.models import Supporter
from tests.conftest import _Outer


def add_supporter(email: str) -> None:
    db.session.add(Supporter(email=email, email_key=email, name="", locale="en"))


def supporters() -> int:
    return db.session.scalar(select(func.count()).select_from(Supporter)) or 0


def committed_elsewhere() -> int:
    """Supporters another connection sees: only what is really committed."""
    with db.engine.connect() as other:
        return other.scalar(select(func.count()).select_from(Supporter)) or 0


def test_a_commit_releases_a_savepoint_and_runs_its_after_commit_work(app, ctx) -> None:
    ran: list[int] = []
    add_supporter("kept@example.org")
    on_commit(lambda: ran.append(supporters()))
    commit()
    assert ran == [1]
    assert db.session.connection() is _Outer.connection
    # A rollback after the commit undoes only what came after it.
    add_supporter("dropped@example.org")
    db.session.flush()
    db.session.rollback()
    assert supporters() == 1
    # Other app contexts (a request's, a task's) share the transaction...
    with app.app_context():
        assert supporters() == 1
    # ...which nothing else sees.
    assert committed_elsewhere() == 0


def test_the_next_test_starts_empty(ctx) -> None:
    assert supporters() == 0


@pytest.mark.sweep
def test_a_sweep_test_commits_for_real(ctx) -> None:
    assert _Outer.connection is None
    add_supporter("committed@example.org")
    commit()
    assert committed_elsewhere() == 1


def test_and_the_tables_are_emptied_after_it(ctx) -> None:
    assert supporters() == 0


@pytest.mark.sweep(on=("no-such-database",))
def test_a_sweep_on_other_databases_is_rolled_back_here(ctx) -> None:
    assert _Outer.connection is not None
