"""Quick replies: leads manage them, agents cannot; validation; the composer offers them, escaped."""

import html as htmllib
import re
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.extensions import db
from app.models import QuickReply, Role
from tests import factories


def make_reply(app, shortcut: str = "saludo", body: str = "¡Hola! ¿En qué te puedo ayudar?") -> int:
    with app.app_context():
        author = factories.make_user(role=Role.LEAD)
        now = utcnow()
        reply = QuickReply(shortcut=shortcut, body=body, created_by=author, created_at=now, updated_at=now)
        db.session.add(reply)
        db.session.commit()
        return reply.id


def stored(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [(r.shortcut, r.body) for r in db.session.scalars(select(QuickReply).order_by(QuickReply.shortcut))]


@pytest.fixture
def lead(auth):
    return auth.login_as(Role.LEAD)


def post(auth, path: str, **data):
    return auth.client.post(path, data={"csrf_token": auth.csrf_token(), **data})


def error_text(html: str) -> str:
    return " ".join(
        htmllib.unescape(" ".join(re.findall(r'<small class="field-error"[^>]*>(.*?)</small>', html, re.S))).split()
    )


# ---------------------------------------------------------------- who may manage them


ROUTES = [
    ("get", "/quick-replies"),
    ("post", "/quick-replies"),
    ("get", "/quick-replies/{id}"),
    ("post", "/quick-replies/{id}"),
    ("post", "/quick-replies/{id}/delete"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_an_agent_is_refused_every_management_page(app, auth, method, path):
    reply_id = make_reply(app)
    auth.login_as(Role.AGENT)
    path = path.format(id=reply_id)
    if method == "get":
        response = auth.client.get(path)
    else:
        response = auth.client.post(
            path, data={"csrf_token": auth.csrf_token(), "shortcut": "hacked", "body": "Texto cambiado"}
        )
    assert response.status_code == 403
    assert stored(app) == [("saludo", "¡Hola! ¿En qué te puedo ayudar?")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_anonymous_is_sent_to_login(app, client, method, path):
    reply_id = make_reply(app)
    path = path.format(id=reply_id)
    if method == "get":
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")
        assert unquote(response.headers["Location"]).startswith(f"/login?next={path}")
    else:
        token = re.search(
            r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").get_data(as_text=True)
        )
        response = client.post(path, data={"csrf_token": token.group(1), "shortcut": "hacked", "body": "Texto"})
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    assert stored(app) == [("saludo", "¡Hola! ¿En qué te puedo ayudar?")]


def test_the_navigation_shows_quick_replies_to_leads_only(app, auth):
    auth.login_as(Role.AGENT)
    assert 'href="/quick-replies"' not in auth.client.get("/").get_data(as_text=True)
    auth.client.post("/logout", data={"csrf_token": auth.csrf_token()})
    auth.login_as(Role.LEAD)
    assert 'href="/quick-replies"' in auth.client.get("/").get_data(as_text=True)


def test_an_admin_may_manage_them_too(app, auth):
    auth.login_as(Role.ADMIN)
    assert auth.client.get("/quick-replies").status_code == 200
    assert post(auth, "/quick-replies", shortcut="admin-note", body="Nota").status_code == 303
    assert stored(app) == [("admin-note", "Nota")]


# ---------------------------------------------------------------- a lead creates, edits, deletes


def test_a_lead_creates_a_quick_reply(app, auth, lead):
    empty = auth.client.get("/quick-replies").get_data(as_text=True)
    assert "No quick replies yet." in empty

    response = post(auth, "/quick-replies", shortcut="envio-gratis", body="El envío es gratis sobre $30.000.")

    assert response.status_code == 303
    assert response.headers["Location"] == "/quick-replies"
    assert stored(app) == [("envio-gratis", "El envío es gratis sobre $30.000.")]
    with app.app_context():
        reply = db.session.scalar(select(QuickReply))
        assert reply.created_by_id == lead
    html = auth.client.get("/quick-replies").get_data(as_text=True)
    assert "<code>/envio-gratis</code>" in html and "El envío es gratis sobre $30.000." in html
    assert "Added the quick reply /envio-gratis." in html


def test_a_lead_edits_a_quick_reply(app, auth, lead):
    reply_id = make_reply(app)

    form = auth.client.get(f"/quick-replies/{reply_id}").get_data(as_text=True)
    assert "Edit /saludo" in form
    assert re.search(r'<input[^>]*name="shortcut"[^>]*value="saludo"', form)
    assert "¡Hola! ¿En qué te puedo ayudar?</textarea>" in form

    response = post(auth, f"/quick-replies/{reply_id}", shortcut="bienvenida", body="¡Bienvenido a la tienda!")

    assert response.status_code == 303
    assert stored(app) == [("bienvenida", "¡Bienvenido a la tienda!")]
    assert "Updated the quick reply /bienvenida." in auth.client.get("/quick-replies").get_data(as_text=True)


def test_saving_an_edit_with_the_same_shortcut_is_not_a_duplicate(app, auth, lead):
    reply_id = make_reply(app)
    assert post(auth, f"/quick-replies/{reply_id}", shortcut="saludo", body="Hola de nuevo").status_code == 303
    assert stored(app) == [("saludo", "Hola de nuevo")]


def test_a_lead_deletes_a_quick_reply(app, auth, lead):
    keep = make_reply(app, "keep", "Me quedo")
    gone = make_reply(app, "gone", "Me voy")

    response = post(auth, f"/quick-replies/{gone}/delete")

    assert response.status_code == 303
    assert response.headers["Location"] == "/quick-replies"
    assert stored(app) == [("keep", "Me quedo")]
    assert "Deleted the quick reply /gone." in auth.client.get("/quick-replies").get_data(as_text=True)
    assert auth.client.get(f"/quick-replies/{gone}").status_code == 404
    assert post(auth, f"/quick-replies/{gone}/delete").status_code == 404
    assert auth.client.get(f"/quick-replies/{keep}").status_code == 200


def test_editing_an_unknown_quick_reply_is_404(auth, lead):
    assert auth.client.get("/quick-replies/4242").status_code == 404
    assert post(auth, "/quick-replies/4242", shortcut="x", body="y").status_code == 404


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("typed", "saved"),
    [
        ("/envio", "envio"),
        ("Shipping-Delay", "shipping-delay"),
        ("  /HORARIO  ", "horario"),
        ("24h", "24h"),
        ("a" * 40, "a" * 40),
        ("/" + "b" * 40, "b" * 40),
    ],
    ids=["slash", "upper", "spaces-slash-upper", "digits", "40-chars", "slash-and-40-chars"],
)
def test_the_shortcut_is_normalised(app, auth, lead, typed, saved):
    response = post(auth, "/quick-replies", shortcut=typed, body="Texto")
    assert response.status_code == 303, error_text(response.get_data(as_text=True))
    assert stored(app) == [(saved, "Texto")]


@pytest.mark.parametrize(
    "shortcut",
    ["envío", "two words", "-dash-first", "emoji-😀", "under_score", "a" * 41, "", "/", "   "],
    ids=["accent", "space", "dash-first", "emoji", "underscore", "41-chars", "empty", "only-slash", "blank"],
)
def test_a_bad_shortcut_is_refused_with_a_message(app, auth, lead, shortcut):
    response = post(auth, "/quick-replies", shortcut=shortcut, body="Texto válido")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert error_text(html)  # the form says what is wrong
    assert "Texto válido</textarea>" in html  # and keeps what was typed
    assert stored(app) == []


def test_a_duplicate_shortcut_is_refused_with_a_message(app, auth, lead):
    make_reply(app, "saludo", "Hola")

    response = post(auth, "/quick-replies", shortcut="/SALUDO", body="Otro saludo")

    assert response.status_code == 422
    assert "There is already a quick reply “/saludo”." in error_text(response.get_data(as_text=True))
    assert stored(app) == [("saludo", "Hola")]
    # The database is usable after the refused insert.
    assert post(auth, "/quick-replies", shortcut="despedida", body="Chao").status_code == 303
    assert stored(app) == [("despedida", "Chao"), ("saludo", "Hola")]


def test_renaming_onto_another_shortcut_is_refused(app, auth, lead):
    make_reply(app, "saludo", "Hola")
    other = make_reply(app, "despedida", "Chao")

    response = post(auth, f"/quick-replies/{other}", shortcut="saludo", body="Chao cambiado")

    assert response.status_code == 422
    assert "There is already a quick reply “/saludo”." in error_text(response.get_data(as_text=True))
    assert stored(app) == [("despedida", "Chao"), ("saludo", "Hola")]


@pytest.mark.parametrize("body", ["", "   ", "\r\n\r\n", "x" * 4097], ids=["empty", "spaces", "newlines", "4097"])
def test_an_empty_or_too_long_body_is_refused(app, auth, lead, body):
    response = post(auth, "/quick-replies", shortcut="texto", body=body)
    assert response.status_code == 422
    assert error_text(response.get_data(as_text=True))
    assert stored(app) == []


def test_a_body_of_4096_characters_is_accepted_and_line_breaks_are_normalised(app, auth, lead):
    assert post(auth, "/quick-replies", shortcut="largo", body="x" * 4096).status_code == 303
    assert post(auth, "/quick-replies", shortcut="lineas", body="Hola\r\nChao").status_code == 303
    assert stored(app) == [("largo", "x" * 4096), ("lineas", "Hola\nChao")]


def test_without_a_csrf_token_nothing_is_saved(app, auth, lead):
    response = auth.client.post("/quick-replies", data={"shortcut": "saludo", "body": "Hola"})
    assert response.status_code == 400
    assert stored(app) == []


# ---------------------------------------------------------------- the composer offers them


def quick_reply_options(html: str) -> list[tuple[str, str]]:
    listbox = re.search(r'<ul id="quick-replies"[^>]*role="listbox"[^>]*>(.*?)</ul>', html, re.S)
    assert listbox, "the composer has no #quick-replies listbox"
    options = re.findall(r'<li role="option"[^>]*data-shortcut="([^"]*)" data-body="([^"]*)"', listbox.group(1))
    return [(htmllib.unescape(shortcut), htmllib.unescape(body)) for shortcut, body in options]


def test_the_composer_lists_the_quick_replies_for_agents(app, auth):
    make_reply(app, "saludo", "¡Hola! ¿En qué te puedo ayudar?")
    make_reply(app, "envio", "Tu pedido sale mañana.\nTe aviso cuando llegue.")
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation_id = factories.make_sandbox_conversation().id

    html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)

    assert quick_reply_options(html) == [
        ("envio", "Tu pedido sale mañana.\nTe aviso cuando llegue."),
        ("saludo", "¡Hola! ¿En qué te puedo ayudar?"),
    ]
    assert 'data-quick-replies="quick-replies"' in html
    assert "/ inserts a quick reply" in html


def test_quick_reply_text_is_escaped_in_the_composer(app, auth):
    body = "Hola <script>alert(\"x\")</script> & <b>adiós</b> 'fin'"
    make_reply(app, "peligro", body)
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation_id = factories.make_sandbox_conversation().id

    html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)

    assert "<script>alert" not in html and "<b>adiós</b>" not in html
    assert "&lt;script&gt;alert(" in html
    assert quick_reply_options(html) == [("peligro", body)]  # the attribute round-trips exactly


def test_quick_reply_text_is_escaped_on_the_management_page(app, auth, lead):
    body = "<script>alert(1)</script>"
    assert post(auth, "/quick-replies", shortcut="xss", body=body).status_code == 303
    html = auth.client.get("/quick-replies").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_without_quick_replies_the_composer_has_no_listbox(app, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation_id = factories.make_sandbox_conversation().id
    html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert 'id="quick-replies"' not in html
    assert "/ inserts a quick reply" not in html


def test_a_new_quick_reply_reaches_the_composer(app, auth, lead):
    with app.app_context():
        conversation_id = factories.make_sandbox_conversation().id
    post(auth, "/quick-replies", shortcut="/Horario", body="Atendemos de 9 a 18 h.")
    html = auth.client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert quick_reply_options(html) == [("horario", "Atendemos de 9 a 18 h.")]
