"""The handoff queue: how a conversation enters it (Vambe's status, the customer's own words, a closing window),
how it leaves (a reply, taking it, resolving), the poller against a strict fake of Vambe, one poller at a time,
and "Take next" when two agents click at once."""

import json
import re
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.domain import handoffs
from app.domain.assigning import assign, set_status
from app.domain.deliveries import receive_delivery
from app.domain.jobs import single_runner
from app.domain.polling import poll_waiting_contacts
from app.domain.sending import Reply, send_reply
from app.extensions import db
from app.models import (
    AuditEvent,
    AuditKind,
    Conversation,
    ConversationStatus,
    Handoff,
    HandoffReason,
    Role,
    User,
)
from app.vambe import VambeClient, VambeError, VambeServerError
from tests import factories
from tests.fake_vambe import Reply as FakeReply
from tests.fake_vambe import running_fake_vambe
from tests.test_accounts_races import PointOfNoReturn

WARNING = timedelta(hours=1)
BY_STATUS = "/api/public/analytics/contacts/by-status"


def customer_writes(conversation: Conversation, text: str, *, at=None):
    """A message.received webhook, filed through the real delivery path."""
    at = at or utcnow()
    payload = {
        "event": "message.received",
        "timestamp": at.isoformat(),
        "data": {"contact_id": conversation.vambe_contact_id, "message_id": str(uuid.uuid4()), "message_body": text},
    }
    return receive_delivery(json.dumps(payload).encode(), {}, "signature", now=utcnow())


def open_handoffs(conversation: Conversation) -> list[Handoff]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Handoff).where(Handoff.conversation_id == conversation.id, Handoff.ended_at.is_(None))
        )
    )


def waiting_ids() -> list[int]:
    db.session.expire_all()
    query = select(Handoff.conversation_id).where(handoffs.WAITING).order_by(Handoff.requested_at, Handoff.id)
    return list(db.session.scalars(query))


@pytest.mark.parametrize(
    "text",
    [
        "quiero hablar con una persona",
        "QUIERO HABLAR CON UNA PERSONA!!",
        "¿Puedo hablar   con un humano, por favor?",
        "Falar com um atendente",
        "human please",
        "Human, please.",
    ],
)
def test_a_customer_asking_for_a_person_in_their_words_queues_the_conversation(app_ctx, text):
    conversation = factories.make_conversation()
    customer_writes(conversation, text)
    [handoff] = open_handoffs(conversation)
    assert handoff.reason == HandoffReason.PHRASE and handoff.detail
    assert handoff.waiting
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.kind == AuditKind.HANDOFF_REQUESTED))
    assert event.conversation_id == conversation.id and event.details["reason"].startswith(
        "the customer asked for a person"
    )


@pytest.mark.parametrize("text", ["hola, quiero saber el precio", "personalmente prefiero hablar", "humanplease"])
def test_ordinary_messages_do_not_queue(app_ctx, text):
    conversation = factories.make_conversation()
    customer_writes(conversation, text)
    assert open_handoffs(conversation) == []


def test_an_admin_added_phrase_is_matched_without_case_or_accents(app_ctx):
    from app.models import HandoffPhrase

    db.session.add(
        HandoffPhrase(language="es", phrase="Atención humana", folded="atencion humana", created_at=utcnow())
    )
    db.session.commit()
    conversation = factories.make_conversation()
    customer_writes(conversation, "Necesito ATENCION HUMANA ya")
    [handoff] = open_handoffs(conversation)
    assert handoff.detail == "Atención humana"


def test_asking_twice_keeps_one_place_in_the_queue(app_ctx):
    conversation = factories.make_conversation()
    first = utcnow() - timedelta(minutes=5)
    customer_writes(conversation, "quiero hablar con una persona", at=first)
    customer_writes(conversation, "hablar con un humano por favor")
    [handoff] = open_handoffs(conversation)
    assert handoff.requested_at == first  # still waiting since the first time


def test_an_old_request_found_by_a_backfill_does_not_queue(app_ctx):
    conversation = factories.make_conversation()
    customer_writes(conversation, "quiero hablar con una persona", at=utcnow() - timedelta(days=3))
    assert open_handoffs(conversation) == []


def test_a_webhook_carrying_vambe_status_unattended_queues(app_ctx):
    conversation = factories.make_conversation()
    payload = {
        "event": "message.sent",
        "timestamp": utcnow().isoformat(),
        "data": {
            "contact_id": conversation.vambe_contact_id,
            "message_id": str(uuid.uuid4()),
            "message_body": "Te comunico con una persona del equipo.",
            "direction": "outbound",
            "chat_status": "UNATTENDED",
        },
    }
    receive_delivery(json.dumps(payload).encode(), {}, "signature", now=utcnow())
    [handoff] = open_handoffs(conversation)
    assert (handoff.reason, handoff.detail) == (HandoffReason.VAMBE_STATUS, "unattended")


def test_a_malformed_chat_status_is_ignored_and_the_message_still_filed(app_ctx):
    conversation = factories.make_conversation()
    payload = {
        "event": "message.received",
        "timestamp": utcnow().isoformat(),
        "data": {
            "contact_id": conversation.vambe_contact_id,
            "message_id": "m-1",
            "message_body": "hi",
            "chat_status": 7,
        },
    }
    receipt = receive_delivery(json.dumps(payload).encode(), {}, "signature", now=utcnow())
    assert receipt.state == "processed"
    assert open_handoffs(conversation) == []


def reply(conversation, agent, client, text="Hola, soy Alex"):
    return send_reply(
        conversation,
        agent,
        Reply(text=text, idempotency_key=uuid.uuid4().hex),
        client=client,
        now=utcnow(),
        warning=WARNING,
    )


class Accepting:
    """A Vambe client stand-in that accepts every send (the send path's own tests cover the wire)."""

    def __init__(self, fails: bool = False):
        self.fails = fails

    def send_session_message(self, message):
        from app.vambe import Accepted, VambeRejected

        if self.fails:
            raise VambeRejected("Vambe refused it.", 400)
        return Accepted(provider_message_id=str(uuid.uuid4()))


def test_a_reply_ends_the_handoff_with_its_first_response_time_and_assigns_the_replier(app_ctx):
    agent = factories.make_user(role=Role.AGENT)
    conversation = factories.make_conversation()
    asked = utcnow() - timedelta(minutes=7)
    customer_writes(conversation, "quiero hablar con una persona", at=asked)
    message = reply(conversation, agent, Accepting())
    handoff = db.session.scalar(select(Handoff).where(Handoff.conversation_id == conversation.id))
    assert handoff.ended_at is not None and handoff.answered_by_id == agent.id
    assert handoff.answer_message_id == message.id
    assert handoff.answered_at - handoff.requested_at >= timedelta(minutes=7)
    assert conversation.assignee_id == agent.id and conversation.last_human_reply_at == message.occurred_at
    assert waiting_ids() == []


def test_a_failed_reply_takes_the_conversation_but_records_no_first_response(app_ctx):
    agent = factories.make_user(role=Role.AGENT)
    conversation = factories.make_conversation()
    customer_writes(conversation, "human please")
    reply(conversation, agent, Accepting(fails=True))
    [handoff] = open_handoffs(conversation)
    assert handoff.answered_at is None and handoff.taken_by_id == agent.id
    assert waiting_ids() == []


def test_assign_on_reply_can_be_turned_off(app_ctx):
    agent = factories.make_user(role=Role.AGENT)
    conversation = factories.make_conversation()
    customer_writes(conversation, "hola")
    send_reply(
        conversation,
        agent,
        Reply(text="hola", idempotency_key=uuid.uuid4().hex),
        client=Accepting(),
        now=utcnow(),
        warning=WARNING,
        assign_unassigned=False,
    )
    assert conversation.assignee_id is None


def test_taking_leaves_the_queue_and_unassigning_an_unanswered_one_puts_it_back(app_ctx):
    lead = factories.make_user(role=Role.LEAD)
    agent = factories.make_user(role=Role.AGENT)
    conversation = factories.make_conversation()
    customer_writes(conversation, "quiero hablar con una persona")
    assert waiting_ids() == [conversation.id]
    assign(conversation, lead, agent, now=utcnow())
    assert waiting_ids() == []
    assign(conversation, lead, None, now=utcnow())
    assert waiting_ids() == [conversation.id]


def test_resolving_ends_the_handoff_unanswered_and_a_new_request_queues_again(app_ctx):
    lead = factories.make_user(role=Role.LEAD)
    conversation = factories.make_conversation()
    customer_writes(conversation, "quiero hablar con una persona", at=utcnow() - timedelta(minutes=2))
    set_status(conversation, lead, ConversationStatus.RESOLVED, now=utcnow())
    assert open_handoffs(conversation) == [] and waiting_ids() == []
    customer_writes(conversation, "sigo esperando, quiero hablar con una persona")  # reopens, asks again
    assert waiting_ids() == [conversation.id]


def test_a_stale_vambe_status_after_a_human_reply_does_not_requeue(app_ctx):
    agent = factories.make_user(role=Role.AGENT)
    conversation = factories.make_conversation()
    customer_writes(conversation, "hola", at=utcnow() - timedelta(minutes=10))
    reply(conversation, agent, Accepting())
    # Vambe still lists the contact as waiting since the customer's message of ten minutes ago.
    assert (
        handoffs.notice_vambe_status(conversation, "unattended", since=utcnow() - timedelta(minutes=10), now=utcnow())
        is None
    )
    assert open_handoffs(conversation) == []


def test_closing_windows_with_the_customer_unanswered_are_queued_once(app_ctx):
    now = utcnow()
    closing = factories.make_conversation(last_inbound_at=now - timedelta(hours=23, minutes=30))
    answered_by_ai = factories.make_conversation()
    factories.make_message(answered_by_ai, occurred_at=now - timedelta(hours=23, minutes=30))
    factories.make_message(answered_by_ai, direction="outbound", occurred_at=now - timedelta(hours=23, minutes=29))
    factories.make_conversation(last_inbound_at=now - timedelta(hours=2))  # open, not closing
    factories.make_conversation(last_inbound_at=now - timedelta(hours=25))  # closed already
    assert handoffs.queue_closing_windows(now=now, warning=WARNING) == 1
    assert handoffs.queue_closing_windows(now=now, warning=WARNING) == 0
    db.session.commit()
    [handoff] = open_handoffs(closing)
    assert handoff.reason == HandoffReason.CLOSING_WINDOW
    assert handoff.requested_at == closing.last_inbound_at + timedelta(hours=24) - WARNING


def test_take_next_gives_the_oldest_waiting_and_then_the_next(app_ctx):
    agent = factories.make_user(role=Role.AGENT)
    other = factories.make_user(role=Role.AGENT)
    older, newer, theirs = (factories.make_conversation() for _ in range(3))
    customer_writes(older, "human please", at=utcnow() - timedelta(minutes=9))
    customer_writes(newer, "human please", at=utcnow() - timedelta(minutes=3))
    customer_writes(theirs, "human please", at=utcnow() - timedelta(minutes=20))
    theirs.assignee_id = other.id  # assigned to someone else: not for the taking
    db.session.commit()
    assert handoffs.take_next(agent, now=utcnow())[0].id == older.id
    assert handoffs.take_next(agent, now=utcnow())[0].id == newer.id
    with pytest.raises(handoffs.NothingWaiting) as refusal:
        handoffs.take_next(agent, now=utcnow())
    assert not refusal.value.raced
    assert db.session.get(Conversation, older.id).assignee_id == agent.id


def test_two_agents_taking_the_last_waiting_conversation_at_once_one_gets_it(app):
    with app.app_context():
        agents = [factories.make_user(role=Role.AGENT).id for _ in range(2)]
        conversation = factories.make_conversation()
        customer_writes(conversation, "quiero hablar con una persona")
        conversation_id = conversation.id
        engine = db.engine
    point = PointOfNoReturn(2)
    outcomes = [None, None]

    def take(index: int) -> None:
        point.arm()
        try:
            with app.app_context():
                try:
                    outcomes[index] = handoffs.take_next(db.session.get(User, agents[index]), now=utcnow())[0].id
                except handoffs.NothingWaiting as refusal:
                    outcomes[index] = "raced" if refusal.raced else "nothing"
        finally:
            point.disarm()

    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", point.before_cursor_execute)
    try:
        threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        event.remove(engine, "before_cursor_execute", point.before_cursor_execute)
    assert sorted(outcomes, key=str) == sorted([conversation_id, "raced"], key=str)
    with app.app_context():
        winner = agents[outcomes.index(conversation_id)]
        assert db.session.get(Conversation, conversation_id).assignee_id == winner
        taken = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.HANDOFF_TAKEN)).all()
        assert [event.actor_id for event in taken] == [winner]


# -- the poller, against a strict fake of Vambe's by-status endpoint --------------------------------------------


class StatusListing:
    """Vambe's by-status endpoint: 2 contacts a page, optional 429s first, x-api-key checked."""

    def __init__(self, waiting: dict[str, list[dict]], rate_limits: int = 0, page_size: int = 2):
        self.waiting, self.rate_limits, self.page_size = waiting, rate_limits, page_size

    def respond(self, request):
        if request.headers.get("x-api-key") != "key" or request.path != BY_STATUS:
            return FakeReply(401, {"statusCode": 401, "message": "Unauthorized"})
        if self.rate_limits:
            self.rate_limits -= 1
            return FakeReply(429, {"message": "slow down"}, headers={"Retry-After": "7"})
        [status], [page] = request.query["status"], request.query["page"]
        contacts = self.waiting.get(status, [])
        start = (int(page) - 1) * self.page_size
        return FakeReply(200, {"data": contacts[start : start + self.page_size], "total": len(contacts)})


def listed(name: str, waiting_time: int = 60) -> dict:
    return {"id": str(uuid.uuid4()), "name": name, "chat_status": "UNATTENDED", "waiting_time": waiting_time}


def poll(server, waits=None):
    return poll_waiting_contacts(
        VambeClient(server.url, "key"),
        now=utcnow(),
        warning=WARNING,
        wait=(waits.append if waits is not None else None),
    )


def test_the_poller_pages_through_every_waiting_contact_and_honours_retry_after(app_ctx):
    known = factories.make_conversation()
    unattended = [listed(f"Cliente {i}", 60 * i) for i in range(5)]
    unattended[0]["id"] = known.vambe_contact_id
    listing = StatusListing({"unattended": unattended, "ai-away": [listed("Away")]}, rate_limits=1)
    waits = []
    with running_fake_vambe(listing.respond) as server:
        report = poll(server, waits)
        pages = [(r.query["status"][0], r.query["page"][0]) for r in server.requests if r.query]
    assert waits == [7.0]
    assert report.contacts == 6 and report.queued == 6
    assert ("unattended", "3") in pages and ("ai-away", "1") in pages
    assert known.id in waiting_ids()
    new = db.session.scalar(select(Conversation).where(Conversation.name == "Cliente 4"))
    handoff = open_handoffs(new)[0]
    assert utcnow() - handoff.requested_at >= timedelta(minutes=4)  # waiting since Vambe says


def test_polling_again_queues_nobody_twice(app_ctx):
    listing = StatusListing({"unattended": [listed("Ana"), listed("Bea")]})
    with running_fake_vambe(listing.respond) as server:
        assert poll(server).queued == 2
        assert poll(server).queued == 0
    assert len(waiting_ids()) == 2


@pytest.mark.parametrize("body", [{"items": []}, [], {"data": "nobody"}, "not json"])
def test_the_poller_refuses_an_answer_without_a_list_of_contacts(app_ctx, body):
    with running_fake_vambe(lambda request: FakeReply(200, body)) as server, pytest.raises(VambeServerError) as error:
        poll(server)
    assert "Vambe" in error.value.agent_message


def test_a_page_that_fails_keeps_what_earlier_pages_queued_and_bad_items_are_counted(app_ctx):
    good = [listed("Ana"), {"id": "not-a-uuid", "name": "Broken"}, listed("Bea"), listed("Cata")]

    def respond(request):
        if request.query["status"] == ["ai-away"]:
            return FakeReply(502, "bad gateway")
        page = int(request.query["page"][0])
        return FakeReply(200, {"data": good[(page - 1) * 2 : page * 2], "total": 4})

    with running_fake_vambe(respond) as server:
        with pytest.raises(VambeError):
            poll(server)  # "ai-away" page 1 fails after "unattended" was read
    assert len(waiting_ids()) == 3


def test_a_429_without_waiting_ends_the_pass_clearly(app_ctx):
    from app.vambe import VambeRateLimited

    listing = StatusListing({"unattended": [listed("Ana")]}, rate_limits=1)
    with running_fake_vambe(listing.respond) as server, pytest.raises(VambeRateLimited):
        poll(server)


def test_only_one_poller_runs_at_a_time(app):
    """Two workers' pollers at once: the second finds the first holding the lock and skips its turn."""
    entered, release = threading.Event(), threading.Event()
    turns = []

    def first():
        with app.app_context(), single_runner("handoff-poll") as mine:
            turns.append(("first", mine))
            entered.set()
            release.wait(30)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert entered.wait(30)
        with app.app_context(), single_runner("handoff-poll") as mine:
            turns.append(("second", mine))
    finally:
        release.set()
        thread.join(30)
    with app.app_context(), single_runner("handoff-poll") as mine:
        turns.append(("after", mine))
    assert turns == [("first", True), ("second", False), ("after", True)]


def test_the_poll_command_reports_and_skips_when_another_runs(app):
    with app.app_context(), single_runner("handoff-poll"):
        result = app.test_cli_runner().invoke(args=["handoffs", "poll"])
    assert result.exit_code == 0 and "Another poller is running" in result.output


# -- the console: header counts, Take next, the banner -----------------------------------------------------------


def queued_conversation(app, text="quiero hablar con una persona", **fields) -> int:
    with app.app_context():
        conversation = factories.make_conversation(**fields)
        customer_writes(conversation, text)
        return conversation.id


def alert_counts(client) -> dict[str, str]:
    html = client.get("/alerts", headers={"HX-Request": "true"}).get_data(as_text=True)
    return dict(re.findall(r'<span class="label-long">([^<]+)</span>.*?<strong>(\d+)</strong>', html, re.S))


def test_the_header_counts_who_needs_a_human(app, client, auth):
    me = auth.login_as(Role.AGENT)
    queued_conversation(app)
    with app.app_context():
        now = utcnow()
        mine_closing = factories.make_conversation(last_inbound_at=now - timedelta(hours=23, minutes=30))
        mine_closing.assignee_id = me
        factories.make_conversation(last_inbound_at=now - timedelta(hours=23, minutes=30))  # nobody's
        db.session.commit()
    counts = alert_counts(client)
    assert counts == {"Waiting for a human": "1", "Mine, closing soon": "1", "Mine, unanswered": "1"}


def test_leads_also_see_unassigned_conversations_closing_or_unanswered(app, client, auth):
    auth.login_as(Role.LEAD)
    queued_conversation(app)
    with app.app_context():
        factories.make_conversation(last_inbound_at=utcnow() - timedelta(hours=23, minutes=30))
    counts = alert_counts(client)
    assert counts["Unassigned, closing soon"] == "1" and counts["Unassigned, unanswered"] == "2"


def test_an_unchanged_header_poll_is_answered_204(app, client, auth):
    auth.login_as(Role.AGENT)
    html = client.get("/alerts").get_data(as_text=True)
    poll_url = re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert client.get(poll_url).status_code == 204
    queued_conversation(app)
    assert client.get(poll_url).status_code == 200


def test_take_next_over_http_assigns_and_opens_the_conversation_then_says_nothing_is_left(app, client, auth):
    me = auth.login_as(Role.AGENT)
    conversation_id = queued_conversation(app)
    token = auth.csrf_token()
    response = client.post("/take-next", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/conversations/{conversation_id}")
    with app.app_context():
        assert db.session.get(Conversation, conversation_id).assignee_id == me
    again = client.post("/take-next", data={"csrf_token": token}, follow_redirects=True)
    assert "Nobody is waiting for a human right now." in again.get_data(as_text=True)


def test_take_next_needs_a_csrf_token(app, client, auth):
    auth.login_as(Role.AGENT)
    conversation_id = queued_conversation(app)
    assert client.post("/take-next").status_code == 400
    with app.app_context():
        assert db.session.get(Conversation, conversation_id).assignee_id is None


def test_a_queued_conversation_says_why_and_what_the_ai_last_said(app, client, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation = factories.make_conversation()
        factories.make_message(conversation, body="hola", occurred_at=utcnow() - timedelta(minutes=3))
        factories.make_message(
            conversation,
            direction="outbound",
            body="¿Me das tu número de pedido?",
            occurred_at=utcnow() - timedelta(minutes=2),
        )
        customer_writes(conversation, "No, quiero hablar con una persona")
        conversation_id = conversation.id
    html = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    banner = html[html.index('class="handoff-banner') :]
    assert "Waiting for a human" in banner
    assert "The customer asked for a person: “hablar con una persona”" in banner
    assert "¿Me das tu número de pedido?" in banner
    assert "Take it" in banner
