"""The console in Spanish and Brazilian Portuguese, chosen by the browser's Accept-Language or the user's own
setting, at desktop and phone widths: the longer strings must not break the layout."""

import re

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import Role, User
from tests import factories
from tests.browser.conftest import CHROMIUM_ARGS, DESKTOP, PHONE  # noqa: F401  (CHROMIUM_ARGS: same browser)
from tests.browser.pages import horizontal_overflow, sign_in

pytestmark = pytest.mark.browser

# What each language calls the pages visited, and its own words for a closed window.
LANGUAGES = {
    "es-CL": {
        "inbox": "Bandeja de entrada",
        "closed": "Ventana cerrada",
        "reports": "Informes",
        "users": "Usuarios",
        "settings": "Configuración",
        "health": "Estado de la conexión con Vambe",
        "templates": "Plantillas",
        "account": "Mi cuenta",
        "sign_in": "Iniciar sesión",
    },
    "pt-BR": {
        "inbox": "Caixa de entrada",
        "closed": "Janela fechada",
        "reports": "Relatórios",
        "users": "Usuários",
        "settings": "Configurações",
        "health": "Saúde da conexão com a Vambe",
        "templates": "Modelos",
        "account": "Minha conta",
        "sign_in": "Entrar",
    },
}


def page_in(browser, language: str, viewport: dict):
    context = browser.new_context(viewport=viewport, locale=language, timezone_id="America/Santiago")
    context.set_default_timeout(10_000)
    return context, context.new_page()


def sign_in_in(page, base_url: str, email: str, words: dict) -> None:
    page.goto(base_url + "/login")
    expect(page.get_by_role("heading", name=words["sign_in"], level=1)).to_be_visible()
    page.locator("#email").fill(email)
    page.locator("#password").fill("correct horse battery")
    page.locator("form button[type=submit]").click()
    expect(page.get_by_role("heading", name=words["inbox"], level=1)).to_be_visible()


def expect_heading(page, text: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_contain_text(text)
    assert horizontal_overflow(page) == 0, "the page is wider than the screen"


@pytest.mark.parametrize("language", list(LANGUAGES))
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1440", "360"])
def test_every_page_speaks_the_browsers_language(
    browser, live_server, live_app, seeded, screenshot, language, viewport
):
    words = LANGUAGES[language]
    with live_app.app_context():
        factories.make_user(email="admin@lang.test", name="Ana Admin", role=Role.ADMIN)
    context, page = page_in(browser, language, viewport)
    try:
        sign_in_in(page, live_server, "admin@lang.test", words)
        assert page.locator("html").get_attribute("lang") == ("es" if language == "es-CL" else "pt-BR")
        expect_heading(page, words["inbox"])
        screenshot(page, f"{language}-inbox")
        page.goto(f"{live_server}/conversations/{seeded.closed_id}")
        expect(page.locator(".window-badge").first).to_contain_text(words["closed"])
        expect_heading(page, seeded.closed_name)
        screenshot(page, f"{language}-conversation-closed")
        page.goto(f"{live_server}/review/reports")
        expect_heading(page, words["reports"])
        screenshot(page, f"{language}-reports")
        for path, key in (
            ("/admin/users", "users"),
            ("/admin/settings", "settings"),
            ("/admin/health", "health"),
            ("/admin/templates", "templates"),
        ):
            page.goto(live_server + path)
            expect_heading(page, words[key])
            screenshot(page, f"{language}-admin-{key}")
    finally:
        context.close()


def test_a_users_own_language_wins_over_the_browsers(browser, live_server, live_app, seeded):
    with live_app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == seeded.agent_email))
        user.locale = "pt_BR"
        db.session.commit()
    context, page = page_in(browser, "es-CL", DESKTOP)
    try:
        page.goto(live_server + "/login")
        expect(page.get_by_role("heading", level=1)).to_have_text("Iniciar sesión")  # signed out: the browser's
        page.locator("#email").fill(seeded.agent_email)
        page.locator("#password").fill("correct horse battery")
        page.locator("form button[type=submit]").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Caixa de entrada")
        expect(page.get_by_role("link", name=re.compile("Minha conta"))).to_be_visible()
    finally:
        context.close()


def test_english_stays_english(page, live_server, seeded):
    sign_in(page, live_server, seeded.agent_email)
    expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")
