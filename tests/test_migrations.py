"""The migrations are the schema: one head, and the migrated database matches the models exactly."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade

from app.extensions import db


def script_directory(app) -> ScriptDirectory:
    return ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())


def test_there_is_a_single_migration_head(app_ctx):
    assert len(script_directory(app_ctx).get_heads()) == 1


def test_migrated_database_matches_the_models(app_ctx):
    # The test database was built by running every migration (see conftest).
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []


def test_database_is_at_head(app_ctx):
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    assert set(current) == set(script_directory(app_ctx).get_heads())


def test_migrations_downgrade_to_empty(app_ctx):
    downgrade(revision="base")
    with db.engine.connect() as connection:
        tables = set(db.inspect(connection).get_table_names()) - {"alembic_version"}
    assert tables == set()
