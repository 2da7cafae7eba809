"""Fixtures: a migrated database (SQLite or PostgreSQL), the simulator, mail, a live app.

Choose the database with TEST_DATABASE=sqlite|postgresql (``make test`` runs both).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher, profiles
from flask import Flask
from flask_migrate import upgrade
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError

from donations import create_app
from donations.db import db
from donations.extensions import limiter
from donations.public import forget_public_pages
from tests.harness import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    LiveServer,
    Mailbox,
    Simulator,
    free_port,
    smtp_server,
)

BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
# Staff passwords hashed at argon2's cheapest cost: the suite hashes hundreds
# of throwaway passwords (at the default cost ~0.1-1 s each on this machine).
# Tests of the cost itself use the ``real_password_cost`` fixture.
CHEAP_HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)
PG_ADMIN = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# -- no traffic beyond loopback ------------------------------------------

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if (
        isinstance(host, str)
        and host not in ("127.0.0.1", "localhost", "::1")
        and not host.startswith("/")
    ):
        raise RuntimeError(f"test tried to reach {address!r}; only loopback is allowed")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _guard_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


# -- database ----------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    if BACKEND != "postgresql":
        raise pytest.UsageError("TEST_DATABASE must be sqlite or postgresql")
    name = f"donations_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        # A commit need not wait for the disk: nothing here outlives the session.
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator(tmp_path_factory.mktemp("simulator"))
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def app_port() -> int:
    return free_port()


def make_env(
    database_url: str, simulator: Simulator, port: int, mail_dir: Path, **extra: str
) -> dict[str, str]:
    return {
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": database_url,
        "STRIPE_SECRET_KEY": "sk_test_local",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_local",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": simulator.url,
        "BASE_URL": f"http://127.0.0.1:{port}",
        "MAIL_DIR": str(mail_dir),
        "EXPORT_DIR": str(mail_dir.parent / f"{mail_dir.name}-exports"),
        "CHECKOUT_RATE_LIMIT": "1000 per minute",
        "REMINDER_RATE_LIMIT": "1000 per minute",
        **extra,
    }


@pytest.fixture
def make_app(
    app: Flask, database_url: str, simulator: Simulator, app_port: int, tmp_path: Path
) -> Iterator[Callable[..., Flask]]:
    """Build another app on the (already migrated) test database, with settings changed.

    A setting given as None is left out. TESTING as the session app has it: no
    embedded scheduler thread. Each app's pool is closed afterwards: connections
    left to the garbage collector warn, in whichever later test collects them.
    """
    built: list[Flask] = []

    def build(database: str | None = None, **settings: str | None) -> Flask:
        env = make_env(database or database_url, simulator, app_port, tmp_path / "mail")
        for key, value in settings.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        built.append(create_app(env, TESTING=True, PASSWORD_HASHER=CHEAP_HASHER))
        return built[-1]

    yield build
    for other in built:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[Mailbox, str]]:
    with smtp_server() as pair:
        yield pair


def _no_fsync(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous = OFF")


@pytest.fixture(scope="session")
def app(
    database_url: str,
    simulator: Simulator,
    app_port: int,
    smtp: tuple[Mailbox, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Flask]:
    env = make_env(
        database_url,
        simulator,
        app_port,
        tmp_path_factory.mktemp("mail"),
        SMTP_URL=smtp[1],
        MAIL_FROM="Newsroom <support@newsroom.test>",
    )
    application = create_app(env, TESTING=True, PASSWORD_HASHER=CHEAP_HASHER)
    # Every app's sessions (one db object): joining a rolled-back test's connection.
    db.session = db._make_scoped_session(
        {"class_": JoiningSession, "join_transaction_mode": "create_savepoint"}
    )
    with application.app_context():
        if db.engine.dialect.name == "sqlite":
            # A commit need not wait for the disk: nothing here outlives the session.
            event.listen(db.engine, "connect", _no_fsync)
        event.listen(db.engine, "checkout", _note_stray_checkout)
        upgrade()  # the real migrations, not create_all
    yield application
    with application.app_context():
        db.engine.dispose()


# Tables whose triggers refuse DELETE: emptied with the triggers set aside.
APPEND_ONLY = ("audit_entries",)


def _empty_append_only(conn, table: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
        conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        return
    triggers = conn.execute(
        text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
        {"t": table},
    ).all()
    for name, _ in triggers:
        conn.execute(text(f'DROP TRIGGER "{name}"'))
    conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
    for _, sql in triggers:
        conn.execute(text(sql))


def _empty_tables() -> None:
    with db.engine.begin() as conn:
        existing = set(inspect(conn).get_table_names())
        # Children before parents, from the models themselves.
        for model_table in reversed(db.metadata.sorted_tables):
            table = model_table.name
            if table not in existing:
                continue
            if table in APPEND_ONLY:
                _empty_append_only(conn, table)
                continue
            conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names


# -- each test's writes: rolled back, or (where others must see them) swept --
#
# A test that uses the database in-process (the test client, the CLI runner,
# services called directly) runs inside one transaction on one connection,
# rolled back at its end: every session of the test's thread joins it, and a
# commit() releases a savepoint instead (so after-commit work still runs).
# A test that needs its writes committed -- a live server, a subprocess,
# another app's engine, other threads or connections -- commits for real and
# every table is emptied afterwards: it asks with @pytest.mark.sweep, or uses
# one of these fixtures.
SWEEP_FIXTURES = frozenset({"live_server", "make_app"})


class _Outer:
    """The rolled-back test's connection, and the thread whose sessions join it.

    ``strays``: where that thread checked out another connection of the engine
    meanwhile (a stack each). What such a connection writes is committed beside
    the transaction and outlives the test.
    """

    connection: Connection | None = None
    thread: int | None = None
    strays: list[str] = []  # noqa: RUF012 - one harness, one list


def _note_stray_checkout(_dbapi_connection, _record, _proxy) -> None:
    if _Outer.connection is not None and _Outer.thread == threading.get_ident():
        # The project's own frames: pytest's and SQLAlchemy's say nothing here.
        ours = [f for f in traceback.extract_stack()[:-1] if "site-packages" not in f.filename]
        _Outer.strays.append("".join(traceback.format_list(ours)))


def fail_on_own_connections(node: pytest.Item) -> None:
    """Fail the test if it opened a connection of its own beside its rolled-back transaction.

    A test that must see only what is committed (and writes nothing there) says
    so with @pytest.mark.own_connection; one that commits for real is a sweep test.
    """
    strays, _Outer.strays = _Outer.strays, []
    if strays and node.get_closest_marker("own_connection") is None:
        pytest.fail(
            f"{len(strays)} database connection(s) opened beside the test's rolled-back"
            " transaction (what they write outlives the test): mark the test"
            " @pytest.mark.sweep, or @pytest.mark.own_connection if it only reads there."
            f" The first was opened at:\n{strays[0]}",
            pytrace=False,
        )


class JoiningSession(FlaskSession):
    """Flask-SQLAlchemy's session, on the rolled-back test's connection when one is open.

    Sessions of other threads (the live server's, a race's) keep the engine.
    """

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is None and _Outer.thread == threading.get_ident():
            return _Outer.connection
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


def sweeps(request: pytest.FixtureRequest) -> bool:
    """Whether this test commits for real and has the tables emptied afterwards."""
    sweep = request.node.get_closest_marker("sweep")
    # @pytest.mark.sweep(on=("sqlite",)): only on the databases named.
    marked = sweep is not None and BACKEND in sweep.kwargs.get("on", (BACKEND,))
    if marked or request.node.get_closest_marker("e2e") is not None:
        return True
    return not SWEEP_FIXTURES.isdisjoint(request.fixturenames)


@contextmanager
def _rolled_back(application: Flask) -> Iterator[None]:
    with application.app_context():
        connection = db.engine.connect()
    raw = connection.connection.dbapi_connection
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # pysqlite begins a transaction only before a write, and a SAVEPOINT
        # outside one commits on release: begin it ourselves, before anything,
        # as a writer (a server thread finishing a write waits, or we wait for it).
        # https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
        raw.isolation_level = None
    transaction = connection.begin()
    if sqlite:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    _Outer.connection, _Outer.thread = connection, threading.get_ident()
    try:
        yield
    finally:
        _Outer.connection = _Outer.thread = None
        with application.app_context():
            db.session.remove()
        transaction.rollback()
        if sqlite:
            raw.isolation_level = ""  # as the pool handed it out
        connection.close()


def _swept(application: Flask) -> None:
    with application.app_context():
        db.session.remove()
        # The live server may still be recording a late webhook of this test's
        # objects (a refund after its parent's table was emptied, or a row it is
        # updating while we delete: a deadlock on PostgreSQL): empty again.
        for attempt in range(5):
            try:
                _empty_tables()
                break
            except (IntegrityError, OperationalError):
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    if "app" not in request.fixturenames:
        yield
        return
    application: Flask = request.getfixturevalue("app")
    simulator: Simulator = request.getfixturevalue("simulator")
    if sweeps(request):
        simulator.unmute()
        yield
        _swept(application)
    else:
        # Nothing the simulator sends reaches the live server meanwhile: what
        # it would record (of this test's objects, or a late one of an earlier
        # test's) would be committed, past this test's rollback.
        simulator.mute()
        _Outer.strays = []
        with _rolled_back(application):
            yield
    with application.app_context():
        limiter.reset()
        application.extensions.pop("ask_config_cache", None)
        # Per-process caches of what the embed serves (an experiment kept 30 s would leak).
        application.extensions.pop("served_experiment", None)
        application.extensions.pop("embed_config", None)
        forget_public_pages(application)
    fail_on_own_connections(request.node)


@pytest.fixture
def real_password_cost(app: Flask) -> Iterator[None]:
    """Passwords hashed and verified at argon2's default cost, as in production."""
    cheap = app.config.pop("PASSWORD_HASHER")
    yield
    app.config["PASSWORD_HASHER"] = cheap


@pytest.fixture
def mailbox(smtp: tuple[Mailbox, str]) -> Mailbox:
    box = smtp[0]
    box.messages.clear()
    box.script.clear()
    return box


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture(scope="session")
def live_server(app: Flask, simulator: Simulator) -> Iterator[LiveServer]:
    server = LiveServer(app)
    simulator.register_webhook(f"{server.url}/webhooks/stripe")
    yield server
    server.stop()


class Tracebacks(logging.Handler):
    """Errors with a traceback logged by the test's own thread.

    The session's live server also receives the simulator's webhooks for
    objects other tests made (and whose rows are gone); what its threads log
    is not this test's doing.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.thread == self.thread:
            self.records.append(record)


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
