"""The review queue: rules a lead can see and switch sample conversations; a lead comments, scores and marks them
reviewed; scores reach the per-agent report; and the one-row-per-conversation export, checked row by row."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.domain import reviewing
from app.extensions import db
from app.models import (
    AuditEvent,
    AuditKind,
    Author,
    ConversationStatus,
    Direction,
    Handoff,
    HandoffReason,
    Outcome,
    ReviewItem,
    ReviewReason,
    Role,
    User,
)
from tests import factories
from tests.conftest import Auth


def sampled() -> dict[int, list[str]]:
    db.session.expire_all()
    return {item.conversation_id: item.reasons for item in reviewing.pending_reviews()}


def only_rule(reason: ReviewReason, setting: int | None = None) -> None:
    """Leave ``reason`` the only rule on (so each case shows what its own rule samples)."""
    admin = factories.make_user(role=Role.LEAD)
    for rule in reviewing.rules():
        reviewing.change_rule(
            rule.reason,
            enabled=rule.reason == reason,
            setting=setting if rule.reason == reason and setting is not None else rule.setting,
            actor=admin,
            now=utcnow(),
        )


def handoff(conversation, requested_ago: timedelta, *, taken_after: timedelta | None = None) -> Handoff:
    requested = utcnow() - requested_ago
    record = Handoff(
        conversation_id=conversation.id,
        reason=HandoffReason.PHRASE,
        detail="",
        requested_at=requested,
        taken_at=requested + taken_after if taken_after else None,
        ended_at=requested + taken_after if taken_after else None,
    )
    db.session.add(record)
    db.session.commit()
    return record


def test_window_closed_before_a_person_replied(app_ctx):
    only_rule(ReviewReason.WINDOW_CLOSED_UNANSWERED)
    agent = factories.make_user()
    unanswered = factories.make_conversation(last_inbound_at=utcnow() - timedelta(hours=25))
    unanswered.assignee_id = agent.id
    answered = factories.make_conversation(last_inbound_at=utcnow() - timedelta(hours=25))
    answered.assignee_id = agent.id
    answered.last_human_reply_at = utcnow() - timedelta(hours=24, minutes=30)
    ai_only = factories.make_conversation(last_inbound_at=utcnow() - timedelta(hours=25))  # nobody expected a person
    still_open = factories.make_conversation(last_inbound_at=utcnow() - timedelta(hours=2))
    still_open.assignee_id = agent.id
    db.session.commit()
    reviewing.sample(now=utcnow())
    assert sampled() == {unanswered.id: ["window_closed_unanswered"]}
    assert not {answered.id, ai_only.id, still_open.id} & set(sampled())


def test_overrides_failed_sends_and_incidents(app_ctx):
    agent = factories.make_user()
    overridden = factories.make_conversation()
    factories.make_agent_reply(overridden, agent, utcnow() - timedelta(hours=1), override=True)
    failed = factories.make_conversation()
    factories.make_agent_reply(failed, agent, utcnow() - timedelta(hours=1), outcome=Outcome.FAILED)
    unknown = factories.make_conversation()
    factories.make_agent_reply(unknown, agent, utcnow() - timedelta(hours=1), outcome=Outcome.UNKNOWN)
    fine = factories.make_conversation()
    factories.make_agent_reply(fine, agent, utcnow() - timedelta(hours=1))
    incident = factories.make_conversation()
    db.session.add(AuditEvent(occurred_at=utcnow(), kind=AuditKind.AI_AFTER_TAKEOVER, conversation_id=incident.id))
    db.session.commit()
    reviewing.sample(now=utcnow() + timedelta(seconds=1))
    assert sampled() == {
        overridden.id: ["override"],
        failed.id: ["failed_send"],
        unknown.id: ["failed_send"],
        incident.id: ["incident"],
    }
    assert agent.id in {item.agent_id for item in reviewing.pending_reviews()}


def test_long_waits_in_the_handoff_queue(app_ctx):
    only_rule(ReviewReason.LONG_WAIT, setting=30)
    waiting = factories.make_conversation()
    handoff(waiting, timedelta(minutes=45))
    taken_late = factories.make_conversation()
    handoff(taken_late, timedelta(hours=3), taken_after=timedelta(minutes=40))
    taken_soon = factories.make_conversation()
    handoff(taken_soon, timedelta(hours=3), taken_after=timedelta(minutes=10))
    short_so_far = factories.make_conversation()
    handoff(short_so_far, timedelta(minutes=20))
    reviewing.sample(now=utcnow())
    assert set(sampled()) == {waiting.id, taken_late.id}


@pytest.mark.parametrize(("percent", "expected"), [(100, 6), (0, 0)])
def test_a_random_share_of_resolved_conversations(app_ctx, percent, expected):
    only_rule(ReviewReason.RANDOM, setting=percent)
    for _ in range(6):
        conversation = factories.make_conversation()
        db.session.add(AuditEvent(occurred_at=utcnow(), kind=AuditKind.RESOLVED, conversation_id=conversation.id))
    db.session.commit()
    reviewing.sample(now=utcnow() + timedelta(seconds=1))
    assert len(sampled()) == expected


def test_the_share_is_stable_and_about_what_it_says():
    drawn = sum(reviewing.in_share(event_id, 10) for event_id in range(1, 5001))
    assert 400 < drawn < 600
    assert [reviewing.in_share(n, 10) for n in range(50)] == [reviewing.in_share(n, 10) for n in range(50)]


def test_a_conversation_waits_once_with_every_reason_and_passes_are_incremental(app_ctx):
    agent = factories.make_user()
    conversation = factories.make_conversation()
    factories.make_agent_reply(conversation, agent, utcnow() - timedelta(hours=2), override=True)
    assert reviewing.sample(now=utcnow()) == 1
    factories.make_agent_reply(conversation, agent, utcnow(), outcome=Outcome.FAILED)
    assert reviewing.sample(now=utcnow() + timedelta(seconds=1)) == 0
    assert sampled() == {conversation.id: ["override", "failed_send"]}
    assert reviewing.sample(now=utcnow() + timedelta(seconds=2)) == 0
    assert len(db.session.scalars(select(ReviewItem)).all()) == 1


def test_a_rule_switched_off_samples_nothing(app_ctx):
    lead = factories.make_user(role=Role.LEAD)
    reviewing.change_rule("override", enabled=False, setting=None, actor=lead, now=utcnow())
    conversation = factories.make_conversation()
    factories.make_agent_reply(conversation, factories.make_user(), utcnow() - timedelta(hours=1), override=True)
    reviewing.sample(now=utcnow())
    assert sampled() == {}
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.REVIEW_RULE_CHANGED)).all()
    assert event.details == {"rule": "override", "enabled": False, "setting": None}


@pytest.mark.parametrize(("reason", "setting"), [("long_wait", 0), ("long_wait", None), ("random", 101)])
def test_a_rule_setting_out_of_range_is_refused(app_ctx, reason, setting):
    lead = factories.make_user(role=Role.LEAD)
    with pytest.raises(reviewing.ReviewRefused, match="whole number from"):
        reviewing.change_rule(reason, enabled=True, setting=setting, actor=lead, now=utcnow())


def test_leads_switch_rules_in_the_page_with_clear_errors(app, client, auth):
    agent = Auth(app, app.test_client())
    agent.login_as(Role.AGENT)
    assert agent.client.get("/review/queue").status_code == 403
    assert agent.client.post("/review/rules/random", data={"csrf_token": agent.csrf_token()}).status_code == 403
    auth.login_as(Role.LEAD)
    page = client.get("/review/queue").get_data(as_text=True)
    assert 'data-rule="long_wait"' in page and "Random share of resolved conversations" in page
    token = auth.csrf_token("/review/queue")
    refused = client.post("/review/rules/long_wait", data={"csrf_token": token, "enabled": "y", "setting": "0"})
    assert refused.status_code == 422 and "Give a whole number from 1 to 1440" in refused.get_data(as_text=True)
    assert client.post("/review/rules/long_wait", data={"csrf_token": token, "setting": "x"}).status_code == 400
    assert client.post("/review/rules/nope", data={"csrf_token": token}).status_code == 404
    assert client.post("/review/rules/random", data={"setting": "10"}).status_code == 400  # no CSRF token
    ok = client.post("/review/rules/random", data={"csrf_token": token, "setting": "20"})
    assert ok.status_code == 303
    with app.app_context():
        rule = {r.reason: r for r in reviewing.rules()}["random"]
        assert (rule.enabled, rule.setting) == (False, 20)  # the box was left unticked


def reviewed_conversation(app, agent_name="Camila"):
    with app.app_context():
        agent = factories.make_user(name=agent_name)
        conversation = factories.make_conversation(name="Rosa")
        factories.make_message(conversation, body="¿Dónde está mi pedido?", occurred_at=utcnow() - timedelta(hours=2))
        reply = factories.make_agent_reply(conversation, agent, utcnow() - timedelta(hours=1), override=True)
        conversation.assignee_id = agent.id
        db.session.commit()
        return conversation.id, reply.id, agent.id


def test_a_lead_reads_comments_scores_and_the_score_reaches_the_report(app, client, auth):
    conversation_id, reply_id, agent_id = reviewed_conversation(app)
    auth.login_as(Role.LEAD)
    queue = client.get("/review/queue").get_data(as_text=True)
    [item_id] = re.findall(r'data-review="(\d+)"', queue)
    page = client.get(f"/review/queue/{item_id}").get_data(as_text=True)
    assert "Sent outside the window (override)" in page
    assert 'class="turn turn-customer"' in page and 'class="turn turn-agent"' in page
    token = auth.csrf_token(f"/review/queue/{item_id}")
    response = client.post(
        f"/review/queue/{item_id}/comments",
        data={"csrf_token": token, "message_id": str(reply_id), "body": "Debió usar la plantilla"},
    )
    assert response.status_code == 303 and response.headers["Location"].endswith(f"#message-{reply_id}")
    assert "Debió usar la plantilla" in client.get(f"/review/queue/{item_id}").get_data(as_text=True)
    refused = client.post(f"/review/queue/{item_id}/verdict", data={"csrf_token": token, "score": "6"})
    assert refused.status_code == 422
    response = client.post(
        f"/review/queue/{item_id}/verdict", data={"csrf_token": token, "score": "4", "note": "Buen tono"}
    )
    assert response.status_code == 303
    again = client.post(f"/review/queue/{item_id}/verdict", data={"csrf_token": token, "score": "1"})
    assert again.status_code == 409 and "already reviewed" in again.get_data(as_text=True)
    queue = client.get("/review/queue").get_data(as_text=True)
    assert f'data-reviewed="{item_id}"' in queue and f'data-review="{item_id}"' not in queue
    report = client.get("/review/reports").get_data(as_text=True)
    link = re.search(rf'<a href="([^"]+)" data-score="{agent_id}">4\.0 \(1\)</a>', report)
    assert link, "the agent's score links to its reviews"
    listed = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert re.findall(r'data-reviewed="(\d+)"', listed) == [item_id]
    with app.app_context():
        item = db.session.get(ReviewItem, int(item_id))
        assert (item.score, item.note, item.agent_id) == (4, "Buen tono", agent_id)
        [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.kind == AuditKind.REVIEWED)).all()
        assert event.details["score"] == 4 and event.conversation_id == conversation_id


def test_comments_must_be_on_this_conversation_and_say_something(app, client, auth):
    conversation_id, reply_id, _ = reviewed_conversation(app)
    _, other_reply_id, _ = reviewed_conversation(app, "Otro")
    auth.login_as(Role.LEAD)
    client.get("/review/queue")
    with app.app_context():
        item_id = db.session.scalar(select(ReviewItem.id).where(ReviewItem.conversation_id == conversation_id))
    token = auth.csrf_token(f"/review/queue/{item_id}")
    url = f"/review/queue/{item_id}/comments"
    assert (
        client.post(url, data={"csrf_token": token, "message_id": str(other_reply_id), "body": "x"}).status_code == 400
    )
    assert client.post(url, data={"csrf_token": token, "message_id": str(reply_id), "body": "  "}).status_code == 400
    assert client.post(url, data={"csrf_token": token, "message_id": "abc", "body": "x"}).status_code == 400
    assert client.get("/review/queue/999999").status_code == 404


def parse_csv(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_the_per_conversation_export_matches_a_hand_built_data_set(app, client, auth):
    day = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
    with app.app_context():
        agent = factories.make_user(name="Camila")
        first = factories.make_conversation(name="Rosa", phone="+56911111111")
        first.assignee_id = agent.id
        factories.make_message(first, body="Hola", occurred_at=day)
        factories.make_message(first, direction=Direction.OUTBOUND, body="Soy el asistente", occurred_at=day)
        factories.make_message(
            first, direction=Direction.OUTBOUND, author=Author.OTHER_TOOL, body="Otro", occurred_at=day
        )
        handoff_record = Handoff(
            conversation_id=first.id, reason=HandoffReason.PHRASE, detail="", requested_at=day + timedelta(minutes=1)
        )
        db.session.add(handoff_record)
        factories.make_agent_reply(first, agent, day + timedelta(minutes=3), outcome=Outcome.FAILED)
        factories.make_agent_reply(first, agent, day + timedelta(minutes=5), override=True)
        db.session.add(
            AuditEvent(
                occurred_at=day + timedelta(minutes=6), kind=AuditKind.AI_AFTER_TAKEOVER, conversation_id=first.id
            )
        )
        db.session.add(
            ReviewItem(
                conversation_id=first.id,
                reasons=["override"],
                sampled_at=day,
                agent_id=agent.id,
                reviewed_at=day + timedelta(hours=1),
                score=3,
                note="",
            )
        )
        second = factories.make_conversation(name="=cmd()", phone="+56922222222")
        factories.make_message(second, body="Chao", occurred_at=day + timedelta(hours=2))
        second.status = ConversationStatus.RESOLVED  # after the message: a customer writing reopens it
        outside = factories.make_conversation(name="Fuera")
        factories.make_message(outside, body="Antes", occurred_at=day - timedelta(days=3))
        db.session.commit()
        first_id, second_id = first.id, second.id
    auth.login_as(Role.LEAD)
    client.set_cookie("tz", "America/Santiago")
    response = client.get("/review/conversations.csv?since=2026-11-10&until=2026-11-10")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = parse_csv(response)
    assert [row["conversation"] for row in rows] == [str(first_id), str(second_id)]
    assert rows[0] == {
        "conversation": str(first_id),
        "contact": "Rosa",
        "phone": "+56911111111",
        "agent": "Camila",
        "status": "open",
        "handoff_at": "2026-11-10T12:01:00-03:00",
        "first_human_reply_at": "2026-11-10T12:05:00-03:00",
        "customer_messages": "1",
        "ai_messages": "1",
        "agent_messages": "2",
        "other_tool_messages": "1",
        "overrides": "1",
        "failures": "1",
        "incidents": "1",
        "review_score": "3",
        "reviewed_at": "2026-11-10T13:00:00-03:00",
    }
    assert rows[1]["contact"] == "'=cmd()" and rows[1]["status"] == "resolved"
    assert (rows[1]["customer_messages"], rows[1]["agent_messages"], rows[1]["review_score"]) == ("1", "0", "")
    assert rows[1]["handoff_at"] == rows[1]["first_human_reply_at"] == ""


def test_only_leads_export(app, client, auth):
    auth.login_as(Role.AGENT)
    assert client.get("/review/conversations.csv").status_code == 403


def test_scores_in_the_report_are_per_agent(app_ctx):
    now = utcnow()
    one, two = factories.make_user(name="Uno"), factories.make_user(name="Dos")
    for agent, score in ((one, 5), (one, 2), (two, 4)):
        conversation = factories.make_conversation()
        db.session.add(
            ReviewItem(
                conversation_id=conversation.id,
                reasons=[],
                sampled_at=now,
                agent_id=agent.id,
                reviewed_at=now,
                score=score,
                note="",
            )
        )
    db.session.commit()
    scores = {
        s.agent: (s.reviews, s.average)
        for s in reviewing.scores_between(now - timedelta(hours=1), now + timedelta(hours=1))
    }
    assert scores == {"Uno": (2, 3.5), "Dos": (1, 4.0)}
    assert db.session.get(User, one.id) is not None
