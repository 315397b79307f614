"""Pulling message history from Vambe into Handoff's store.

Most tests run the real VambeClient against a loopback fake of Vambe's contacts and paged history
endpoints (tests/fake_vambe.py); the end-to-end ones use the in-process sandbox. No test sleeps:
``sync_contact`` is given ``wait=recorded.append`` so a Retry-After is recorded, not waited.
"""

import hashlib
import hmac
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from app.clock import utcnow
from app.domain.ingesting import ContactRef
from app.domain.sending import Reply, send_reply
from app.domain.syncing import SyncReport, contacts_to_sync, refresh_conversation, sync_contact
from app.extensions import db
from app.models import (
    AuditEvent,
    AuditKind,
    Author,
    BusinessNumber,
    Conversation,
    DeliveryState,
    Direction,
    Message,
    Outcome,
    Role,
    WebhookDelivery,
)
from app.sandbox.seeding import seed_sandbox
from app.sandbox.state import SandboxMessage
from app.vambe import SEND_SESSION_MESSAGE_PATH, VambeClient
from tests import factories
from tests.conftest import build_app
from tests.fake_vambe import DROP, running_fake_vambe
from tests.fake_vambe import Reply as FakeReply

API_KEY = "k"
PHONE = "56998389641"
BUSINESS = "56211111111"
WARNING = timedelta(hours=1)
NOT_FOUND = FakeReply(404, {"statusCode": 404, "message": "Contact not found", "error": "Not Found"})
HISTORY_PATH = re.compile(r"^/api/public/contact/v2/([^/]+)/messages$")
INFO_PATH = re.compile(r"^/api/public/contact/([^/]+)/info$")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def at_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# --- a fake Vambe account ----------------------------------------------------------------------------


@dataclass
class FakeAccount:
    """Vambe's side: contacts, their paged history, and a few ways to misbehave. Served on loopback."""

    page_size: int = 2
    contacts: dict[str, dict] = field(default_factory=dict)
    histories: dict[str, list[dict]] = field(default_factory=dict)
    vanished: set[str] = field(default_factory=set)
    # Retry-After values for the next history requests, consumed one 429 at a time ("" = no header).
    rate_limits: list[str] = field(default_factory=list)
    # History page numbers whose next request makes the fake itself blow up (the connection drops).
    crash_on_pages: set[int] = field(default_factory=set)
    send_answer: object = field(default_factory=lambda: FakeReply(201))
    channels: object = field(
        default_factory=lambda: FakeReply(200, [{"id": 1951, "phone_number": BUSINESS, "name": "Ventas"}])
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_contact(self, name: str = "María Rojas", phone: str = PHONE) -> str:
        contact_id = str(uuid.uuid4())
        self.contacts[contact_id] = {
            "id": contact_id,
            "name": name,
            "phone": phone,
            "email": None,
            "platform": "whatsapp",
            "chat_status": "UNATTENDED",
            "created_at": iso(utcnow() - timedelta(days=30)),
        }
        self.histories[contact_id] = []
        return contact_id

    def say(
        self,
        contact_id: str,
        direction: str,
        body: str,
        at: datetime,
        *,
        status: str = "read",
        message_id: str | None = None,
    ) -> dict:
        item = {
            "id": message_id or str(uuid.uuid4()),
            "body": body,
            "created_at": iso(at),
            "direction": direction,
            "from": PHONE if direction == "INBOUND" else "56211111111",
            "to": "56211111111" if direction == "INBOUND" else PHONE,
            "type": "text",
            "status": status,
            "media_url": None,
            "client_id": "c",
            "ai_contact_id": contact_id,
        }
        self.histories[contact_id].append(item)
        return item

    def set_status(self, message_id: str, status: str) -> None:
        for history in self.histories.values():
            for item in history:
                if item["id"] == message_id:
                    item["status"] = status

    def respond(self, request):
        with self.lock:
            if request.method == "POST" and request.path == SEND_SESSION_MESSAGE_PATH:
                return self.send_answer
            if request.path == "/api/public/channels/whatsapp":
                return self.channels
            if request.path == "/api/public/contacts":
                # A vanished contact may still be listed: Vambe's list and history can disagree for a moment.
                return FakeReply(200, [self.info(c) for c in self.contacts])
            if match := INFO_PATH.match(request.path):
                return (
                    NOT_FOUND
                    if match[1] not in self.contacts or match[1] in self.vanished
                    else FakeReply(200, self.info(match[1]))
                )
            if match := HISTORY_PATH.match(request.path):
                return self.history(match[1], int(request.query["page"][0]))
            return FakeReply(404, {"statusCode": 404, "message": "Cannot route", "error": "Not Found"})

    def info(self, contact_id: str) -> dict:
        history = self.histories[contact_id]
        return {
            **self.contacts[contact_id],
            "last_message_at": history[-1]["created_at"] if history else None,
        }

    def history(self, contact_id: str, page: int):
        if contact_id not in self.contacts or contact_id in self.vanished:
            return NOT_FOUND
        if self.rate_limits:
            retry_after = self.rate_limits.pop(0)
            headers = {"Retry-After": retry_after} if retry_after else {}
            return FakeReply(429, {"statusCode": 429, "message": "Too Many Requests"}, headers=headers)
        if page in self.crash_on_pages:
            self.crash_on_pages.discard(page)
            raise RuntimeError("the fake Vambe fell over")  # the handler dies: the connection drops
        items = sorted(self.histories[contact_id], key=lambda item: item["created_at"])
        start = (page - 1) * self.page_size
        chunk = items[start : start + self.page_size]
        return FakeReply(
            200,
            {
                "messages": chunk,
                "page": page,
                "hasMore": start + self.page_size < len(items),
                "total": len(items),
            },
        )


@pytest.fixture
def account():
    return FakeAccount()


@pytest.fixture
def fake(account):
    with running_fake_vambe(account.respond) as server:
        yield server


@pytest.fixture
def vambe(fake):
    client = VambeClient(f"http://127.0.0.1:{fake.port}", API_KEY)
    yield client
    client.session.close()


def history_requests(fake, contact_id: str) -> list[int]:
    """The page numbers the fake was asked for, in order, for one contact."""
    return [int(r.query["page"][0]) for r in fake.requests if r.path == f"/api/public/contact/v2/{contact_id}/messages"]


def sync(vambe, contact: ContactRef, *, days: int = 7, now: datetime | None = None) -> tuple[SyncReport, list[float]]:
    now = now or utcnow()
    report, waited = SyncReport(), []
    sync_contact(vambe, contact, since=now - timedelta(days=days), now=now, report=report, wait=waited.append)
    return report, waited


def ref(account: FakeAccount, contact_id: str) -> ContactRef:
    contact = account.contacts[contact_id]
    return ContactRef(vambe_contact_id=contact_id, phone=contact["phone"], name=contact["name"])


def stored(contact_id: str | None = None) -> list[Message]:
    db.session.expire_all()
    query = select(Message).order_by(Message.id)
    if contact_id is not None:
        query = query.join(Conversation).where(Conversation.vambe_contact_id == contact_id)
    return list(db.session.scalars(query))


def conversation_for(contact_id: str) -> Conversation:
    db.session.expire_all()
    return db.session.scalar(select(Conversation).where(Conversation.vambe_contact_id == contact_id))


def a_thread(account: FakeAccount, contact_id: str, start: datetime) -> list[dict]:
    """Five messages, one minute apart: customer, AI, customer, AI, customer."""
    lines = [
        ("INBOUND", "Hola, ¿tienen envíos a Valparaíso?"),
        ("OUTBOUND", "¡Hola! Sí, despachamos a todo Chile."),
        ("INBOUND", "¿Cuánto demora?"),
        ("OUTBOUND", "Entre 2 y 4 días hábiles."),
        ("INBOUND", "Perfecto, gracias"),
    ]
    return [account.say(contact_id, d, body, start + timedelta(minutes=n)) for n, (d, body) in enumerate(lines)]


# --- the first sync and the next ---------------------------------------------------------------------


class TestHistory:
    def test_first_sync_adds_every_page_in_order_with_authors_after_honouring_retry_after(
        self, app_ctx, account, fake, vambe
    ):
        contact_id = account.add_contact()
        thread = a_thread(account, contact_id, utcnow() - timedelta(hours=3))
        account.rate_limits = ["7"]

        [contact] = contacts_to_sync(vambe, days=7)
        report, waited = sync(vambe, contact)

        assert waited == [7.0], "the Retry-After header was not honoured"
        assert report.waited_seconds == 7.0
        assert history_requests(fake, contact_id) == [1, 1, 2, 3]  # page 1 retried once, then on
        assert (report.contacts, report.added, report.merged, report.already_known) == (1, 5, 0, 0)
        assert not report.skipped
        messages = stored(contact_id)
        assert [m.body for m in messages] == [item["body"] for item in thread]
        assert [m.provider_message_id for m in messages] == [item["id"] for item in thread]
        assert [m.occurred_at for m in messages] == sorted(m.occurred_at for m in messages)
        assert [(m.direction, m.author) for m in messages] == [
            (Direction.INBOUND, Author.CUSTOMER),
            (Direction.OUTBOUND, Author.ASSISTANT),
            (Direction.INBOUND, Author.CUSTOMER),
            (Direction.OUTBOUND, Author.ASSISTANT),
            (Direction.INBOUND, Author.CUSTOMER),
        ]
        conversation = conversation_for(contact_id)
        assert (conversation.phone, conversation.name) == ("+" + PHONE, "María Rojas")
        assert conversation.last_inbound_at == messages[-1].occurred_at
        assert [r.headers["x-api-key"] for r in fake.requests] == [API_KEY] * len(fake.requests)

    def test_a_second_sync_adds_nothing(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        a_thread(account, contact_id, utcnow() - timedelta(hours=3))
        sync(vambe, ref(account, contact_id))
        first = [(m.id, m.provider_message_id, m.author, m.outcome) for m in stored()]

        report, waited = sync(vambe, ref(account, contact_id))

        assert (report.added, report.merged, report.already_known) == (0, 0, 5)
        assert waited == []
        assert [(m.id, m.provider_message_id, m.author, m.outcome) for m in stored()] == first

    def test_outbound_history_after_handoff_paused_the_assistant_is_another_tools(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        start = utcnow() - timedelta(hours=2)
        account.say(contact_id, "OUTBOUND", "Mensaje del bot", start)
        account.say(contact_id, "OUTBOUND", "Recordatorio de la campaña", start + timedelta(hours=1))
        conversation = factories.make_conversation(vambe_contact_id=contact_id, phone="+" + PHONE)
        conversation.assistant_paused_at = start + timedelta(minutes=30)
        db.session.commit()

        sync(vambe, ref(account, contact_id))

        assert [(m.body, m.author) for m in stored(contact_id)] == [
            ("Mensaje del bot", Author.ASSISTANT),
            ("Recordatorio de la campaña", Author.OTHER_TOOL),
        ]

    def test_a_sync_that_finds_the_ai_writing_after_the_pause_raises_the_incident(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        start = utcnow() - timedelta(hours=2)
        account.say(contact_id, "OUTBOUND", "Mensaje del bot", start)
        account.say(contact_id, "OUTBOUND", "El bot otra vez", start + timedelta(hours=1))
        agent = factories.make_user()
        conversation = factories.make_conversation(vambe_contact_id=contact_id, phone="+" + PHONE)
        conversation.assistant_paused_at = start + timedelta(minutes=30)
        conversation.assistant_paused_by_id = conversation.assignee_id = agent.id
        db.session.commit()

        sync(vambe, ref(account, contact_id))

        [incident] = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.AI_AFTER_TAKEOVER)).all()
        assert incident.message.body == "El bot otra vez"

    def test_an_interrupted_sync_run_again_completes_without_duplicates(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        thread = a_thread(account, contact_id, utcnow() - timedelta(hours=3))
        account.crash_on_pages = {2}

        interrupted, _ = sync(vambe, ref(account, contact_id))

        assert interrupted.added == 2
        [(reason, count)] = interrupted.skipped.items()
        assert count == 1 and reason.startswith("history unavailable")
        assert [m.body for m in stored()] == [item["body"] for item in thread[:2]]

        resumed, _ = sync(vambe, ref(account, contact_id))

        assert (resumed.added, resumed.already_known) == (3, 2)
        messages = stored()
        assert [m.provider_message_id for m in messages] == [item["id"] for item in thread]
        assert len({m.provider_message_id for m in messages}) == 5

    def test_rate_limiting_that_never_ends_gives_up_after_bounded_waits(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        a_thread(account, contact_id, utcnow() - timedelta(hours=1))
        account.rate_limits = [""] * 50  # 429 without Retry-After, for ever

        report, waited = sync(vambe, ref(account, contact_id))

        assert waited == [1.0, 2.0, 4.0, 8.0, 16.0], "no Retry-After: exponential back-off, bounded"
        assert report.added == 0
        [(reason, count)] = report.skipped.items()
        assert count == 1 and reason.startswith("history unavailable")
        assert stored() == []

    def test_unreadable_items_are_skipped_and_counted_and_the_rest_is_synced(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        start = utcnow() - timedelta(hours=2)
        good = account.say(contact_id, "INBOUND", "Hola\x00", start)
        history = account.histories[contact_id]
        history.append({**good, "id": str(uuid.uuid4()), "created_at": "yesterday"})
        history.append({**good, "id": str(uuid.uuid4()), "created_at": "0001-01-01T00:00:00+23:59"})
        history.append({**good, "id": ["x"], "created_at": iso(start + timedelta(minutes=1))})
        history.append({**good, "id": None, "created_at": iso(start + timedelta(minutes=2))})
        history.append({**good, "id": "m" * 200, "created_at": iso(start + timedelta(minutes=3))})
        naive = account.say(contact_id, "INBOUND", {"text": "?"}, start + timedelta(minutes=4))
        naive["created_at"] = naive["created_at"].removesuffix("Z")

        report, _ = sync(vambe, ref(account, contact_id))

        assert report.skipped == {"unreadable history items": 5}
        assert [m.body for m in stored(contact_id)] == ["Hola\ufffd", "[text]"]
        assert stored(contact_id)[1].occurred_at == at_ms(start + timedelta(minutes=4))

    def test_messages_older_than_the_period_are_skipped_and_reported(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        now = utcnow()
        account.say(contact_id, "INBOUND", "Hace diez días", now - timedelta(days=10))
        account.say(contact_id, "OUTBOUND", "Hace ocho días", now - timedelta(days=8))
        account.say(contact_id, "INBOUND", "Hace dos días", now - timedelta(days=2))

        report, _ = sync(vambe, ref(account, contact_id), days=7, now=now)

        assert report.added == 1
        assert report.skipped == {"older than the sync period": 2}
        assert [m.body for m in stored()] == ["Hace dos días"]

    def test_a_vanished_contact_is_skipped_and_the_others_are_synced(self, app_ctx, account, fake, vambe):
        gone = account.add_contact(name="Se fue", phone="56911112222")
        stays = account.add_contact(name="Sigue", phone="56933334444")
        account.say(gone, "INBOUND", "hola", utcnow() - timedelta(hours=1))
        account.say(stays, "INBOUND", "sigo aquí", utcnow() - timedelta(hours=1))
        contacts = contacts_to_sync(vambe, days=7)
        account.vanished.add(gone)  # deleted in Vambe between listing and reading its history

        report, now = SyncReport(), utcnow()
        for contact in contacts:
            sync_contact(vambe, contact, since=now - timedelta(days=7), now=now, report=report, wait=[].append)

        assert report.contacts == 2
        assert report.skipped == {"contact no longer exists in Vambe": 1}
        assert [m.body for m in stored()] == ["sigo aquí"]


# --- merging with copies a webhook delivered ---------------------------------------------------------


def post_webhook(app, payload: dict):
    response = deliver_signed(app, payload)
    with app.app_context():
        # Read after the answer: a delivery that needed Vambe's business numbers is filed once they came.
        state = db.session.get(WebhookDelivery, response.get_json()["delivery"]).state
        db.session.remove()
    assert state == DeliveryState.PROCESSED, response.get_data(as_text=True)


def deliver_signed(app, payload: dict):
    response = send_signed(app, payload)
    response.close()  # as a server does once the answer is sent: what Handoff defers to then runs now
    return response


def send_signed(app, payload: dict):
    """The webhook's answer, before the server has finished with it."""
    body = json.dumps(payload).encode()
    timestamp = str(int(utcnow().timestamp()))
    signature = hmac.new(
        app.config["VAMBE_WEBHOOK_SECRET"].encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return app.test_client().post(
        "/webhooks/vambe",
        data=body,
        headers={
            "content-type": "application/json",
            "x-vambe-timestamp": timestamp,
            "x-vambe-signature": signature,
        },
    )


def webhook(event: str, contact_id: str, message_id: str, body: str, at: datetime) -> dict:
    return {
        "event": event,
        "timestamp": iso(at),
        "data": {
            "contact_id": contact_id,
            "message_id": message_id,
            "message_body": body,
            "contact_name": "María",
        },
    }


class TestMergingWithWebhookCopies:
    def test_copies_under_other_ids_are_merged_not_duplicated(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        start = utcnow() - timedelta(minutes=30)
        post_webhook(app_ctx, webhook("message.received", contact_id, "wh-1", "¿Siguen abiertos?", start))
        post_webhook(
            app_ctx,
            webhook("message.sent", contact_id, "wh-2", "Sí, hasta las 20 h.", start + timedelta(minutes=1)),
        )
        account.say(contact_id, "INBOUND", "¿Siguen abiertos?", start + timedelta(seconds=40))
        account.say(
            contact_id,
            "OUTBOUND",
            "Sí, hasta las 20 h.",
            start + timedelta(minutes=1, seconds=30),
            status="read",
        )
        account.say(contact_id, "INBOUND", "Voy para allá", start + timedelta(minutes=5))

        first, _ = sync(vambe, ref(account, contact_id))
        again, _ = sync(vambe, ref(account, contact_id))

        assert (first.added, first.merged) == (1, 2)
        assert again.added == 0
        messages = stored()
        assert [m.body for m in messages] == ["¿Siguen abiertos?", "Sí, hasta las 20 h.", "Voy para allá"]
        assert [m.provider_message_id for m in messages[:2]] == ["wh-1", "wh-2"]  # the webhook's ids are kept
        assert messages[1].outcome == Outcome.READ  # the history's status was applied to the copy

    def test_two_identical_messages_close_together_stay_two(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        start = utcnow() - timedelta(minutes=10)
        # Only the first "Ok" came by webhook; history has both.
        post_webhook(app_ctx, webhook("message.received", contact_id, "wh-ok", "Ok", start))
        account.say(contact_id, "INBOUND", "Ok", start + timedelta(seconds=5))
        account.say(contact_id, "INBOUND", "Ok", start + timedelta(seconds=50))

        sync(vambe, ref(account, contact_id))
        sync(vambe, ref(account, contact_id))

        assert [m.body for m in stored()] == ["Ok", "Ok"]

    def test_a_message_outside_the_tolerance_is_not_merged(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        start = utcnow() - timedelta(hours=1)
        post_webhook(app_ctx, webhook("message.received", contact_id, "wh-gracias", "Gracias", start))
        account.say(contact_id, "INBOUND", "Gracias", start + timedelta(minutes=20))

        report, _ = sync(vambe, ref(account, contact_id))

        assert (report.added, report.merged) == (1, 0)
        assert [m.body for m in stored()] == ["Gracias", "Gracias"]


class TestContactDetails:
    """A shape-A webhook names the contact but carries no phone; Vambe's contact record has it."""

    def test_a_sync_gives_a_webhook_contact_its_phone_even_when_no_message_is_new(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        at = utcnow() - timedelta(minutes=5)
        post_webhook(app_ctx, webhook("message.received", contact_id, "wh-1", "Hola", at))
        account.say(contact_id, "INBOUND", "Hola", at, message_id="wh-1")
        assert conversation_for(contact_id).phone is None

        report, _ = sync(vambe, ref(account, contact_id))

        assert report.already_known == 1 and report.added == 0
        conversation = conversation_for(contact_id)
        assert (conversation.phone, conversation.name) == ("+" + PHONE, "María")  # the webhook's name is kept

    def test_refresh_asks_vambe_for_the_phone_a_webhook_did_not_carry(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        post_webhook(app_ctx, webhook("message.received", contact_id, "wh-1", "Hola", utcnow()))

        refresh_conversation(vambe, conversation_for(contact_id), now=utcnow())
        refresh_conversation(vambe, conversation_for(contact_id), now=utcnow())

        assert conversation_for(contact_id).phone == "+" + PHONE
        assert info_requests(fake, contact_id) == 1  # the second refresh had the phone already

    def test_refresh_without_details_still_reports_what_happened(self, app_ctx, account, fake, vambe):
        contact_id = account.add_contact()
        post_webhook(app_ctx, webhook("message.received", contact_id, "wh-1", "Hola", utcnow()))
        account.vanished.add(contact_id)

        report = refresh_conversation(vambe, conversation_for(contact_id), now=utcnow())

        assert conversation_for(contact_id).phone is None
        assert report.skipped == {
            "contact details unavailable: Vambe has no contact with this phone number or contact id.": 1,
            "contact no longer exists in Vambe": 1,
        }


class TestContactsAWebhookIntroduces:
    def test_a_new_contact_gets_its_phone_from_vambe_once(self, install, account, fake):
        contact_id = account.add_contact()
        post_webhook(install, webhook("message.received", contact_id, "wh-1", "Hola", utcnow()))
        post_webhook(install, webhook("message.received", contact_id, "wh-2", "¿Hay alguien?", utcnow()))

        with install.app_context():
            conversation = conversation_for(contact_id)
            assert (conversation.phone, conversation.name) == ("+" + PHONE, "María")  # the webhook's name is kept
            db.session.remove()
        assert info_requests(fake, contact_id) == 1

    def test_when_vambe_cannot_say_the_delivery_is_processed_all_the_same(self, install, account, fake):
        contact_id = account.add_contact()
        account.vanished.add(contact_id)

        post_webhook(install, webhook("message.received", contact_id, "wh-1", "Hola", utcnow()))  # asserts processed

        with install.app_context():
            assert conversation_for(contact_id).phone is None
            db.session.remove()
        assert info_requests(fake, contact_id) == 1


def shape_b_without_event(contact_id: str, from_number: str, message_id: str) -> dict:
    """Shape B as documented: no event name, so only the sender's number tells which way it went."""
    data = {"fromNumber": from_number, "message": "Hola", "messageId": message_id, "messageType": "text", "name": "Ana"}
    return {"aiContactId": contact_id, "data": data}


class TestBusinessNumbersOnFirstNeed:
    """A fresh install that skipped `flask vambe numbers` receives shape-B messages."""

    @pytest.mark.parametrize(
        ("sender", "direction"), [(PHONE, Direction.INBOUND), (BUSINESS, Direction.OUTBOUND)], ids=["customer", "ai"]
    )
    def test_the_numbers_are_fetched_and_the_message_filed_the_right_way(self, install, fake, sender, direction):
        contact_id = str(uuid.uuid4())
        post_webhook(install, shape_b_without_event(contact_id, sender, "b-1"))  # asserts processed
        post_webhook(install, shape_b_without_event(contact_id, sender, "b-2"))

        with install.app_context():
            assert [m.direction for m in stored(contact_id)] == [direction, direction]
            assert db.session.scalars(select(BusinessNumber.phone_number)).all() == [BUSINESS]
            db.session.remove()
        assert sum(1 for r in fake.requests if r.path == "/api/public/channels/whatsapp") == 1

    def test_when_vambe_cannot_list_them_the_delivery_stays_failed_for_a_replay(self, install, account, fake):
        account.channels = FakeReply(503, {"statusCode": 503, "message": "Service Unavailable"})

        response = deliver_signed(install, shape_b_without_event(str(uuid.uuid4()), PHONE, "b-1"))

        assert response.status_code == 200 and response.get_json()["state"] == "failed"
        with install.app_context():
            assert stored() == []
            db.session.remove()


class TestFollowUpsAfterTheAnswer:
    """Vambe retries a webhook that is slow to answer: Handoff answers first, then asks Vambe what it lacks."""

    def test_a_new_contact_is_looked_up_only_after_the_answer(self, install, account, fake):
        contact_id = account.add_contact()

        response = send_signed(install, webhook("message.received", contact_id, "wh-1", "Hola", utcnow()))

        assert response.get_json()["state"] == "processed"
        assert info_requests(fake, contact_id) == 0
        response.close()
        assert info_requests(fake, contact_id) == 1

    def test_a_delivery_that_lacks_nothing_asks_vambe_nothing(self, install, account, fake):
        contact_id = account.add_contact()
        post_webhook(install, webhook("message.received", contact_id, "wh-1", "Hola", utcnow()))
        asked = len(fake.requests)

        post_webhook(install, webhook("message.received", contact_id, "wh-2", "¿Hola?", utcnow()))

        assert len(fake.requests) == asked

    def test_concurrent_first_deliveries_fetch_the_business_numbers_once(self, install, fake):
        if not install.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
            pytest.skip("the advisory lock that keeps the fetch single is PostgreSQL's")
        workers = 8
        barrier = threading.Barrier(workers)
        answers = []

        def deliver(index: int) -> None:
            barrier.wait()
            answers.append(deliver_signed(install, shape_b_without_event(str(uuid.uuid4()), PHONE, f"b-{index}")))

        threads = [threading.Thread(target=deliver, args=(index,)) for index in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert [answer.status_code for answer in answers] == [200] * workers
        assert sum(1 for r in fake.requests if r.path == "/api/public/channels/whatsapp") == 1
        with install.app_context():
            states = db.session.scalars(select(WebhookDelivery.state)).all()
            directions = db.session.scalars(select(Message.direction)).all()
            db.session.remove()
        assert states == [DeliveryState.PROCESSED] * workers
        assert directions == [Direction.INBOUND] * workers


class TestRefreshWhenVambeFails:
    """Refresh from Vambe runs while an agent waits: every Vambe error is a message, nothing sleeps."""

    @pytest.fixture
    def conversation(self, app_ctx):
        return factories.make_conversation()

    def refresh_against(self, answer: FakeReply, conversation):
        with running_fake_vambe(lambda request: answer) as server:
            client = VambeClient(server.url, API_KEY)
            report = refresh_conversation(client, conversation, now=utcnow())
            client.session.close()
            return report, server.requests

    def test_a_revoked_key_is_reported(self, conversation):
        report, _ = self.refresh_against(FakeReply(401, {"statusCode": 401, "message": "Unauthorized"}), conversation)

        [reason] = report.skipped
        assert reason.startswith("Vambe refused the request:") and "API key" in reason

    def test_a_rate_limit_is_reported_not_waited_out(self, conversation):
        answer = FakeReply(429, {"statusCode": 429, "message": "Too Many Requests"}, headers={"Retry-After": "3600"})

        report, requests = self.refresh_against(answer, conversation)

        assert report.waited_seconds == 0
        assert len(requests) == 1
        assert any(reason.startswith("history unavailable") for reason in report.skipped)


def info_requests(fake, contact_id: str) -> int:
    return sum(1 for r in fake.requests if r.path == f"/api/public/contact/{contact_id}/info")


# --- outcomes of Handoff's own sends -----------------------------------------------------------------


class TestOwnSendOutcomes:
    @pytest.fixture
    def agent(self, app_ctx):
        return factories.make_user(name="Camila")

    def send(self, account, vambe, agent, text: str):
        """Send ``text`` to a fresh Vambe contact through the fake; the message and the contact id."""
        contact_id = account.add_contact()
        now = utcnow()
        conversation = factories.make_conversation(
            vambe_contact_id=contact_id, phone="+" + PHONE, last_inbound_at=now - timedelta(minutes=10)
        )
        message = send_reply(
            conversation,
            agent,
            Reply(text=text, idempotency_key=uuid.uuid4().hex),
            client=vambe,
            now=now,
            warning=WARNING,
        )
        return message, contact_id

    def outcome_after_sync(self, vambe, account, contact_id) -> Message:
        sync(vambe, ref(account, contact_id))
        [message] = [m for m in stored(contact_id) if m.direction == Direction.OUTBOUND]
        return message

    def test_history_statuses_move_the_outcome_forward_and_never_back(self, agent, account, fake, vambe):
        text = "Tu pedido sale hoy."
        message, contact_id = self.send(account, vambe, agent, text)
        assert (message.outcome, message.provider_message_id) == (Outcome.SENT, None)
        echo = account.say(
            contact_id, "OUTBOUND", text, message.occurred_at + timedelta(seconds=20), status="delivered"
        )

        seen = []
        for status in ("delivered", "read", "delivered", "sent", "failed"):
            account.set_status(echo["id"], status)
            synced = self.outcome_after_sync(vambe, account, contact_id)
            assert synced.id == message.id
            seen.append(synced.outcome)

        assert seen == [Outcome.DELIVERED, Outcome.READ, Outcome.READ, Outcome.READ, Outcome.READ]
        assert synced.provider_message_id == echo["id"]
        assert synced.author == Author.AGENT

    def test_a_failed_status_marks_a_sent_message_failed_with_a_reason(self, agent, account, fake, vambe):
        text = "Hola, ¿sigues ahí?"
        message, contact_id = self.send(account, vambe, agent, text)
        account.say(contact_id, "OUTBOUND", text, message.occurred_at + timedelta(seconds=5), status="failed")

        synced = self.outcome_after_sync(vambe, account, contact_id)

        assert (synced.id, synced.outcome) == (message.id, Outcome.FAILED)
        assert synced.outcome_reason

    def test_a_send_whose_answer_was_lost_is_settled_to_sent_by_history(self, agent, account, fake, vambe):
        account.send_answer = DROP  # Vambe got the request, the answer never came back
        text = "Te confirmo el cambio de talla."
        message, contact_id = self.send(account, vambe, agent, text)
        assert message.outcome == Outcome.UNKNOWN
        assert message.outcome_reason
        account.say(contact_id, "OUTBOUND", text, message.occurred_at + timedelta(seconds=3), status="sent")

        synced = self.outcome_after_sync(vambe, account, contact_id)

        assert (synced.id, synced.outcome, synced.outcome_reason) == (message.id, Outcome.SENT, None)
        assert len(stored(contact_id)) == 1


# --- the CLI against a real (fake) Vambe, and the sandbox end to end ---------------------------------


@pytest.fixture
def install(database_url, fake):
    """A non-sandbox installation whose Vambe is the loopback fake."""
    app = build_app(
        database_url, VAMBE_API_KEY=API_KEY, VAMBE_API_BASE_URL=fake.url, VAMBE_WEBHOOK_SECRET="whsec-" + "s" * 16
    )
    yield app
    app.extensions["vambe_client"].session.close()
    with app.app_context():
        db.engine.dispose()


def test_cli_sync_reports_a_vanished_contact_and_syncs_the_rest(install, account, fake):
    gone = account.add_contact(name="Se fue", phone="56911112222")
    stays = account.add_contact(name="Sigue", phone="56933334444")
    account.say(gone, "INBOUND", "hola", utcnow() - timedelta(hours=1))
    a_thread(account, stays, utcnow() - timedelta(hours=2))
    account.vanished.add(gone)

    result = install.test_cli_runner().invoke(args=["vambe", "sync", "--days", "7"])

    assert result.exit_code == 0, result.output
    assert "2 contacts: 5 messages added" in result.output
    assert "Skipped 1: contact no longer exists in Vambe" in result.output
    assert [r.query["days"] for r in fake.requests if r.path == "/api/public/contacts"] == [["7"]]
    with install.app_context():
        assert db.session.scalar(select(func.count(Message.id))) == 5
        db.session.remove()


def snapshot() -> list[tuple]:
    db.session.expire_all()
    return sorted(
        # History times carry milliseconds only.
        (
            m.provider_message_id,
            m.conversation_id,
            m.direction,
            m.author,
            m.body,
            at_ms(m.occurred_at),
            m.outcome,
        )
        for m in db.session.scalars(select(Message))
    )


def test_cli_sync_in_the_sandbox_brings_deleted_messages_back_exactly_once(app):
    runner = app.test_cli_runner()
    with app.app_context():
        assert seed_sandbox(app.extensions["vambe_client"], now=utcnow())
        seeded = snapshot()
        db.session.execute(delete(Message))
        db.session.commit()
        db.session.remove()
    assert len(seeded) == 12

    first = runner.invoke(args=["vambe", "sync", "--days", "7"])
    second = runner.invoke(args=["vambe", "sync", "--days", "7"])

    assert first.exit_code == 0, first.output
    assert "4 contacts: 12 messages added, 0 merged with webhook copies, 0 already known." in first.output
    assert second.exit_code == 0, second.output
    assert "4 contacts: 0 messages added, 0 merged with webhook copies, 12 already known." in second.output
    with app.app_context():
        assert snapshot() == seeded
        db.session.remove()


def test_the_refresh_button_brings_in_a_message_only_vambe_has(app, client, auth):
    auth.login_as(Role.AGENT)
    with app.app_context():
        conversation = factories.make_sandbox_conversation(last_inbound_ago=timedelta(minutes=20))
        conversation_id, contact_id = conversation.id, conversation.vambe_contact_id
        # The webhook for this one never reached Handoff.
        db.session.add(
            SandboxMessage(
                id=str(uuid.uuid4()),
                contact_id=contact_id,
                direction="INBOUND",
                sender="customer",
                body="¿Me pueden llamar?",
                status="read",
                created_at=utcnow() - timedelta(minutes=2),
            )
        )
        db.session.commit()
        db.session.remove()
    page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "¿Me pueden llamar?" not in page
    token = auth.csrf_token(f"/conversations/{conversation_id}")

    partial = client.post(
        f"/conversations/{conversation_id}/refresh",
        data={"csrf_token": token},
        headers={"HX-Request": "true", "HX-Request-Type": "partial"},
    )
    full = client.post(f"/conversations/{conversation_id}/refresh", data={"csrf_token": token})

    assert partial.status_code == 200
    fragment = partial.get_data(as_text=True)
    assert "¿Me pueden llamar?" in fragment
    assert "Up to date: 1 new, 1 already here." in fragment
    assert full.status_code == 303
    assert full.headers["Location"].endswith(f"/conversations/{conversation_id}")
    with app.app_context():
        bodies = db.session.scalars(
            select(Message.body).where(Message.conversation_id == conversation_id).order_by(Message.occurred_at)
        ).all()
        window = db.session.get(Conversation, conversation_id).last_inbound_at
        db.session.remove()
    assert bodies == ["Hola, ¿me ayudan?", "¿Me pueden llamar?"]
    assert utcnow() - window < timedelta(minutes=3)  # the refreshed message moved the window
