"""The migrations are the schema: one head, and the migrated database matches the models exactly."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade

from app.domain.searching import made_by_migrations_only
from app.extensions import db


def script_directory(app) -> ScriptDirectory:
    return ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())


def test_there_is_a_single_migration_head(app_ctx):
    assert len(script_directory(app_ctx).get_heads()) == 1


def test_migrated_database_matches_the_models(app_ctx):
    # The test database was built by running every migration (see conftest).
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": made_by_migrations_only}
        )
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


def test_upgrading_a_populated_database_keeps_its_rows(app_ctx):
    """Batch migrations rebuild SQLite tables; referenced rows must survive (foreign keys are on)."""
    from datetime import UTC, datetime

    from flask_migrate import upgrade

    downgrade(revision="93e687237683")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with db.engine.begin() as connection:
        connection.execute(
            db.text(
                "INSERT INTO conversations (id, vambe_contact_id, phone, name, created_at) "
                "VALUES (1, 'c1', '+56911111111', 'Ana', :now)"
            ),
            {"now": now.replace(tzinfo=None) if db.engine.dialect.name == "sqlite" else now},
        )
        connection.execute(
            db.text(
                "INSERT INTO messages (id, conversation_id, direction, author, body, outcome, window_override, "
                "occurred_at, created_at, updated_at) VALUES (1, 1, 'inbound', 'customer', 'Hola', 'received', "
                "false, :now, :now, :now)"
            ),
            {"now": now.replace(tzinfo=None) if db.engine.dialect.name == "sqlite" else now},
        )
    upgrade()
    with db.engine.connect() as connection:
        assert connection.execute(db.text("SELECT status FROM conversations WHERE id = 1")).scalar() == "open"
        assert connection.execute(db.text("SELECT count(*) FROM messages")).scalar() == 1


def test_running_migrations_keeps_the_apps_scrubbing_log_handler(app_ctx):
    """`flask demo` migrates in-process and then serves: alembic.ini must not replace our handler."""
    import logging

    from flask_migrate import upgrade

    downgrade(revision="base")
    upgrade()
    assert any(getattr(handler, "handoff", False) for handler in logging.getLogger().handlers)
