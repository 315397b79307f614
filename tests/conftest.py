"""Fixtures: a fresh database per test (SQLite always, PostgreSQL when TEST_DATABASE_URL is set),
built by running the real migrations once into a template, plus a guard against network calls."""

import ipaddress
import os
import re
import shutil
import socket
import uuid

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.clock import utcnow
from app.extensions import db
from app.models import Role
from tests import factories

IN_CI = os.environ.get("CI") == "true"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_SECRET_KEY = "test-secret-key-not-for-production"
TEST_PASSWORD = "correct horse battery"


def require(what: str, reason: str) -> None:
    """Skip locally, but fail under CI, where a missing service must not pass silently."""
    message = f"{what} is not available: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: failing instead of skipping)")
    pytest.skip(message)


def build_app(database_url: str, **environ: str):
    return create_app(
        {"TESTING": True}, environ={"DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET_KEY, **environ}
    )


def migrate_to_head(database_url: str) -> None:
    app = build_app(database_url)
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    migrate_to_head(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_admin():
    """An AUTOCOMMIT engine on the server of TEST_DATABASE_URL, for CREATE/DROP DATABASE."""
    if not TEST_DATABASE_URL:
        require("PostgreSQL", "TEST_DATABASE_URL is not set")
    url = make_url(TEST_DATABASE_URL).set(drivername="postgresql+psycopg")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        engine.connect().close()
    except Exception as error:  # noqa: BLE001  (any failure means: no usable server)
        require("PostgreSQL", f"cannot connect to TEST_DATABASE_URL ({type(error).__name__})")
    yield engine
    engine.dispose()


def drop_database(admin, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_template(postgres_admin):
    name = f"handoff_template_{os.getpid()}"
    drop_database(postgres_admin, name)
    with postgres_admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    migrate_to_head(postgres_url(name))
    yield name
    drop_database(postgres_admin, name)


def postgres_url(database: str) -> str:
    return (
        make_url(TEST_DATABASE_URL)
        .set(drivername="postgresql+psycopg", database=database)
        .render_as_string(hide_password=False)
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, migrated database for one test, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "handoff.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template")
    admin = request.getfixturevalue("postgres_admin")
    name = f"handoff_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield postgres_url(name)
    drop_database(admin, name)


@pytest.fixture
def app(database_url):
    app = build_app(database_url)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app_ctx(app):
    """An application context, for tests that call domain functions directly."""
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token_from(html: str) -> str:
    match = re.search(r'<input[^>]*name="csrf_token"[^>]*>', html)
    assert match, "page has no CSRF token"
    return re.search(r'value="([^"]+)"', match.group(0)).group(1)


class Auth:
    """Signs in through the real login form, CSRF token included."""

    def __init__(self, app, client):
        self.app = app
        self.client = client

    def login(self, email: str, password: str = TEST_PASSWORD):
        token = csrf_token_from(self.client.get("/login").get_data(as_text=True))
        return self.client.post("/login", data={"email": email, "password": password, "csrf_token": token})

    def login_as(self, role: Role = Role.AGENT, email: str | None = None):
        """Create a user with ``role`` and sign in as them; returns the user's id."""
        email = email or f"{role}-{uuid.uuid4().hex[:6]}@example.com"
        with self.app.app_context():
            user = factories.make_user(email=email, role=role, password=TEST_PASSWORD)
            user_id = user.id
        response = self.login(email)
        assert response.status_code == 302, response.get_data(as_text=True)
        return user_id

    def csrf_token(self, path: str = "/") -> str:
        return csrf_token_from(self.client.get(path).get_data(as_text=True))


@pytest.fixture
def auth(app, client):
    return Auth(app, client)


@pytest.fixture
def now():
    return utcnow()


# Addresses a test may connect to: the loopback range, and local socket files.
def is_local_address(address) -> bool:
    if isinstance(address, str | bytes):
        return True  # a Unix socket path
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """scrypt costs about half a second per hash and per check here; the tests sign in hundreds of times."""
    monkeypatch.setattr("app.models.PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")


@pytest.fixture(autouse=True)
def no_outbound_network(monkeypatch):
    """Fail any test that tries to reach a non-loopback address (Vambe itself above all)."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(sock, address):
        if not is_local_address(address):
            raise RuntimeError(f"test tried to open a network connection to {address!r}")
        return real_connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost") and not is_local_address((host,)):
            raise RuntimeError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
