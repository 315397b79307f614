"""Whether this instance can serve: the database answers and its schema is at the newest migration."""

from dataclasses import dataclass

from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db


@dataclass(frozen=True)
class Readiness:
    database: str
    migrations: str

    @property
    def ready(self) -> bool:
        return self.database == "ok" and self.migrations == "at head"

    def as_json(self) -> dict:
        return {"ready": self.ready, "database": self.database, "migrations": self.migrations}


def readiness(migrations_directory: str) -> Readiness:
    """Check the database and the schema version; never raises, never reveals connection details."""
    config = Config()
    config.set_main_option("script_location", migrations_directory)
    heads = set(ScriptDirectory.from_config(config).get_heads())
    try:
        with db.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError:
        return Readiness(database="unreachable", migrations="unknown")
    if current == heads:
        return Readiness(database="ok", migrations="at head")
    return Readiness(database="ok", migrations="behind: run flask db upgrade" if current else "not migrated")
