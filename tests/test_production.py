"""Production deployment: the container's start-up under gunicorn, readiness, configuration refusals,
proxy headers, cookie flags, logs without secrets, and the settling of sends left "sending".

The start-up tests run ``docker-entrypoint.sh`` exactly as the container does (migrate, then exec
gunicorn) on the loopback interface, against a freshly created, empty PostgreSQL database. They
wait for the server by polling ``/readyz`` with short, bounded attempts; nothing sleeps in place of
synchronisation. gunicorn's output goes to a file, so no pipe can fill up and block it.
"""

import io
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import jsonify, redirect, request, url_for
from flask_migrate import upgrade
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from app import create_app
from app.clock import utcnow
from app.config import ConfigError
from app.domain.deliveries import signature_for
from app.domain.sending import STUCK_REASON
from app.extensions import db
from app.models import Author, Direction, Message, Outcome, User
from tests import factories
from tests.conftest import TEST_PASSWORD, Auth, build_app, csrf_token_from, drop_database, postgres_url
from tests.fake_vambe import Reply as FakeReply
from tests.fake_vambe import running_fake_vambe

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
READY_WITHIN_SECONDS = 30.0
STOP_WITHIN_SECONDS = 30.0
COMMAND_TIMEOUT_SECONDS = 90.0
HTTP_TIMEOUT = 10.0
REQUEST_ID = re.compile(r"request_id=([0-9A-Za-z_-]+)")


# --- The container, run as a subprocess -------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def container_environment(database_url: str, home: Path, **settings: str) -> dict[str, str]:
    """A clean environment like the container's: no Vambe key (sandbox), only what is set here."""
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        # gunicorn (>= 23) puts its control socket under $HOME: one HOME per test keeps servers apart.
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "FLASK_APP": "wsgi",
        "DATABASE_URL": database_url,
    }
    env.update(settings)
    assert "VAMBE_API_KEY" not in env
    return env


@dataclass
class Container:
    base_url: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def flask(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """``flask --app wsgi ARGS`` with the container's environment, as an operator would run it."""
        return subprocess.run(  # noqa: S603  (fixed argument list, no shell)
            [str(VENV_BIN / "flask"), "--app", "wsgi", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )

    def stop(self) -> int:
        """SIGTERM (what `docker stop` sends) and wait for a graceful exit; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STOP_WITHIN_SECONDS)


def wait_until_ready(process: subprocess.Popen, base_url: str, log_path: Path) -> requests.Response:
    """Poll /readyz until it answers 200: each attempt is short, the whole wait is bounded, and a
    server that exits ends the wait at once (process.wait doubles as the pause between attempts)."""
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    last = "no attempt yet"
    with requests.Session() as session:
        while True:
            try:
                response = session.get(base_url + "/readyz", timeout=2)
                if response.status_code == 200:
                    return response
                last = f"HTTP {response.status_code}: {response.text[:300]}"
            except requests.RequestException as error:
                last = type(error).__name__
            if time.monotonic() > deadline:
                pytest.fail(
                    f"gunicorn was not ready within {READY_WITHIN_SECONDS:g} s (last: {last}).\n"
                    f"Output:\n{log_path.read_text(errors='replace')[-4000:]}"
                )
            try:
                status = process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(
                f"docker-entrypoint.sh exited with status {status} before it was ready.\n"
                f"Output:\n{log_path.read_text(errors='replace')[-4000:]}"
            )


@contextmanager
def running_container(tmp_path: Path, database_url: str, **settings: str) -> Iterator[Container]:
    """``docker-entrypoint.sh`` on 127.0.0.1:<free port>; always stopped (and reaped) on the way out."""
    port = free_port()
    home = tmp_path / f"home-{port}"
    home.mkdir()
    env = container_environment(database_url, home, HANDOFF_BIND=f"127.0.0.1:{port}", **settings)
    log_path = tmp_path / f"gunicorn-{port}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(  # noqa: S603
            ["./docker-entrypoint.sh"],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    container = Container(f"http://127.0.0.1:{port}", env, log_path, process)
    try:
        wait_until_ready(process, container.base_url, log_path)
        yield container
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_WITHIN_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # our own session: gunicorn and its workers
                process.wait(timeout=STOP_WITHIN_SECONDS)


@contextmanager
def fresh_postgres_database(admin) -> Iterator[tuple[str, str]]:
    """A new, empty PostgreSQL database (no tables at all); yields (name, url) and drops it after."""
    name = f"handoff_prod_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield name, postgres_url(name)
    finally:
        drop_database(admin, name)


@contextmanager
def sql_engine(url: str):
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def sign_in(session: requests.Session, base_url: str, email: str, password: str) -> requests.Response:
    """Through the real login form, its CSRF token scraped from the page."""
    page = session.get(base_url + "/login", timeout=HTTP_TIMEOUT)
    assert page.status_code == 200, page.text[:500]
    response = session.post(
        base_url + "/login",
        data={"email": email, "password": password, "csrf_token": csrf_token_from(page.text)},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )
    return response


class FormReader(HTMLParser):
    """The fields a browser would submit for the form with the given id (no submit buttons)."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form" and attributes.get("id") == self.form_id:
            self.inside, self.action = True, attributes.get("action")
        elif self.inside and tag == "input" and attributes.get("name"):
            kind = (attributes.get("type") or "text").lower()
            if kind in ("submit", "button"):
                return
            if kind in ("checkbox", "radio") and "checked" not in attributes:
                return
            self.fields[attributes["name"]] = attributes.get("value") or ("on" if kind == "checkbox" else "")
        elif self.inside and tag == "textarea" and attributes.get("name"):
            self.textarea = attributes["name"]
            self.fields[self.textarea] = ""

    def handle_data(self, data):
        if self.textarea:
            self.fields[self.textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self.textarea = None
        elif tag == "form":
            self.inside = False


def read_form(html: str, form_id: str) -> tuple[str, dict[str, str]]:
    reader = FormReader(form_id)
    reader.feed(html)
    reader.close()
    assert reader.action, f"the page has no form #{form_id}"
    return reader.action, reader.fields


def shape_a_received(contact_id: str, message_id: str, body: str, when) -> dict:
    return {
        "event": "message.received",
        "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": {
            "contact_id": contact_id,
            "message_id": message_id,
            "message_body": body,
            "platform": "whatsapp",
            "direction": "inbound",
            "contact_name": "",
        },
    }


def signed_headers(secret: str, body: bytes, when) -> dict[str, str]:
    timestamp = str(int(when.timestamp()))
    return {
        "content-type": "application/json",
        "x-vambe-timestamp": timestamp,
        "x-vambe-signature": signature_for(secret, timestamp, body),
    }


# --- a) Start-up exactly as the container does ------------------------------------------------------

ACCESS_LINE = re.compile(
    r'"(?P<request>[A-Z]+ \S+ HTTP/[\d.]+)" (?P<status>\d{3}) \S+ (?P<ms>\d+)ms request_id=(?P<rid>\S*)'
)


def access_lines(log: str) -> list[re.Match]:
    return [match for match in map(ACCESS_LINE.search, log.splitlines()) if match]


def test_container_start_up_migrates_serves_a_send_and_stops_gracefully(postgres_admin, tmp_path):
    secret_key = secrets.token_hex(32)
    webhook_secret = "whsec-" + secrets.token_hex(16)
    password = "pw-" + secrets.token_hex(12)
    email = "agent@handoff.example"
    with fresh_postgres_database(postgres_admin) as (_, database_url):
        with (
            running_container(
                tmp_path,
                database_url,
                SECRET_KEY=secret_key,
                VAMBE_WEBHOOK_SECRET=webhook_secret,
                GUNICORN_WORKERS="2",
            ) as server,
            requests.Session() as browser,
        ):
            health = browser.get(
                server.url("/healthz"), timeout=HTTP_TIMEOUT, headers={"X-Request-ID": "probe-health-1"}
            )
            assert health.status_code == 200
            assert health.json() == {"status": "ok"}
            assert health.headers["X-Request-ID"] == "probe-health-1"
            ready = browser.get(server.url("/readyz"), timeout=HTTP_TIMEOUT)
            assert ready.status_code == 200, ready.text
            assert ready.json()["ready"] is True
            assert ready.json()["migrations"] == "at head"  # the entrypoint migrated the empty database

            created = server.flask("users", "create", email, "--password-stdin", stdin=password + "\n")
            assert created.returncode == 0, created.stdout + created.stderr
            seeded = server.flask("sandbox", "seed")
            assert seeded.returncode == 0, seeded.stdout + seeded.stderr
            assert "Seeded the sandbox" in seeded.stdout

            login = sign_in(browser, server.base_url, email, password)
            assert login.status_code == 302, login.text[:500]
            with sql_engine(database_url) as engine, engine.connect() as connection:
                conversation_id, contact_id = connection.execute(
                    text("SELECT id, vambe_contact_id FROM conversations WHERE name = 'Valentina Rojas'")
                ).one()

            inbox = browser.get(server.url("/"), timeout=HTTP_TIMEOUT)
            assert inbox.status_code == 200
            assert f"/conversations/{conversation_id}" in inbox.text
            page = browser.get(server.url(f"/conversations/{conversation_id}"), timeout=HTTP_TIMEOUT)
            assert page.status_code == 200
            action, fields = read_form(page.text, "composer")
            assert {"csrf_token", "idempotency_key", "message", "pause_assistant"} <= set(fields)
            reply = f"Hola Valentina, reviso tu pedido ahora mismo ({uuid.uuid4().hex[:6]})"
            fields["message"] = reply
            sent = browser.post(server.url(action), data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT)
            assert sent.status_code == 303, sent.text[:1000]
            message_id = re.search(r"#message-(\d+)$", sent.headers["Location"]).group(1)
            thread = browser.get(server.url(f"/conversations/{conversation_id}"), timeout=HTTP_TIMEOUT)
            item = re.search(rf'<li id="message-{message_id}".*?</li>', thread.text, re.S)
            assert item, "the sent message is not in the thread"
            assert reply in item.group(0)
            assert '<span class="outcome outcome-sent">Sent</span>' in item.group(0)

            # A webhook carrying the secret in its URL: processed, and the URL is redacted in the log.
            payload = json.dumps(
                shape_a_received(contact_id, f"wamid.{uuid.uuid4().hex}", "¿Y cuándo llega?", utcnow())
            ).encode()
            hook = requests.post(
                server.url(f"/webhooks/vambe/{webhook_secret}"),
                data=payload,
                headers={"content-type": "application/json"},
                timeout=HTTP_TIMEOUT,
            )
            assert hook.status_code == 200, hook.text
            assert hook.json()["state"] == "processed"

            assert server.stop() == 0, f"gunicorn did not stop cleanly:\n{server.log()[-3000:]}"

        log = server.log()
    lines = access_lines(log)
    assert lines, f"no access log lines in:\n{log[-3000:]}"
    health_line = next(line for line in lines if line["request"].startswith("GET /healthz"))
    assert health_line["status"] == "200" and health_line["rid"] == "probe-health-1"
    assert int(health_line["ms"]) >= 0
    for line in lines:
        assert re.fullmatch(r"[0-9A-Za-z_-]{1,64}", line["rid"]), f"access line without a request id: {line.string}"
    assert any(line["request"].startswith("POST /webhooks/vambe/[redacted] ") for line in lines), log[-3000:]
    # The app's own log line for the send carries the request id of the send's access line.
    send_line = next(line for line in lines if line["request"].startswith(f"POST /conversations/{conversation_id}/"))
    assert send_line["status"] == "303"
    assert re.search(rf"app\.vambe \[{send_line['rid']}\] vambe POST \S+ -> 201", log), log[-3000:]
    assert "Traceback" not in log and "[ERROR]" not in log
    assert webhook_secret not in log
    assert secret_key not in log
    assert password not in log
    assert "Shutting down: Master" in log


# --- b) Readiness ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    """A database with no tables at all (not even alembic_version), on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_admin")) as (_, url):
        yield url


def assert_reveals_no_connection_details(body: str, database_url: str) -> None:
    url = make_url(database_url)
    assert database_url not in body
    assert url.render_as_string(hide_password=False) not in body
    if url.password:
        assert url.password not in body
    if url.database and "/" in url.database:
        assert url.database not in body  # an SQLite file path


def test_readyz_is_503_on_an_empty_database(empty_database_url):
    app = build_app(empty_database_url)
    try:
        client = app.test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json() == {"ready": False, "database": "ok", "migrations": "not migrated"}
        health = client.get("/healthz")
        assert health.status_code == 200  # alive, though not ready
        for response in (ready, health):
            assert_reveals_no_connection_details(response.get_data(as_text=True), empty_database_url)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_readyz_is_503_while_migrations_are_behind(empty_database_url):
    app = build_app(empty_database_url)
    try:
        directory = app.extensions["migrate"].directory
        config = Config()
        config.set_main_option("script_location", directory)
        (base,) = ScriptDirectory.from_config(config).get_bases()
        with app.app_context():
            upgrade(directory=directory, revision=base)
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["migrations"] == "behind: run flask db upgrade"
    finally:
        with app.app_context():
            db.engine.dispose()


def test_readyz_and_healthz_answer_200_without_login_once_migrated(app, client, database_url):
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"ready": True, "database": "ok", "migrations": "at head"}
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.get_json() == {"status": "ok"}
    for response in (ready, health):
        assert_reveals_no_connection_details(response.get_data(as_text=True), database_url)
    assert client.get("/").status_code == 302  # while the console itself needs a login


def test_readyz_is_503_and_discreet_when_the_database_is_unreachable():
    password = "pw-" + secrets.token_hex(8)
    database_url = f"postgresql://handoff:{password}@127.0.0.1:1/handoff"  # nothing listens on port 1
    app = build_app(database_url)
    try:
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json() == {"ready": False, "database": "unreachable", "migrations": "unknown"}
        body = ready.get_data(as_text=True)
        assert password not in body and "127.0.0.1:1" not in body
    finally:
        with app.app_context():
            db.engine.dispose()


# --- c) Secret-key refusal -------------------------------------------------------------------------


def test_a_real_installation_without_a_secret_key_refuses_to_build(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY is not set") as refusal:
        create_app(environ={"VAMBE_API_KEY": "k", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"})
    assert "secrets.token_hex(32)" in str(refusal.value)  # it says how to make a good one


@pytest.mark.parametrize("weak", ["change-me", "secret", "x" * 31])
def test_a_real_installation_with_a_weak_secret_key_refuses_to_build(tmp_path, weak):
    with pytest.raises(ConfigError, match="SECRET_KEY is too weak"):
        create_app(
            environ={"VAMBE_API_KEY": "k", "SECRET_KEY": weak, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"}
        )


def test_the_cli_refuses_a_missing_secret_key_with_a_message_not_a_traceback(tmp_path):
    api_key = "vk-live-" + secrets.token_hex(12)
    db_password = "dbpw-" + secrets.token_hex(8)
    env = container_environment(f"postgresql://handoff:{db_password}@127.0.0.1:1/handoff", tmp_path)
    env["VAMBE_API_KEY"] = api_key  # a real installation, and no SECRET_KEY
    result = subprocess.run(  # noqa: S603
        [str(VENV_BIN / "flask"), "--app", "wsgi", "routes"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in output
    assert api_key not in output
    assert db_password not in output
    assert "Traceback" not in output, f"the operator gets a raw traceback instead of the message:\n{output}"


# --- d) Forwarded headers, HSTS, cookie flags ------------------------------------------------------

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": "handoff.example"}


def with_probes(app):
    """Two routes that show what the app makes of a request (registered before its first request)."""

    @app.get("/_probe/request")
    def probe_request():
        return jsonify(remote_addr=request.remote_addr, is_secure=request.is_secure, scheme=request.scheme)

    @app.get("/_probe/redirect")
    def probe_redirect():
        return redirect(url_for("auth.login", _external=True))

    return app


@pytest.fixture
def proxied_app(database_url):
    app = with_probes(build_app(database_url, HANDOFF_TRUSTED_PROXIES="1"))
    yield app
    with app.app_context():
        db.engine.dispose()


def test_behind_one_trusted_proxy_forwarded_https_is_honoured(proxied_app):
    client = proxied_app.test_client()
    seen = client.get("/_probe/request", headers=FORWARDED).get_json()
    assert seen == {"remote_addr": "203.0.113.7", "is_secure": True, "scheme": "https"}
    for path in ("/login", "/healthz"):
        response = client.get(path, headers=FORWARDED)
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    moved = client.get("/_probe/redirect", headers=FORWARDED)
    assert moved.headers["Location"] == "https://handoff.example/login"
    # The same app over plain http (no forwarded headers) sends no HSTS.
    plain = client.get("/login")
    assert "Strict-Transport-Security" not in plain.headers
    assert client.get("/_probe/redirect").headers["Location"].startswith("http://")


def test_without_trusted_proxies_forwarded_headers_are_ignored(app):
    client = with_probes(app).test_client()
    seen = client.get("/_probe/request", headers=FORWARDED).get_json()
    assert seen == {"remote_addr": "127.0.0.1", "is_secure": False, "scheme": "http"}
    assert "Strict-Transport-Security" not in client.get("/login", headers=FORWARDED).headers
    assert client.get("/_probe/redirect", headers=FORWARDED).headers["Location"] == "http://localhost/login"


def test_every_response_carries_the_security_headers_and_a_request_id(client):
    response = client.get("/login")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert client.get("/login").headers["X-Request-ID"] != response.headers["X-Request-ID"]
    given = client.get("/healthz", headers={"X-Request-ID": "from-the-proxy-42"})
    assert given.headers["X-Request-ID"] == "from-the-proxy-42"


def test_a_database_error_mid_request_still_gets_the_error_page_and_a_request_id(app, auth):
    """What a lost race on a unique key does in production: the 500 page must still render
    (the session needs a rollback first), with the request id and security headers."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production, not as under TESTING
    email = "taken@example.com"

    @app.get("/_probe/db-error")
    def probe_db_error():
        db.session.add(
            User(email=email, name="twin", password_hash="x", role="agent", active=True, created_at=utcnow())
        )
        db.session.flush()  # the email is taken: IntegrityError
        return "unreachable"

    auth.login_as(email=email)
    try:
        response = auth.client.get("/_probe/db-error")
    except Exception as error:  # noqa: BLE001
        pytest.fail(f"the 500 handler itself crashed, so gunicorn answers with its bare page: {error!r}"[:600])
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.get_data(as_text=True)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers.get("X-Request-ID", ""))
    assert response.headers["X-Frame-Options"] == "DENY"


REAL_INSTALLATION = {"VAMBE_API_KEY": "k-" + "a" * 20, "VAMBE_API_BASE_URL": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("settings", "secure"),
    [
        pytest.param(REAL_INSTALLATION, True, id="real-installation-default"),
        pytest.param({**REAL_INSTALLATION, "HANDOFF_SECURE_COOKIES": "off"}, False, id="real-installation-off"),
        pytest.param({}, False, id="sandbox-default"),
        pytest.param({"HANDOFF_SECURE_COOKIES": "on"}, True, id="sandbox-on"),
    ],
)
def test_session_cookie_flags_after_a_login(database_url, settings, secure):
    app = build_app(database_url, SECRET_KEY=secrets.token_hex(32), **settings)
    try:
        with app.app_context():
            user = factories.make_user(email="cookie@example.com")
            assert user.id
        client = app.test_client()
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        response = client.post(
            "/login", data={"email": "cookie@example.com", "password": TEST_PASSWORD, "csrf_token": token}
        )
        assert response.status_code == 302
        cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
        assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
        flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookies[0].split(";")[1:]}
        assert "httponly" in flags
        assert flags.get("samesite") == "SameSite=Lax"
        assert ("secure" in flags) is secure
    finally:
        app.extensions["vambe_client"].session.close()
        with app.app_context():
            db.engine.dispose()


# --- e) Logs ---------------------------------------------------------------------------------------


@contextmanager
def captured_app_log() -> Iterator[io.StringIO]:
    """Point Handoff's own log handler (formatter and scrubbing filters included) at a buffer."""
    handler = next((h for h in logging.getLogger().handlers if getattr(h, "handoff", False)), None)
    assert handler is not None, "configure_logging installed no handler"
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def unauthorized_vambe(request):
    return FakeReply(401, {"statusCode": 401, "message": "Unauthorized"})


def test_json_logs_carry_request_ids_and_never_a_secret(database_url):
    api_key = "vk-" + secrets.token_hex(16)
    webhook_secret = "whsec-" + secrets.token_hex(16)
    secret_key = secrets.token_hex(32)
    wrong_password = "wrong-" + secrets.token_hex(8)
    with running_fake_vambe(unauthorized_vambe) as fake:
        app = build_app(
            database_url,
            VAMBE_API_KEY=api_key,
            VAMBE_API_BASE_URL=fake.url,
            VAMBE_WEBHOOK_SECRET=webhook_secret,
            SECRET_KEY=secret_key,
            HANDOFF_LOG_FORMAT="json",
        )

        @app.get("/_probe/log")
        def probe_log():
            # Code that carelessly logs a secret: the handler must scrub it.
            logging.getLogger("app.probe").warning(
                "careless: key=%s hook=%s session=%s", api_key, webhook_secret, secret_key
            )
            return "", 204

        try:
            with captured_app_log() as buffer:
                client = app.test_client()
                auth = Auth(app, client)
                failed = auth.login("nobody@example.com", wrong_password)
                assert failed.status_code == 422
                auth.login_as(email="agent@example.com")
                with app.app_context():
                    conversation = factories.make_conversation()
                    factories.make_message(conversation, body="Hola, ¿hay stock?")
                    conversation_id, contact_id = conversation.id, conversation.vambe_contact_id
                page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
                action, fields = read_form(page, "composer")
                fields["message"] = "Sí, nos quedan tres."
                sent = client.post(action, data=fields)
                assert sent.status_code == 200
                assert "Not sent" in sent.get_data(as_text=True)
                send_request_id = sent.headers["X-Request-ID"]
                assert [r.headers.get("x-api-key") for r in fake.requests] == [api_key]

                payload = json.dumps(shape_a_received(contact_id, "wamid.log-1", "Gracias", utcnow())).encode()
                hook = client.post(f"/webhooks/vambe/{webhook_secret}", data=payload, content_type="application/json")
                assert hook.status_code == 200
                probe = client.get("/_probe/log")
                assert probe.status_code == 204
                probe_request_id = probe.headers["X-Request-ID"]
            lines = buffer.getvalue().splitlines()
        finally:
            app.extensions["vambe_client"].session.close()
            with app.app_context():
                db.engine.dispose()

    assert lines, "nothing was logged"
    records = []
    for line in lines:
        record = json.loads(line)  # one JSON object per line
        assert {"time", "level", "logger", "message"} <= set(record), line
        records.append(record)
    vambe = [r for r in records if r["logger"] == "app.vambe"]
    assert len(vambe) == 1, records
    assert vambe[0]["level"] == "INFO"
    assert "-> 401" in vambe[0]["message"]
    assert vambe[0]["request_id"] == send_request_id
    careless = [r for r in records if r["logger"] == "app.probe"]
    assert len(careless) == 1 and careless[0]["request_id"] == probe_request_id
    assert careless[0]["message"] == "careless: key=[redacted] hook=[redacted] session=[redacted]"
    everything = buffer.getvalue()
    for secret in (api_key, webhook_secret, secret_key, wrong_password, TEST_PASSWORD):
        assert secret not in everything


def test_an_unknown_log_format_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="HANDOFF_LOG_FORMAT"):
        create_app(environ={"HANDOFF_LOG_FORMAT": "xml", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"})


# --- f) Stuck sends ---------------------------------------------------------------------------------


def sending_message(conversation, agent_id: int, *, age: timedelta, body: str) -> int:
    """A reply left "sending" (its worker died mid-send), last touched ``age`` ago."""
    touched = utcnow() - age
    message = Message(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        author=Author.AGENT,
        author_user=db.session.get(User, agent_id),
        body=body,
        pause_assistant=True,
        outcome=Outcome.SENDING,
        idempotency_key=uuid.uuid4().hex,
        window_override=False,
        occurred_at=touched,
        created_at=touched,
        updated_at=touched,
    )
    db.session.add(message)
    db.session.commit()
    return message.id


def outcomes(app, *ids: int) -> list[tuple[str, str | None]]:
    with app.app_context():
        found = {
            m.id: (m.outcome, m.outcome_reason) for m in db.session.scalars(select(Message).where(Message.id.in_(ids)))
        }
        return [found[i] for i in ids]


def test_opening_a_conversation_settles_its_stuck_sends_only(app, auth):
    agent_id = auth.login_as()
    age = app.config["STUCK_SEND_AGE"]
    with app.app_context():
        conversation = factories.make_conversation(name="Stuck Customer")
        other = factories.make_conversation(name="Other Customer")
        stuck = sending_message(conversation, agent_id, age=age + timedelta(seconds=30), body="stuck reply")
        fresh = sending_message(conversation, agent_id, age=age / 4, body="fresh reply")
        elsewhere = sending_message(other, agent_id, age=age + timedelta(minutes=5), body="elsewhere")
        conversation_id = conversation.id
    page = auth.client.get(f"/conversations/{conversation_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    item = re.search(rf'<li id="message-{stuck}".*?</li>', html, re.S).group(0)
    assert "Delivery unknown" in item and STUCK_REASON in item
    assert "Sending…" in re.search(rf'<li id="message-{fresh}".*?</li>', html, re.S).group(0)
    assert outcomes(app, stuck, fresh, elsewhere) == [
        (Outcome.UNKNOWN, STUCK_REASON),
        (Outcome.SENDING, None),
        (Outcome.SENDING, None),  # another conversation's page settles it, not this one
    ]


def test_sends_sweep_settles_every_stuck_send_and_leaves_fresh_ones(app, auth):
    agent_id = auth.login_as()
    age = app.config["STUCK_SEND_AGE"]
    with app.app_context():
        first = factories.make_conversation()
        second = factories.make_conversation()
        stuck = [
            sending_message(first, agent_id, age=age + timedelta(seconds=1), body="a"),
            sending_message(second, agent_id, age=timedelta(hours=3), body="b"),
        ]
        fresh = sending_message(first, agent_id, age=age - timedelta(seconds=20), body="c")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sends", "sweep"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Settled 2 stuck sends."
    assert outcomes(app, *stuck, fresh) == [
        (Outcome.UNKNOWN, STUCK_REASON),
        (Outcome.UNKNOWN, STUCK_REASON),
        (Outcome.SENDING, None),
    ]
    again = runner.invoke(args=["sends", "sweep"])
    assert again.exit_code == 0 and again.output.strip() == "Settled 0 stuck sends."


def test_the_stuck_send_age_is_configurable(database_url):
    app = build_app(database_url, HANDOFF_STUCK_SEND_MINUTES="10")
    try:
        assert app.config["STUCK_SEND_AGE"] == timedelta(minutes=10)
        with app.app_context():
            agent_id = factories.make_user().id
            conversation = factories.make_conversation()
            young = sending_message(conversation, agent_id, age=timedelta(minutes=5), body="five minutes")
            old = sending_message(conversation, agent_id, age=timedelta(minutes=11), body="eleven minutes")
        result = app.test_cli_runner().invoke(args=["sends", "sweep"])
        assert result.output.strip() == "Settled 1 stuck sends."
        assert outcomes(app, young, old) == [(Outcome.SENDING, None), (Outcome.UNKNOWN, STUCK_REASON)]
    finally:
        with app.app_context():
            db.engine.dispose()
