"""Browser fixtures: the real app served over loopback HTTP, driven by Debian's Chromium through Playwright.

Each test gets its own migrated database (SQLite and PostgreSQL, through ``database_url``), seeded with
the sandbox demo, an agent and two named conversations, and its own server on a free port.
"""

import shutil
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from app import vambe_client
from app.clock import utcnow
from app.extensions import db
from app.models import Role
from app.sandbox.seeding import seed_sandbox
from tests import factories
from tests.conftest import TEST_PASSWORD, build_app, require

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 360, "height": 740}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Seeded:
    """What the live server's database holds besides the sandbox demo."""

    agent_email: str
    agent_name: str  # signs in with TEST_PASSWORD
    open_name: str  # the customer wrote 10 minutes ago: the 24h window is open
    open_id: int
    closed_name: str  # the customer wrote 30 hours ago: the window closed 6 hours ago
    closed_id: int


@pytest.fixture
def backend(database_url) -> str:
    """The backend's name, "sqlite" or "postgresql", for screenshot names."""
    return make_url(database_url).get_backend_name()


@pytest.fixture
def live_app(database_url):
    """The app on this test's database, seeded as a sandbox installation would be."""
    app = build_app(database_url)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def seeded(live_app) -> Seeded:
    with live_app.app_context():
        seed_sandbox(vambe_client(), now=utcnow())
        agent = factories.make_user(
            email="alex@handoff.test", name="Alex Agent", role=Role.AGENT, password=TEST_PASSWORD
        )
        open_conversation = factories.make_sandbox_conversation(
            last_inbound_ago=timedelta(minutes=10), name="Daniela Reyes"
        )
        closed_conversation = factories.make_sandbox_conversation(
            last_inbound_ago=timedelta(hours=30), name="Tomás Vidal"
        )
        seeded = Seeded(
            agent_email=agent.email,
            agent_name=agent.name,
            open_name=open_conversation.name,
            open_id=open_conversation.id,
            closed_name=closed_conversation.name,
            closed_id=closed_conversation.id,
        )
        db.session.remove()
    return seeded


SCRIPT_LATENCY = 0.25  # s; far longer than Playwright takes between two steps


@pytest.fixture
def late_scripts(live_app):
    """Serve the deferred scripts late. On a loaded CI machine they sometimes arrive after the page's
    heading shows, and a key pressed then reaches no handler; delaying them on every run turns that race
    into a failure of the test that has it, instead of a rare one."""
    serve_static = live_app.view_functions["static"]

    def serve_scripts_late(filename):
        if filename.endswith(".js"):
            time.sleep(SCRIPT_LATENCY)
        response = serve_static(filename=filename)
        # Read and close the file here: when the browser has gone by the time the server writes, Werkzeug's
        # dev server can fail in its cleanup before closing the response, and the open file fails the test
        # that happens to be running when it is collected (ResourceWarning). make_sequence() alone only
        # defers the file's close to the response's.
        response.direct_passthrough = False
        body = response.get_data()
        response.close()
        response.set_data(body)
        return response

    live_app.view_functions["static"] = serve_scripts_late


@pytest.fixture
def live_server(live_app, seeded, late_scripts):
    """Serve the seeded app on a free loopback port in a daemon thread; yields the base URL."""
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        require("Chromium", "no `chromium` executable on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        require("Playwright", "the playwright package is not installed (pip install -e '.[dev]')")
    expect.set_options(timeout=10_000)  # a loaded CI machine needs more than the default 5 s
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser):
    """Open browser contexts with a given viewport; all of them are closed after the test."""
    contexts = []

    violations = []

    def open_context(viewport: dict = DESKTOP):
        context = browser.new_context(viewport=viewport, locale="en-US", timezone_id="America/Santiago")
        context.set_default_timeout(10_000)
        # Every page of every test runs under the Content-Security-Policy: anything it blocks fails the test.
        context.on("page", lambda page: page.on("console", lambda message: note_violation(message, violations)))
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()
    assert violations == [], "the Content-Security-Policy blocked something"


def note_violation(message, violations: list[str]) -> None:
    if "Content Security Policy" in message.text:
        violations.append(f"{message.text} at {message.location}")


@pytest.fixture
def viewport() -> dict:
    """The page's viewport: 1440x900, unless a test parametrizes ``viewport`` (e.g. to PHONE)."""
    return DESKTOP


@pytest.fixture
def page(new_context, viewport):
    """A fresh page, in a fresh context, per test."""
    return new_context(viewport).new_page()


@pytest.fixture
def page_errors(page):
    """Uncaught script errors on the page (htmx included); tests assert there were none."""
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


@pytest.fixture
def screenshot(backend):
    """Save a full-page screenshot as screenshots/<backend>-<width>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        width = page.viewport_size["width"]
        path = SCREENSHOTS / f"{backend}-{width}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
