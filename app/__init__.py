"""Handoff: a console where human agents take over WhatsApp conversations from a Vambe AI assistant."""

import uuid
from pathlib import Path

from flask import Flask, current_app, g, request
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from app import inputs
from app.config import load_config, read_environment
from app.extensions import babel, csrf, db, login_manager, migrate
from app.logs import configure_logging
from app.vambe import VambeClient

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SANDBOX_PREFIX = "/sandbox"
# Scripts and style sheets only from our own files: no inline script or event handler runs (htmx 4 needs no eval).
# Style attributes are allowed because htmx's settle step copies an element's style attribute across a swap; our
# templates write none, and with images limited to this site a style attribute cannot send data anywhere.
# Pico's icons are data: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


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

    configure_logging(app)
    register_extensions(app)
    inputs.register(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_template_helpers(app)
    register_commands(app)
    register_request_hooks(app)
    app.extensions["vambe_client"] = build_vambe_client(app)
    if app.config["TRUSTED_PROXIES"]:
        count = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_prefix=count)
    return app


def register_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (the models must be known before migrations run)
    from app.sandbox import state  # noqa: F401

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    from app.presenting import viewer_locale, viewer_zone_name

    babel.init_app(app, locale_selector=viewer_locale, timezone_selector=viewer_zone_name)
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
    from app.admin import bp as admin_bp
    from app.auth import bp as auth_bp
    from app.health import bp as health_bp
    from app.inbox import bp as inbox_bp
    from app.review import bp as review_bp
    from app.webhooks import bp as webhooks_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(inbox_bp)
    app.register_blueprint(webhooks_bp, url_prefix="/webhooks")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(review_bp, url_prefix="/review")
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


def register_request_hooks(app: Flask) -> None:
    @app.before_request
    def assign_request_id():
        # A proxy's id ties our log lines to its access log; otherwise we make one.
        g.request_id = (request.headers.get("X-Request-ID") or uuid.uuid4().hex)[:64]

    @app.after_request
    def security_headers(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            # Pages show customers' messages: no copy of them in a shared or back-button cache.
            response.headers["Cache-Control"] = "no-store"
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response


def build_vambe_client(app: Flask) -> VambeClient:
    from app.clock import utcnow
    from app.domain.health import count_vambe_answer

    client = VambeClient(
        app.config["VAMBE_API_BASE_URL"],
        app.config["VAMBE_API_KEY"],
        timeout=app.config["VAMBE_TIMEOUT"],
        total_timeout=app.config["VAMBE_TOTAL_TIMEOUT"],
        on_answer=lambda failed: count_vambe_answer(failed, now=utcnow()),
    )
    if app.config["SANDBOX_MODE"]:
        from app.sandbox.transport import SandboxTransport

        client.session.mount(client.base_url, SandboxTransport(app, SANDBOX_PREFIX))
    return client


def vambe_client() -> VambeClient:
    """The current app's Vambe client (the sandbox twin in sandbox mode)."""
    return current_app.extensions["vambe_client"]
