"""The models and the migrations describe the same schema (on the database under test)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from donations.db import db


def test_models_match_the_migrations(app: Flask) -> None:
    """Autogenerate against the upgraded database finds nothing to do."""
    with app.app_context():
        options = {**app.extensions["migrate"].configure_args, "compare_type": True}
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=options)
            differences = compare_metadata(context, db.metadata)
        db.session.remove()
    assert differences == []


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


def test_flask_db_check_passes(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
    assert result.exception is None
