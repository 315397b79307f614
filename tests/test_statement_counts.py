"""SQL statements per page stay constant as rows grow; a live update that finds nothing new answers 204 and writes
nothing."""

import re
import uuid

import pytest
from sqlalchemy import event, select

from app.extensions import db
from app.models import ConversationView, Role
from tests import factories

PARTIAL = {"HX-Request": "true", "HX-Request-Type": "partial"}


@pytest.fixture
def statements(app):
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def make_conversations(app, count: int, messages_each: int = 1) -> list[int]:
    with app.app_context():
        agents = [factories.make_user(email=f"agent-{uuid.uuid4().hex[:8]}@example.com") for _ in range(3)]
        ids = []
        for n in range(count):
            conversation = factories.make_conversation()
            conversation.assignee = agents[n % 3]
            for m in range(messages_each):
                factories.make_message(conversation, body=f"hola {n} {m}")
            ids.append(conversation.id)
        db.session.commit()
        return ids


def count_for(auth, statements, path: str, **kwargs) -> int:
    statements.clear()
    response = auth.client.get(path, **kwargs)
    assert response.status_code in (200, 204), path
    return len(statements)


def test_the_inbox_takes_the_same_statements_for_3_rows_and_for_25(app, auth, statements):
    auth.login_as(Role.AGENT)
    make_conversations(app, 3)
    few = count_for(auth, statements, "/"), count_for(auth, statements, "/?q=hola")
    make_conversations(app, 30)
    many = count_for(auth, statements, "/"), count_for(auth, statements, "/?q=hola")
    assert few == many
    assert many[0] <= 6


def test_the_conversation_page_does_not_grow_with_its_thread(app, auth, statements):
    auth.login_as(Role.AGENT)
    [short] = make_conversations(app, 1, messages_each=2)
    [long] = make_conversations(app, 1, messages_each=40)
    assert count_for(auth, statements, f"/conversations/{short}") == count_for(
        auth, statements, f"/conversations/{long}"
    )


@pytest.mark.parametrize("path", ["/", "/conversations/{id}/live"])
def test_an_unchanged_live_update_is_204_and_writes_nothing(app, auth, statements, path):
    auth.login_as(Role.AGENT)
    [conversation_id] = make_conversations(app, 1)
    url = path.format(id=conversation_id)
    page = auth.client.get(url, headers=PARTIAL).get_data(as_text=True)
    poll = re.search(r'hx-get="([^"]*v=[^"]+)" hx-trigger="every 3s"', page).group(1).replace("&amp;", "&")

    statements.clear()
    response = auth.client.get(poll, headers=PARTIAL)

    assert response.status_code == 204 and response.get_data() == b""
    assert not [s for s in statements if not s.lstrip().upper().startswith("SELECT")]
    with app.app_context():
        factories.make_message(db.session.get(factories.Conversation, conversation_id), body="¿Siguen ahí?")
    changed = auth.client.get(poll, headers=PARTIAL)
    assert changed.status_code == 200 and "¿Siguen ahí?" in changed.get_data(as_text=True)


def test_a_read_marker_is_written_only_when_the_customer_wrote_since(app, auth, statements):
    auth.login_as(Role.AGENT)
    [conversation_id] = make_conversations(app, 1)
    auth.client.get(f"/conversations/{conversation_id}")
    with app.app_context():
        first = db.session.scalar(select(ConversationView.seen_at))

    statements.clear()
    auth.client.get(f"/conversations/{conversation_id}")

    assert not [s for s in statements if "conversation_views" in s and not s.lstrip().upper().startswith("SELECT")]
    with app.app_context():
        assert db.session.scalar(select(ConversationView.seen_at)) == first
