"""Fake Vambe endpoints that hold callers to the same contract as the real API, 24h rule included."""

import re
import uuid
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from flask import current_app, jsonify, request
from sqlalchemy import func, select

from app.clock import utcnow
from app.extensions import csrf, db
from app.inputs import takes_json
from app.models import unstorable
from app.sandbox import bp
from app.sandbox.customers import first_channel, notify
from app.sandbox.state import (
    SANDBOX_CLIENT_ID,
    SANDBOX_TEMPLATES,
    SandboxChannel,
    SandboxContact,
    SandboxMessage,
    SandboxTemplate,
)

API = "/api/public"
HISTORY_PAGE_SIZE = 20
MAX_HISTORY_PAGE = 100_000  # far past any real history; keeps OFFSET within the database's integers
MAX_TEXT_LENGTH = 4096
WINDOW = timedelta(hours=24)
CHAT_STATUSES = ("unattended", "attended", "ai-attended", "ai-away")  # as the analytics endpoint names them
TEMPLATE_FIELDS = {
    "variables",
    "meta_data",
    "contactName",
    "email",
    "stageId",
    "toPhoneNumber",
    "agent_id",
    "carouselVariables",
}
PHONE_DIGITS = re.compile(r"[1-9][0-9]{7,14}")
PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
SEND_FIELDS = {"message", "contact_id", "phone", "reply_message_id", "from_phone_number", "type", "pause_assistant"}
# The pattern of SendSessionMessageDto.contact_id in the OpenAPI contract.
CONTACT_ID_PATTERN = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    r"|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$"
)
# WhatsApp Cloud API error 131047, as Vambe passes it on.
REENGAGEMENT_ERROR = (
    "(#131047) Re-engagement message: more than 24 hours have passed since the recipient last replied "
    "to the sender number. Use a template message to reach this customer."
)


def error(status: int, message: str | list[str]):
    """An error in the NestJS shape Vambe uses."""
    reasons = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
    return jsonify({"statusCode": status, "message": message, "error": reasons[status]}), status


def api_key_required(view):
    """Answer 401 unless the caller presents the sandbox's API key, as Vambe does."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if request.headers.get("x-api-key") != current_app.config["VAMBE_API_KEY"]:
            return error(401, "Unauthorized")
        return view(*args, **kwargs)

    return wrapped


@bp.post(f"{API}/whatsapp/message/session")
@takes_json
@csrf.exempt
@api_key_required
def send_session_message():
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return error(400, "The request body must be a JSON object")
    problems = contract_violations(payload)
    if problems:
        return error(400, problems)
    contact = contact_for(payload)
    if contact is None:
        return error(404, "Contact not found")
    channel_problem = sender_problem(payload, contact)
    if channel_problem:
        return error(400, channel_problem)
    if payload.get("reply_message_id") and not is_message_of(payload["reply_message_id"], contact):
        return error(400, "reply_message_id does not match a message of this contact")
    now = utcnow()
    if not window_open(contact, now):
        return error(400, REENGAGEMENT_ERROR)
    message = SandboxMessage(
        id=str(uuid.uuid4()),
        contact=contact,
        direction="OUTBOUND",
        sender="api",
        body=payload["message"],
        status="sent",
        reply_message_id=payload.get("reply_message_id"),
        created_at=now,
    )
    db.session.add(message)
    if payload.get("pause_assistant", True):
        contact.assistant_paused = True
        contact.chat_status = "attended"  # a person took over
    db.session.commit()
    notify("message.sent", message, now)
    # The contract documents no response body for 201, so the twin invents none.
    return "", 201


@bp.post(f"{API}/whatsapp/message/send/<phone>/template/<template_id>")
@takes_json
@csrf.exempt
@api_key_required
def send_template_message(phone: str, template_id: str):
    """SendTemplateDto, as strictly as the session endpoint: a template reaches the customer whatever the window,
    and the customer's answer opens it again. It does not pause the assistant (the call has no such flag)."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return error(400, "The request body must be a JSON object")
    template = SANDBOX_TEMPLATES.get(template_id)
    problems = template_violations(payload, template)
    if not PHONE_DIGITS.fullmatch(phone):
        problems.insert(0, "phone must be the customer's number in international format, digits only")
    if template is None:
        problems.insert(0, f"Template {template_id[:64]} not found for this account")
    from_number = request.args.get("from-phone-number")
    channel = channel_for(from_number) if from_number else first_channel()
    if from_number and channel is None:
        problems.append("from-phone-number is not a WhatsApp number of this account")
    if problems:
        return error(400, problems)
    now = utcnow()
    contact = db.session.scalar(select(SandboxContact).where(SandboxContact.phone == phone))
    if contact is None:  # a template may open a conversation with someone who never wrote
        contact = SandboxContact(id=str(uuid.uuid4()), name=f"+{phone}", phone=phone, channel=channel, created_at=now)
        db.session.add(contact)
    body = PLACEHOLDER.sub(lambda match: payload["variables"][int(match.group(1)) - 1], template.body)
    message = SandboxMessage(
        id=str(uuid.uuid4()),
        contact=contact,
        direction="OUTBOUND",
        sender="api",
        body=body,
        status="sent",
        created_at=now,
    )
    db.session.add(message)
    db.session.commit()
    notify("message.sent", message, now)
    return "", 201


def template_violations(payload: dict[str, Any], template: SandboxTemplate | None) -> list[str]:
    """Every way ``payload`` breaks SendTemplateDto, worded as class-validator would."""
    problems = [f"property {name} should not exist" for name in sorted(set(payload) - TEMPLATE_FIELDS)]
    variables = payload.get("variables")
    if not isinstance(variables, list) or not all(isinstance(value, str) for value in variables):
        problems.append("each value in variables must be a string")
    elif template is not None and len(variables) != len(set(PLACEHOLDER.findall(template.body))):
        problems.append(f"variables must contain {len(set(PLACEHOLDER.findall(template.body)))} elements")
    elif any(not value.strip() or unstorable(value) for value in variables):
        problems.append("each value in variables should not be empty")
    if not isinstance(payload.get("meta_data"), dict):
        problems.append("meta_data must be an object")
    for name in ("contactName", "email", "stageId", "toPhoneNumber"):
        if name in payload and not isinstance(payload[name], str):
            problems.append(f"{name} must be a string")
    if "agent_id" in payload and not (
        isinstance(payload["agent_id"], str) and CONTACT_ID_PATTERN.match(payload["agent_id"])
    ):
        problems.append("agent_id must be a UUID")
    return problems


def channel_for(number: str) -> SandboxChannel | None:
    digits = re.sub(r"\D", "", number)
    return db.session.scalar(select(SandboxChannel).where(SandboxChannel.phone_number == digits))


def contract_violations(payload: dict[str, Any]) -> list[str]:
    """Every way ``payload`` breaks SendSessionMessageDto, worded as class-validator would."""
    problems = [f"property {name} should not exist" for name in sorted(set(payload) - SEND_FIELDS)]
    message = payload.get("message")
    if not isinstance(message, str):
        problems.append("message must be a string")
    elif not message:
        problems.append("message should not be empty")
    elif len(message) > MAX_TEXT_LENGTH:
        problems.append(f"message must be shorter than or equal to {MAX_TEXT_LENGTH} characters")
    if "contact_id" in payload and not (
        isinstance(payload["contact_id"], str) and CONTACT_ID_PATTERN.match(payload["contact_id"])
    ):
        problems.append("contact_id must be a UUID")
    for name in ("phone", "reply_message_id", "from_phone_number"):
        if name in payload and not isinstance(payload[name], str):
            problems.append(f"{name} must be a string")
    if not payload.get("contact_id") and not payload.get("phone"):
        problems.append("contact_id or phone must be provided")
    if "type" in payload and payload["type"] != "text":
        problems.append("type must be one of the following values: text")
    if "pause_assistant" in payload and not isinstance(payload["pause_assistant"], bool):
        problems.append("pause_assistant must be a boolean value")
    # The twin stores what it accepts, and its store (like Handoff's) cannot hold these.
    problems += [
        f"{name} contains a character that cannot be stored"
        for name in sorted(SEND_FIELDS & set(payload))
        if isinstance(payload[name], str) and unstorable(payload[name])
    ]
    return problems


def contact_for(payload: dict[str, Any]) -> SandboxContact | None:
    if payload.get("contact_id"):
        return db.session.get(SandboxContact, payload["contact_id"])
    digits = re.sub(r"\D", "", payload["phone"])
    return db.session.scalar(select(SandboxContact).where(SandboxContact.phone == digits))


def sender_problem(payload: dict[str, Any], contact: SandboxContact) -> str | None:
    """Why the business number to send from cannot be determined, or None."""
    from_number = payload.get("from_phone_number")
    if from_number:
        return None if channel_for(from_number) else "from_phone_number is not a WhatsApp number of this account"
    several = db.session.scalar(select(func.count(SandboxChannel.id))) > 1
    if "contact_id" not in payload and several:
        return "from_phone_number is required when sending by phone from an account with several numbers"
    return None


def is_message_of(message_id: str, contact: SandboxContact) -> bool:
    message = db.session.get(SandboxMessage, message_id)
    return message is not None and message.contact_id == contact.id


def window_open(contact: SandboxContact, now: datetime) -> bool:
    last_inbound = db.session.scalar(
        select(func.max(SandboxMessage.created_at)).where(
            SandboxMessage.contact_id == contact.id, SandboxMessage.direction == "INBOUND"
        )
    )
    if last_inbound is None:
        return False
    if last_inbound.tzinfo is None:  # func.max bypasses the column type on SQLite
        last_inbound = datetime.fromisoformat(str(last_inbound)).replace(tzinfo=now.tzinfo)
    return now - last_inbound < WINDOW


@bp.get(f"{API}/contacts")
@api_key_required
def list_contacts():
    days = request.args.get("days", type=int)
    if days is None or not 1 <= days <= 365:
        return error(400, "days must be an integer between 1 and 365")
    since = utcnow() - timedelta(days=days)
    rows = db.session.execute(
        select(SandboxContact, func.max(SandboxMessage.created_at).label("last"))
        .join(SandboxMessage)
        .group_by(SandboxContact.id)
        .order_by(func.max(SandboxMessage.created_at).desc())
    ).all()
    contacts = [contact_json(contact, as_utc(last)) for contact, last in rows]
    return jsonify([c for c in contacts if c["last_message_at"] >= iso(since)])


@bp.get(f"{API}/contact/<contact_id>/info")
@api_key_required
def contact_info(contact_id: str):
    contact = db.session.get(SandboxContact, contact_id)
    if contact is None:
        return error(404, "Contact not found")
    last = last_message(contact)
    data = contact_json(contact, last.created_at if last else None)
    data["last_message_content"] = last.body if last else None
    return jsonify(data)


@bp.get(f"{API}/contact/v2/<contact_id>/messages")
@api_key_required
def list_messages(contact_id: str):
    contact = db.session.get(SandboxContact, contact_id)
    if contact is None:
        return error(404, "Contact not found")
    page = page_asked()
    if page is None:
        return error(400, f"page must be an integer between 1 and {MAX_HISTORY_PAGE}")
    query = select(SandboxMessage).where(SandboxMessage.contact_id == contact.id)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    messages = db.session.scalars(
        query.order_by(SandboxMessage.created_at, SandboxMessage.id)
        .offset((page - 1) * HISTORY_PAGE_SIZE)
        .limit(HISTORY_PAGE_SIZE)
    ).all()
    return jsonify(
        {
            "messages": [message_json(m) for m in messages],
            "page": page,
            "hasMore": page * HISTORY_PAGE_SIZE < total,
            "total": total,
        }
    )


def page_asked() -> int | None:
    """The ``page`` query parameter (default 1), or None when it is not a page number."""
    raw = request.args.get("page", "1")  # not type=int: it would take "x" for the default
    return int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_HISTORY_PAGE else None


@bp.get(f"{API}/analytics/contacts/by-status")
@api_key_required
def contacts_by_status():
    status, page = request.args.get("status"), page_asked()
    if status not in CHAT_STATUSES:
        return error(400, f"status must be one of the following values: {', '.join(CHAT_STATUSES)}")
    if page is None:
        return error(400, f"page must be an integer between 1 and {MAX_HISTORY_PAGE}")
    last_inbound = (
        select(func.max(SandboxMessage.created_at))
        .where(SandboxMessage.contact_id == SandboxContact.id, SandboxMessage.direction == "INBOUND")
        .scalar_subquery()
    )
    query = select(SandboxContact, last_inbound.label("last_inbound")).where(SandboxContact.chat_status == status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.execute(
        query.order_by(last_inbound, SandboxContact.id).offset((page - 1) * HISTORY_PAGE_SIZE).limit(HISTORY_PAGE_SIZE)
    ).all()
    now = utcnow()
    return jsonify(
        {
            "data": [
                {
                    "id": contact.id,
                    "name": contact.name,
                    "phone": contact.phone,
                    "chat_status": contact.chat_status,
                    "waiting_time": int((now - as_utc(last)).total_seconds()) if last else 0,
                    "assigned_agents": [],
                }
                for contact, last in rows
            ],
            "total": total,
        }
    )


@bp.get(f"{API}/channels/whatsapp")
@api_key_required
def list_channels():
    channels = db.session.scalars(select(SandboxChannel).order_by(SandboxChannel.id)).all()
    return jsonify([channel.as_json() for channel in channels])


def last_message(contact: SandboxContact) -> SandboxMessage | None:
    return db.session.scalar(
        select(SandboxMessage)
        .where(SandboxMessage.contact_id == contact.id)
        .order_by(SandboxMessage.created_at.desc())
        .limit(1)
    )


def contact_json(contact: SandboxContact, last_message_at: datetime | None) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "phone": contact.phone,
        "email": None,
        "platform": "whatsapp",
        "last_message_at": iso(last_message_at) if last_message_at else None,
        # The contacts call knows only whether a person attends the chat (see vambe-api.md section 3).
        "chat_status": "ATTENDED" if contact.chat_status == "attended" else "UNATTENDED",
        "created_at": iso(contact.created_at),
        "is_chat_read": False,
        "blocked": False,
    }


def message_json(message: SandboxMessage) -> dict[str, Any]:
    customer, business = message.contact.phone, message.contact.channel.phone_number
    inbound = message.direction == "INBOUND"
    data = {
        "id": message.id,
        "body": message.body,
        "created_at": iso(message.created_at),
        "direction": message.direction,
        "from": customer if inbound else business,
        "to": business if inbound else customer,
        "type": "text",
        "status": message.status,
        "media_url": None,
        "client_id": SANDBOX_CLIENT_ID,
        "ai_contact_id": message.contact_id,
    }
    if message.failure:  # where Vambe puts WhatsApp's error is undocumented; Handoff reads several names
        data["error"] = message.failure
    return data


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_utc(moment: Any) -> datetime:
    """Aggregates bypass the column type on SQLite and come back as text."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
