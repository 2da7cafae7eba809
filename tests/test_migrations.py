"""The models and the migrations describe the same schema (on the database under test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from donations import create_app
from donations.db import db
from tests.conftest import BACKEND, PG_ADMIN, make_env
from tests.harness import Simulator


@pytest.mark.own_connection  # reads the schema as committed
def test_models_match_the_migrations(app: Flask) -> None:
    """Autogenerate against the upgraded database finds nothing to do."""
    with app.app_context():
        options = {**app.extensions["migrate"].configure_args, "compare_type": True}
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=options)
            differences = compare_metadata(context, db.metadata)
        db.session.remove()
    assert differences == []


@pytest.mark.own_connection  # reads the schema as committed
def test_migrations_are_at_head(app: Flask) -> None:
    with app.app_context():
        from alembic.script import ScriptDirectory

        config = app.extensions["migrate"].migrate.get_config()
        heads = set(ScriptDirectory.from_config(config).get_heads())
        with db.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
        db.session.remove()
    assert len(heads) == 1, f"migrations branch: {heads}"
    assert current == heads


@pytest.mark.own_connection  # reads the schema as committed
def test_flask_db_check_passes(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
    assert result.exception is None


# -- data migrations ---------------------------------------------------------------


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """An empty database of the backend under test, for one migration test."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    name = f"donations_migrate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BEFORE_ONE_REFUND_MODEL = "220b12d44fa8"


def test_refund_attempts_move_into_refunds_keeping_the_data(
    fresh_database: str, simulator: Simulator, tmp_path: Path
) -> None:
    application = create_app(
        make_env(fresh_database, simulator, 5999, tmp_path / "mail"), TESTING=True
    )
    with application.app_context():
        upgrade(revision=BEFORE_ONE_REFUND_MODEL)
        statements = [
            "INSERT INTO supporters (id, email, email_key, name, locale, newsletter_opt_in,"
            " created_at, updated_at) VALUES (1, 'a@example.org', 'a@example.org', '', 'en',"
            " false, '2026-11-01 10:00:00', '2026-11-01 10:00:00')",
            "INSERT INTO staff_users (id, email, email_key, password_hash, role, active,"
            " failed_logins, created_at, updated_at) VALUES (1, 'finance@newsroom.org',"
            " 'finance@newsroom.org', 'x', 'finance', true, 0, '2026-11-01 10:00:00',"
            " '2026-11-01 10:00:00')",
            "INSERT INTO donations (id, attempt_key, public_token, supporter_id, amount,"
            " fee_cover_amount, currency, frequency, status, refunded_amount, locale,"
            " stripe_payment_intent_id, stripe_charge_id, created_at, updated_at) VALUES"
            " (1, 'att1', 'tok1', 1, 1000, 0, 'USD', 'once', 'succeeded', 900, 'en', 'pi_1',"
            " 'ch_1', '2026-11-01 10:00:00', '2026-11-01 10:00:00')",
            # Mirrored from Stripe by a webhook, and also asked for by staff.
            "INSERT INTO refunds (stripe_refund_id, donation_id, amount, currency, status,"
            " stripe_created_at, created_at, updated_at) VALUES ('re_1', 1, 300, 'USD',"
            " 'succeeded', '2026-11-02 10:00:00', '2026-11-02 10:00:00', '2026-11-02 10:00:00')",
            "INSERT INTO refund_attempts (attempt_key, donation_id, staff_id, amount, currency,"
            " reason, status, stripe_refund_id, created_at, completed_at) VALUES"
            " ('k1', 1, 1, 300, 'USD', 'asked by reader', 'succeeded', 're_1',"
            " '2026-11-02 10:00:00', '2026-11-02 10:00:01')",
            # Answered by Stripe, its webhook not processed yet.
            "INSERT INTO refund_attempts (attempt_key, donation_id, staff_id, amount, currency,"
            " reason, status, stripe_refund_id, created_at, completed_at) VALUES"
            " ('k2', 1, 1, 200, 'USD', 'duplicate', 'pending', 're_2',"
            " '2026-11-03 10:00:00', '2026-11-03 10:00:01')",
            # Refused by Stripe: no Stripe id, the error kept.
            "INSERT INTO refund_attempts (attempt_key, donation_id, staff_id, amount, currency,"
            " reason, status, error, created_at, completed_at) VALUES"
            " ('k3', 1, 1, 400, 'USD', 'oops', 'failed', 'No such payment',"
            " '2026-11-04 10:00:00', '2026-11-04 10:00:01')",
        ]
        with db.engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
        upgrade()
        with db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT stripe_refund_id, amount, status, attempt_key, staff_id, staff_reason,"
                    " error FROM refunds ORDER BY amount"
                )
            ).all()
            refunded = conn.execute(text("SELECT refunded_amount FROM donations")).scalar()
            tables = set(sa_inspect(conn).get_table_names())
        assert [tuple(r) for r in rows] == [
            ("re_2", 200, "pending", "k2", 1, "duplicate", None),
            ("re_1", 300, "succeeded", "k1", 1, "asked by reader", None),
            (None, 400, "failed", "k3", 1, "oops", "No such payment"),
        ]
        # Derived again from the refunds (the old counter said 900).
        assert refunded == 500
        assert "refund_attempts" not in tables

        downgrade(revision=BEFORE_ONE_REFUND_MODEL)
        with db.engine.connect() as conn:
            back = conn.execute(
                text("SELECT attempt_key, amount, status FROM refund_attempts ORDER BY amount")
            ).all()
        assert [tuple(r) for r in back] == [
            ("k2", 200, "pending"),
            ("k1", 300, "succeeded"),
            ("k3", 400, "failed"),
        ]
        db.engine.dispose()


CLAIMS = "a515920bad23"


def test_claims_migration_keeps_details_and_consents(
    fresh_database: str, simulator: Simulator, tmp_path: Path
) -> None:
    """Existing gifts and plans get the snapshot their supporter holds, marked applied;
    an opted-in supporter gets one applied "legacy" consent; nothing else changes."""
    application = create_app(
        make_env(fresh_database, simulator, 5998, tmp_path / "mail"), TESTING=True
    )
    with application.app_context():
        upgrade(revision=f"{CLAIMS}-1")
        statements = [
            "INSERT INTO supporters (id, email, email_key, name, country, locale,"
            " newsletter_opt_in, created_at, updated_at) VALUES (1, 'Ada@example.org',"
            " 'ada@example.org', 'Ada Reader', 'GB', 'ru', true, '2026-11-01 10:00:00',"
            " '2026-11-05 10:00:00')",
            "INSERT INTO supporters (id, email, email_key, name, locale, newsletter_opt_in,"
            " created_at, updated_at) VALUES (2, 'b@example.org', 'b@example.org', '', 'en',"
            " false, '2026-11-01 10:00:00', '2026-11-01 10:00:00')",
            "INSERT INTO donations (id, attempt_key, public_token, supporter_id, amount,"
            " fee_cover_amount, currency, frequency, status, refunded_amount, locale,"
            " created_at, updated_at) VALUES (1, 'att1', 'tok1', 1, 1000, 0, 'USD', 'once',"
            " 'succeeded', 0, 'ru', '2026-11-01 10:00:00', '2026-11-01 10:00:00')",
            "INSERT INTO recurring_plans (id, attempt_key, public_token, supporter_id, amount,"
            " fee_cover_amount, currency, frequency, status, locale, created_at, updated_at)"
            " VALUES (1, 'att2', 'tok2', 2, 500, 0, 'EUR', 'monthly', 'incomplete', 'en',"
            " '2026-11-02 10:00:00', '2026-11-02 10:00:00')",
        ]
        with db.engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
        upgrade(revision=CLAIMS)
        with db.engine.connect() as conn:
            gift = conn.execute(
                text(
                    "SELECT donor_email, donor_name, donor_country, details_applied_at IS NOT NULL"
                    " FROM donations"
                )
            ).one()
            plan = conn.execute(
                text("SELECT donor_email, donor_name, donor_country FROM recurring_plans")
            ).one()
            consents = conn.execute(
                text(
                    "SELECT supporter_id, topic, granted, source, status, proof, locale"
                    " FROM consents"
                )
            ).all()
            people = conn.execute(
                text("SELECT name, country, newsletter_opt_in FROM supporters ORDER BY id")
            ).all()
        assert tuple(gift) == ("Ada@example.org", "Ada Reader", "GB", True)
        assert tuple(plan) == ("b@example.org", None, None)
        assert [tuple(c) for c in consents] == [
            (1, "newsletter", True, "legacy", "applied", "legacy", "ru")
        ]
        assert [tuple(p) for p in people] == [("Ada Reader", "GB", True), ("", None, False)]
        db.engine.dispose()
