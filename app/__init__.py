"""Handoff: a console where human agents take over WhatsApp conversations from a Vambe AI assistant."""

import logging
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import event

from app.config import load_config, read_environment
from app.extensions import csrf, db, login_manager, migrate
from app.vambe import VambeClient

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SANDBOX_PREFIX = "/sandbox"


def create_app(overrides: dict | None = None, environ: dict[str, str] | None = None) -> Flask:
    """Build the app from ``environ`` (default: the process environment plus ``.env``) and ``overrides``."""
    app = Flask(
        __name__,
        template_folder="../templates",
        static_folder="../static",
        instance_path=str(PROJECT_ROOT / "instance"),
    )
    env = read_environment(PROJECT_ROOT) if environ is None else environ
    app.config.update(load_config(env, Path(app.instance_path)))
    app.config.update(overrides or {})

    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_template_helpers(app)
    register_commands(app)
    app.extensions["vambe_client"] = build_vambe_client(app)
    logging.getLogger("app").setLevel(logging.INFO)
    return app


def register_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (the models must be known before migrations run)
    from app.sandbox import state  # noqa: F401

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", configure_sqlite_connection)


def configure_sqlite_connection(dbapi_connection, connection_record) -> None:
    """Foreign keys on, and WAL so that readers do not block the one writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def register_blueprints(app: Flask) -> None:
    from app.auth import bp as auth_bp
    from app.inbox import bp as inbox_bp
    from app.webhooks import bp as webhooks_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(inbox_bp)
    app.register_blueprint(webhooks_bp, url_prefix="/webhooks")
    if app.config["SANDBOX_MODE"]:
        from app.sandbox import bp as sandbox_bp

        app.register_blueprint(sandbox_bp, url_prefix=SANDBOX_PREFIX)


def register_error_handlers(app: Flask) -> None:
    from app.errors import register

    register(app)


def register_template_helpers(app: Flask) -> None:
    from app.presenting import register

    register(app)


def register_commands(app: Flask) -> None:
    from app.cli import register

    register(app)


def build_vambe_client(app: Flask) -> VambeClient:
    client = VambeClient(app.config["VAMBE_API_BASE_URL"], app.config["VAMBE_API_KEY"], timeout=app.config["VAMBE_TIMEOUT"])
    if app.config["SANDBOX_MODE"]:
        from app.sandbox.transport import SandboxTransport

        client.session.mount(client.base_url, SandboxTransport(app, SANDBOX_PREFIX))
    return client


def vambe_client() -> VambeClient:
    """The current app's Vambe client (the sandbox twin in sandbox mode)."""
    return current_app.extensions["vambe_client"]
