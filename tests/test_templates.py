"""Approved templates: the registry's rules, configuration as code, sending one through the exact documented
request (once, whatever happens), the sandbox's strict twin of the endpoint, and the composer outside the window."""

import json
import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock import utcnow
from app.domain.sending import SendRefused, TemplateSend, send_template
from app.domain.templates import (
    TemplateFields,
    TemplateRefused,
    export_templates,
    filled,
    import_templates,
    placeholder_count,
    save_template,
)
from app.extensions import db
from app.models import AuditEvent, AuditKind, Message, MessageTemplate, Outcome, Role
from app.sandbox.state import SANDBOX_TEMPLATES, SandboxMessage
from tests import factories
from tests.conftest import Auth, csrf_token_from
from tests.fake_vambe import Hang, Reply, running_fake_vambe
from tests.test_sandbox import API, key_header
from tests.test_send_faults import installation

TEMPLATE_ID = "1234567890123456"
BODY = "Hola {{1}}, tu pedido {{2}} está listo."
PARTIAL = {"HX-Request": "true", "HX-Request-Type": "partial"}


def fields(**changes) -> TemplateFields:
    return TemplateFields(
        **{"vambe_template_id": TEMPLATE_ID, "name": "pedido_listo", "language": "es", "body": BODY} | changes
    )


def register(**changes) -> MessageTemplate:
    return save_template(fields(**changes), None, now=utcnow())


# -- the registry -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("Hola {{2}}", "{{1}} is missing"),  # missing
        ("Hola {{1}}, {{3}}", "{{2}} is missing"),  # a gap
        ("Hola {{2}}, tu pedido {{1}}", "first appear in order"),  # wrong order
        ("x" * 1025, "1 to 1024 characters"),  # too long
        ("   ", "1 to 1024 characters"),
    ],
)
def test_bodies_whose_placeholders_meta_would_refuse_are_refused(app_ctx, body, reason):
    with pytest.raises(TemplateRefused, match=re.escape(reason)):
        register(body=body)
    assert db.session.scalar(select(func.count(MessageTemplate.id))) == 0


def test_a_placeholder_may_repeat_and_count_once():
    assert placeholder_count("{{1}} y {{2}}, {{1}} otra vez; {{ 2 }}") == 2
    assert placeholder_count("Sin valores") == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"vambe_template_id": "not an id"}, "template id"),
        ({"vambe_template_id": ""}, "template id"),
        ({"language": "Spanish"}, "language"),
        ({"name": ""}, "name"),
        ({"category": "PROMO"}, "category"),
        ({"header": "Hola {{1}}"}, "cannot have placeholders"),
        ({"footer": "x" * 61}, "at most 60"),
        ({"business_number_id": 999999}, "business number"),
    ],
)
def test_other_fields_are_checked(app_ctx, change, reason):
    with pytest.raises(TemplateRefused, match=reason):
        register(**change)


def test_a_duplicate_id_is_refused_and_saving_is_audited(app_ctx):
    register()
    with pytest.raises(TemplateRefused, match="already registered"):
        register(name="otra")
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.TEMPLATE_SAVED)).all()
    assert [event.details["id"] for event in events] == [TEMPLATE_ID]


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (["Ana"], "takes 2 value(s); 1 given"),  # missing
        (["Ana", "A-1", "extra"], "takes 2 value(s); 3 given"),  # extra
        (["Ana", "  "], "Fill in {{2}}"),
        (["Ana", "x" * 1025], "at most 1024"),  # too long
        (["Ana\nLópez", "A-1"], "one line"),
        (["Ana", "A-1     B"], "runs of spaces"),
    ],
)
def test_values_that_do_not_fit_the_template_are_refused(app_ctx, values, reason):
    with pytest.raises(TemplateRefused, match=re.escape(reason)):
        filled(register(), values)


def test_the_filled_message_is_what_the_customer_sees(app_ctx):
    template = register(header="Tienda Sur", footer="Responde STOP para no recibir más")
    assert filled(template, [" Ana ", "A-1"]) == (
        "Tienda Sur\n\nHola Ana, tu pedido A-1 está listo.\n\nResponde STOP para no recibir más"
    )


# -- configuration as code ----------------------------------------------------------------------------------------


def test_importing_the_same_file_twice_changes_nothing_and_export_round_trips(app_ctx):
    number = factories.make_business_number(phone_number="56211111111")
    entries = [
        {"id": "111", "name": "uno", "language": "es", "body": "Hola {{1}}", "business_number": "+56 2 1111 1111"},
        {"id": "222", "name": "dos", "language": "pt_BR", "body": "Olá {{1}}, {{2}}", "category": "UTILITY"},
    ]
    assert import_templates(json.dumps(entries), now=utcnow()) == (2, 0)
    assert import_templates(json.dumps(entries), now=utcnow()) == (0, 0)
    assert (
        db.session.scalar(select(MessageTemplate).where(MessageTemplate.vambe_template_id == "111")).business_number_id
        == number.id
    )
    exported = export_templates()
    assert import_templates(exported, now=utcnow()) == (0, 0)
    entries[1]["body"] = "Olá {{1}}!"
    assert import_templates(json.dumps(entries), now=utcnow()) == (0, 1)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"id": "333", "name": "tres", "language": "es", "body": "{{2}}"}, "Entry 2: The placeholders"),
        ({"id": "333", "name": "tres", "language": "es"}, "Entry 2: body is required"),
        ({"id": "111", "name": "otra", "language": "es", "body": "x"}, "Entry 2: the id 111 appears twice"),
        ({"id": "333", "name": "tres", "language": "es", "body": "x", "colour": "red"}, "Entry 2: unknown field"),
        ("not an object", "Entry 2: each entry is an object"),
    ],
)
def test_a_bad_entry_is_reported_by_position_and_nothing_of_the_file_is_applied(app_ctx, bad, reason):
    good = {"id": "111", "name": "uno", "language": "es", "body": "Hola {{1}}"}
    with pytest.raises(TemplateRefused, match=re.escape(reason)):
        import_templates(json.dumps([good, bad]), now=utcnow())
    assert db.session.scalar(select(func.count(MessageTemplate.id))) == 0


def test_the_import_command_reports_and_applies_nothing_on_error(app, tmp_path):
    path = tmp_path / "templates.json"
    path.write_text(json.dumps([{"id": "111", "name": "uno", "language": "es", "body": "Hola {{1}}"}, {"id": "x y"}]))
    result = app.test_cli_runner().invoke(args=["templates", "import", str(path)])
    assert result.exit_code == 1 and "Nothing imported. Entry 2:" in result.output
    path.write_text(json.dumps([{"id": "111", "name": "uno", "language": "es", "body": "Hola {{1}}"}]))
    assert (
        "1 templates added, 0 changed." in app.test_cli_runner().invoke(args=["templates", "import", str(path)]).output
    )
    exported = app.test_cli_runner().invoke(args=["templates", "export"]).output
    assert json.loads(exported)[0]["id"] == "111"


# -- the registry over HTTP ---------------------------------------------------------------------------------------


def test_an_admin_registers_a_template_and_a_refusal_says_why(app, client, auth):
    auth.login_as(Role.ADMIN)
    token = auth.csrf_token("/admin/templates")
    form = {"csrf_token": token, "vambe_template_id": TEMPLATE_ID, "name": "pedido", "language": "es", "body": "{{2}}"}
    refused = client.post("/admin/templates", data=form)
    assert refused.status_code == 422 and "{{1}} is missing" in refused.get_data(as_text=True)
    saved = client.post("/admin/templates", data=form | {"body": BODY, "active": "y"})
    assert saved.status_code == 303
    with app.app_context():
        template = db.session.scalar(select(MessageTemplate))
        assert (template.vambe_template_id, template.body, template.active) == (TEMPLATE_ID, BODY, True)
        template_id = template.id
    assert client.post(f"/admin/templates/{template_id}", data=form | {"body": BODY}).status_code == 303
    with app.app_context():
        assert db.session.get(MessageTemplate, template_id).active is False  # the box was left unticked


@pytest.mark.parametrize("role", [Role.AGENT, Role.LEAD])
def test_only_admins_keep_the_registry(app, client, auth, role):
    auth.login_as(role)
    assert client.get("/admin/templates").status_code == 403
    token = auth.csrf_token("/")
    form = {"csrf_token": token, "vambe_template_id": TEMPLATE_ID, "name": "x", "language": "es", "body": "Hola"}
    assert client.post("/admin/templates", data=form).status_code == 403
    with app.app_context():
        assert db.session.scalar(select(func.count(MessageTemplate.id))) == 0


# -- sending one: the exact request, once ---------------------------------------------------------------------------


@pytest.fixture
def fake():
    with running_fake_vambe(lambda request: Reply(201)) as server:
        yield server
        server.release.set()


@pytest.fixture
def live(database_url, fake):
    """An installation talking to ``fake`` (the send-fault matrix's: short deadlines)."""
    app = installation(database_url, fake.url)
    yield app
    app.extensions["vambe_client"].session.close()
    with app.app_context():
        db.engine.dispose()


def closed_conversation_with_template(app) -> tuple[int, int]:
    with app.app_context():
        number = factories.make_business_number(phone_number="56211111111")
        conversation = factories.make_conversation(
            phone="+56912345678", last_inbound_at=utcnow() - timedelta(hours=30), business_number=number
        )
        return conversation.id, register().id


def template_form(auth: Auth, conversation_id: int, template_id: int) -> dict:
    html = auth.client.get(f"/conversations/{conversation_id}/template-form?template={template_id}").get_data(
        as_text=True
    )
    form_html = html[html.index('class="template-form"') :]
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', form_html).group(1)
    return {"csrf_token": csrf_token_from(html), "idempotency_key": key, "template_id": str(template_id)}


def test_a_template_goes_out_as_documented_and_is_stored_as_one(live, fake):
    auth = Auth(live, live.test_client())
    auth.login_as(Role.AGENT)
    conversation_id, template_id = closed_conversation_with_template(live)
    form = template_form(auth, conversation_id, template_id) | {"value-0": "Ana", "value-1": "A-1"}
    for _ in range(2):  # a double submit
        assert (
            auth.client.post(f"/conversations/{conversation_id}/templates", data=form, headers=PARTIAL).status_code
            == 200
        )
    [request] = [r for r in fake.requests if r.method == "POST"]
    assert request.path == f"/api/public/whatsapp/message/send/56912345678/template/{TEMPLATE_ID}"
    assert request.query == {"from-phone-number": ["56211111111"]}
    assert request.headers["x-api-key"] == "sk-live-fault-matrix-test-key"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {"variables": ["Ana", "A-1"], "meta_data": {}}
    with live.app_context():
        [message] = db.session.scalars(select(Message).where(Message.template_name.is_not(None))).all()
        assert (message.body, message.template_name, message.outcome) == (
            "Hola Ana, tu pedido A-1 está listo.",
            "pedido_listo",
            Outcome.SENT,
        )
        assert message.pause_assistant is False and not message.window_override


def test_a_timeout_is_delivery_unknown_and_the_same_send_again_calls_nobody(live, fake):
    fake.responder = lambda request: Hang()
    auth = Auth(live, live.test_client())
    auth.login_as(Role.AGENT)
    conversation_id, template_id = closed_conversation_with_template(live)
    form = template_form(auth, conversation_id, template_id) | {"value-0": "Ana", "value-1": "A-1"}
    auth.client.post(f"/conversations/{conversation_id}/templates", data=form, headers=PARTIAL)
    fake.release.set()
    fake.responder = lambda request: Reply(201)
    auth.client.post(f"/conversations/{conversation_id}/templates", data=form, headers=PARTIAL)  # a retry, same key
    assert len([r for r in fake.requests if r.method == "POST"]) == 1
    with live.app_context():
        [message] = db.session.scalars(select(Message).where(Message.template_name.is_not(None))).all()
        assert message.outcome == Outcome.UNKNOWN


@pytest.mark.parametrize(
    ("values", "reason"),
    [({"value-0": "Ana"}, "takes 2 value(s); 1 given"), ({"value-0": "Ana", "value-1": ""}, "Fill in")],
)
def test_values_that_do_not_fit_are_refused_before_anything_is_sent(live, fake, values, reason):
    auth = Auth(live, live.test_client())
    auth.login_as(Role.AGENT)
    conversation_id, template_id = closed_conversation_with_template(live)
    form = template_form(auth, conversation_id, template_id) | values
    response = auth.client.post(f"/conversations/{conversation_id}/templates", data=form, headers=PARTIAL)
    assert response.status_code == 422 and reason in response.get_data(as_text=True)
    assert [r for r in fake.requests if r.method == "POST"] == []


def test_an_inactive_template_or_one_of_another_number_cannot_be_sent(app_ctx):
    agent = factories.make_user()
    ours = factories.make_business_number(phone_number="56211111111")
    theirs = factories.make_business_number(phone_number="56222222222")
    conversation = factories.make_conversation(business_number=ours)
    other_number = register(business_number_id=theirs.id)
    inactive = register(vambe_template_id="999", active=False)
    for template in (other_number, inactive):
        with pytest.raises(SendRefused):
            send_template(
                conversation,
                agent,
                TemplateSend(template.id, ["Ana", "A-1"], uuid.uuid4().hex),
                client=None,
                now=utcnow(),
            )
    assert db.session.scalar(select(func.count(Message.id)).where(Message.template_name.is_not(None))) == 0


# -- the sandbox's template endpoint --------------------------------------------------------------------------------


SANDBOX_ID = next(iter(SANDBOX_TEMPLATES))


def template_url(phone: str, template_id: str = SANDBOX_ID, query: str = "") -> str:
    return f"{API}/whatsapp/message/send/{phone}/template/{template_id}{query}"


@pytest.mark.parametrize(
    ("url", "body", "reason"),
    [
        (template_url("56911112222"), {"variables": ["Ana", "A-1"]}, "meta_data must be an object"),
        (template_url("56911112222"), {"variables": "Ana", "meta_data": {}}, "variables must be a string"),
        (template_url("56911112222"), {"variables": ["Ana"], "meta_data": {}}, "variables must contain 2 elements"),
        (template_url("56911112222"), {"variables": ["Ana", 7], "meta_data": {}}, "variables must be a string"),
        (
            template_url("56911112222"),
            {"variables": ["Ana", "A"], "meta_data": {}, "x": 1},
            "property x should not exist",
        ),
        (template_url("56911112222", "nope"), {"variables": [], "meta_data": {}}, "Template nope not found"),
        (template_url("+56 9 1111"), {"variables": ["Ana", "A"], "meta_data": {}}, "phone must be"),
        (
            template_url("56911112222", query="?from-phone-number=56299999999"),
            {"variables": ["Ana", "A"], "meta_data": {}},
            "from-phone-number is not a WhatsApp number",
        ),
    ],
)
def test_the_sandbox_template_endpoint_refuses_what_breaks_the_contract(app_ctx, client, url, body, reason):
    factories.make_sandbox_channels()
    response = client.post(url, json=body, headers=key_header(app_ctx))
    assert response.status_code == 400
    assert reason in json.dumps(response.get_json()["message"])
    assert db.session.scalar(select(func.count(SandboxMessage.id))) == 0


def test_the_sandbox_template_endpoint_needs_the_key(app_ctx, client):
    response = client.post(template_url("56911112222"), json={"variables": ["Ana", "A"], "meta_data": {}})
    assert response.status_code == 401


def test_the_sandbox_delivers_a_template_outside_the_window_and_the_answer_reopens_it(app, app_ctx):
    from app.sandbox.customers import customer_says
    from app.sandbox.seeding import register_sandbox_templates

    agent = factories.make_user()
    conversation = factories.make_sandbox_conversation(last_inbound_ago=timedelta(hours=30))
    register_sandbox_templates(utcnow())
    template = db.session.scalar(select(MessageTemplate).where(MessageTemplate.vambe_template_id == SANDBOX_ID))
    message = send_template(
        conversation,
        agent,
        TemplateSend(template.id, ["Ana", "A-1"], uuid.uuid4().hex),
        client=app.extensions["vambe_client"],
        now=utcnow(),
    )
    assert message.outcome == Outcome.SENT
    customer_says(conversation.phone, "¡Hola! Sí, sigo interesada", now=utcnow())
    db.session.refresh(conversation)
    assert conversation.last_inbound_at > utcnow() - timedelta(minutes=1)  # the window is open again
    assert db.session.scalar(select(func.count(Message.id)).where(Message.body == message.body)) == 1  # one copy


# -- the composer outside the window ------------------------------------------------------------------------------


def test_the_composer_offers_templates_first_outside_the_window_only(app, client, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        closed = factories.make_conversation(last_inbound_at=utcnow() - timedelta(hours=30)).id
        open_ = factories.make_conversation(last_inbound_at=utcnow() - timedelta(minutes=5)).id
        register()
    html = client.get(f"/conversations/{closed}").get_data(as_text=True)
    assert html.index('id="template-panel"') < html.index('id="composer"')
    assert "pedido_listo (es)" in html
    assert html.count('class="alert alert-warning') == 1  # one warning about the window, not two
    assert 'id="template-panel"' not in client.get(f"/conversations/{open_}").get_data(as_text=True)


def test_the_template_form_previews_the_message_with_slots(app, client, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation_id = factories.make_conversation(last_inbound_at=utcnow() - timedelta(hours=30)).id
        template_id = register().id
    html = client.get(
        f"/conversations/{conversation_id}/template-form?template={template_id}", headers=PARTIAL
    ).get_data(as_text=True)
    assert 'Hola <mark data-slot="1">{{1}}</mark>, tu pedido <mark data-slot="2">{{2}}</mark> está listo.' in html
    assert 'name="value-0"' in html and 'name="value-1"' in html and 'name="value-2"' not in html
    assert "does not pause the AI assistant" in html


def test_quick_replies_fill_in_the_names_when_inserted(app, client, auth):
    agent_id = auth.login_as(Role.AGENT)
    with app.app_context():
        from app.models import QuickReply, User

        agent = db.session.get(User, agent_id)
        agent.name = "Alex Agent"
        db.session.add(
            QuickReply(
                shortcut="hola",
                body="Hola {{contact_first_name}}, soy {{agent_first_name}}. {{contact_name}}/{{agent_name}}",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        conversation_id = factories.make_conversation(name="Daniela Reyes", last_inbound_at=utcnow()).id
        db.session.commit()
    html = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert 'data-body="Hola Daniela, soy Alex. Daniela Reyes/Alex Agent"' in html


def test_leads_list_overrides_with_reason_agent_and_outcome(app, client, auth):
    auth.login_as(Role.LEAD)
    with app.app_context():
        agent = factories.make_user(name="Beto")
        conversation = factories.make_conversation(name="Cliente Tardío")
        message = factories.make_agent_reply(conversation, agent, utcnow(), outcome=Outcome.FAILED, override=True)
        db.session.add(
            AuditEvent(
                occurred_at=utcnow(),
                kind=AuditKind.WINDOW_OVERRIDE,
                actor=agent,
                conversation=conversation,
                message=message,
                details={"reason": "Lo pidió por teléfono"},
            )
        )
        db.session.commit()
    html = client.get("/review/overrides").get_data(as_text=True)
    row = html[html.index("data-override=") :]
    assert "Beto" in row and "Cliente Tardío" in row and "Lo pidió por teléfono" in row and "Failed" in row


def test_agents_cannot_list_overrides(client, auth):
    auth.login_as(Role.AGENT)
    assert client.get("/review/overrides").status_code == 403


def test_a_template_deactivated_meanwhile_is_refused_with_the_reason_shown(app, client, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation_id = factories.make_conversation(last_inbound_at=utcnow() - timedelta(hours=30)).id
        template_id = register().id
    form = template_form(auth, conversation_id, template_id) | {"value-0": "Ana", "value-1": "A-1"}
    with app.app_context():
        db.session.get(MessageTemplate, template_id).active = False
        db.session.commit()
    response = client.post(f"/conversations/{conversation_id}/templates", data=form, headers=PARTIAL)
    assert response.status_code == 422
    assert "That template is not available any more: choose another." in response.get_data(as_text=True)
