"""Recording messages observed in WhatsApp: idempotent by provider id, conversations found or created."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.domain.ingesting import ContactRef, ObservedMessage, ingest_message, record_outbound
from app.domain.window import WindowState, window_status
from app.extensions import db
from app.models import Author, Conversation, Direction, Message, Outcome

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)


def contact(*, vambe_contact_id: str | None = "generate", phone: str | None = None, name: str = "") -> ContactRef:
    return ContactRef(
        vambe_contact_id=str(uuid.uuid4()) if vambe_contact_id == "generate" else vambe_contact_id,
        phone=phone,
        name=name,
    )


def ingest(
    ref: ContactRef,
    *,
    provider_message_id: str | None = "generate",
    occurred_at: datetime = T0,
    direction: Direction = Direction.INBOUND,
    body: str = "Hola",
    now: datetime = NOW,
):
    inbound = direction == Direction.INBOUND
    observed = ObservedMessage(
        direction=direction,
        author=Author.CUSTOMER if inbound else Author.ASSISTANT,
        body=body,
        occurred_at=occurred_at,
        provider_message_id=str(uuid.uuid4()) if provider_message_id == "generate" else provider_message_id,
        outcome=Outcome.RECEIVED if inbound else Outcome.SENT,
    )
    return ingest_message(ref, observed, now=now)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


class TestIdempotency:
    def test_the_same_provider_id_twice_is_stored_once(self, app_ctx):
        ref = contact()

        first = ingest(ref, provider_message_id="wamid.ABC")
        second = ingest(ref, provider_message_id="wamid.ABC")

        assert first.created is True
        assert second.created is False
        assert second.message.id == first.message.id
        assert count(Message) == 1

    def test_a_duplicate_delivery_does_not_move_the_conversation_times(self, app_ctx):
        ref = contact()
        first = ingest(ref, provider_message_id="wamid.ABC", occurred_at=T0)

        ingest(ref, provider_message_id="wamid.ABC", occurred_at=T0 + timedelta(hours=3))

        conversation = first.message.conversation
        assert conversation.last_inbound_at == T0
        assert conversation.last_message_at == T0

    def test_messages_without_a_provider_id_are_stored_each_time(self, app_ctx):
        ref = contact()

        first = ingest(ref, provider_message_id=None)
        second = ingest(ref, provider_message_id=None)

        assert first.created and second.created
        assert first.message.id != second.message.id
        assert count(Message) == 2


class TestConversations:
    def test_a_new_contact_creates_a_conversation(self, app_ctx):
        ref = contact(phone="56998389641", name="Ana")

        result = ingest(ref, occurred_at=T0)

        conversation = db.session.scalar(
            select(Conversation).where(Conversation.vambe_contact_id == ref.vambe_contact_id)
        )
        assert conversation is not None
        assert result.message.conversation_id == conversation.id
        assert (conversation.phone, conversation.name) == ("+56998389641", "Ana")
        assert conversation.created_at == NOW
        assert conversation.last_inbound_at == T0

    def test_a_known_contact_reuses_its_conversation(self, app_ctx):
        ref = contact(phone="56998389641")

        first = ingest(ref)
        second = ingest(ref)

        assert first.message.conversation_id == second.message.conversation_id
        assert count(Conversation) == 1

    def test_a_phone_only_conversation_is_adopted_when_its_vambe_id_arrives(self, app_ctx):
        by_phone = ingest(contact(vambe_contact_id=None, phone="+56998389641"))
        assert by_phone.message.conversation.vambe_contact_id is None
        vambe_id = str(uuid.uuid4())

        by_id = ingest(contact(vambe_contact_id=vambe_id, phone="56998389641"))

        assert by_id.message.conversation_id == by_phone.message.conversation_id
        assert by_id.message.conversation.vambe_contact_id == vambe_id
        assert count(Conversation) == 1

    def test_a_phone_only_contact_finds_the_conversation_with_that_phone(self, app_ctx):
        first = ingest(contact(vambe_contact_id=None, phone="56998389641"))

        second = ingest(contact(vambe_contact_id=None, phone="+56 9 9838 9641"))

        assert second.message.conversation_id == first.message.conversation_id
        assert count(Conversation) == 1

    def test_a_contact_with_neither_id_nor_phone_is_refused(self, app_ctx):
        with pytest.raises(ValueError):
            ingest(contact(vambe_contact_id=None, phone=None))

        assert count(Conversation) == 0
        assert count(Message) == 0


class TestPhones:
    @pytest.mark.parametrize("raw", ["56998389641", "+56998389641", "+56 9 9838 9641", "56-9-9838-9641"])
    def test_phones_are_stored_in_e164(self, app_ctx, raw):
        result = ingest(contact(phone=raw))

        assert result.message.conversation.phone == "+56998389641"

    @pytest.mark.parametrize("raw", ["abc", "12", "not a phone"])
    def test_an_unparseable_phone_is_dropped_without_crashing(self, app_ctx, raw):
        result = ingest(contact(phone=raw))

        assert result.created
        assert result.message.conversation.phone is None


class TestConversationTimes:
    """last_message_at and last_inbound_at only ever move forward."""

    def test_an_older_message_arriving_late_moves_neither_time_back(self, app_ctx):
        ref = contact()
        result = ingest(ref, occurred_at=T0 + timedelta(hours=2))

        ingest(ref, occurred_at=T0)
        ingest(ref, occurred_at=T0 + timedelta(hours=1), direction=Direction.OUTBOUND)

        conversation = result.message.conversation
        assert conversation.last_inbound_at == T0 + timedelta(hours=2)
        assert conversation.last_message_at == T0 + timedelta(hours=2)

    def test_a_newer_message_moves_both_times_forward(self, app_ctx):
        ref = contact()
        result = ingest(ref, occurred_at=T0)

        ingest(ref, occurred_at=T0 + timedelta(minutes=30))

        conversation = result.message.conversation
        assert conversation.last_inbound_at == T0 + timedelta(minutes=30)
        assert conversation.last_message_at == T0 + timedelta(minutes=30)

    def test_a_newer_outbound_message_moves_only_last_message_at(self, app_ctx):
        ref = contact()
        result = ingest(ref, occurred_at=T0)

        ingest(ref, occurred_at=T0 + timedelta(hours=1), direction=Direction.OUTBOUND)

        conversation = result.message.conversation
        assert conversation.last_inbound_at == T0
        assert conversation.last_message_at == T0 + timedelta(hours=1)


class TestTimesAheadOfTheClock:
    """A message cannot have happened after Handoff learnt of it: a time ahead of ``now`` is taken as ``now``."""

    def test_an_inbound_time_ahead_anchors_the_window_when_it_arrived(self, app_ctx):
        result = ingest(contact(), occurred_at=NOW + timedelta(hours=3), now=NOW)

        conversation = result.message.conversation
        assert result.message.occurred_at == NOW
        assert (conversation.last_inbound_at, conversation.last_message_at) == (NOW, NOW)
        status = window_status(conversation.last_inbound_at, NOW + timedelta(hours=24, minutes=1), timedelta(hours=1))
        assert status.state == WindowState.CLOSED

    def test_out_of_order_arrivals_keep_the_newest_arrival(self, app_ctx):
        ref = contact()
        first = ingest(ref, body="ahead", occurred_at=NOW + timedelta(hours=3), now=NOW)
        ingest(ref, body="older, late", occurred_at=NOW - timedelta(hours=1), now=NOW + timedelta(minutes=1))
        conversation = first.message.conversation
        assert conversation.last_inbound_at == NOW

        ingest(ref, body="ahead again", occurred_at=NOW + timedelta(hours=4), now=NOW + timedelta(minutes=30))
        ingest(ref, body="true, late", occurred_at=NOW + timedelta(minutes=10), now=NOW + timedelta(minutes=40))

        db.session.refresh(conversation)
        assert conversation.last_inbound_at == NOW + timedelta(minutes=30)
        assert conversation.last_message_at == NOW + timedelta(minutes=30)
        in_order = db.session.scalars(select(Message.body).order_by(Message.occurred_at)).all()
        assert in_order == ["older, late", "ahead", "true, late", "ahead again"]

    def test_an_outbound_time_ahead_is_taken_as_now_and_opens_no_window(self, app_ctx):
        ref = contact()

        message = record_outbound(ref, "Te ayudo", NOW + timedelta(hours=3), "out-ahead", now=NOW)

        assert (message.direction, message.author, message.occurred_at) == (Direction.OUTBOUND, Author.ASSISTANT, NOW)
        assert message.conversation.last_message_at == NOW
        assert message.conversation.last_inbound_at is None
