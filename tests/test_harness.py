"""The suite's own harness: a test's writes are rolled back, or swept where they must commit.

The tests run in file order: each pair writes, then checks that the next
test starts from empty tables. A test that opens a connection of its own
beside its rolled-back transaction fails.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from donations.db import commit, db, on_commit
from donations.supporters.models import Supporter
from tests import factories
from tests.conftest import _Outer, fail_on_own_connections


def supporters() -> int:
    return db.session.scalar(select(func.count()).select_from(Supporter)) or 0


def committed_elsewhere() -> int:
    """Supporters another connection sees: only what is really committed."""
    with db.engine.connect() as other:
        return other.scalar(select(func.count()).select_from(Supporter)) or 0


@pytest.mark.own_connection  # to see what is really committed
def test_a_commit_releases_a_savepoint_and_runs_its_after_commit_work(app, ctx) -> None:
    ran: list[int] = []
    factories.supporter("kept@example.org")
    on_commit(lambda: ran.append(supporters()))
    commit()
    assert ran == [1]
    assert db.session.connection() is _Outer.connection
    # A rollback after the commit undoes only what came after it.
    factories.supporter("dropped@example.org")
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
    factories.supporter("committed@example.org")
    commit()
    assert committed_elsewhere() == 1


def test_and_the_tables_are_emptied_after_it(ctx) -> None:
    assert supporters() == 0


@pytest.mark.sweep(on=("no-such-database",))
def test_a_sweep_on_other_databases_is_rolled_back_here(ctx) -> None:
    assert _Outer.connection is not None


def test_a_connection_of_its_own_fails_the_test(ctx, request: pytest.FixtureRequest) -> None:
    with db.engine.begin() as other:
        other.execute(select(1))
    with pytest.raises(pytest.fail.Exception, match="opened beside"):
        fail_on_own_connections(request.node)
    # The failure was raised here instead: the harness has nothing left to fail.
    fail_on_own_connections(request.node)


def test_sessions_of_the_test_open_no_connection_of_their_own(
    app, ctx, client, request: pytest.FixtureRequest
) -> None:
    factories.supporter("joined@example.org")
    commit()
    with app.app_context():
        assert supporters() == 1
    assert client.get("/", follow_redirects=True).status_code == 200  # a request reads the ask
    fail_on_own_connections(request.node)
