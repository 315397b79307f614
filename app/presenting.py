"""Template helpers: times in the viewer's zone, durations, and what every page needs to know."""

import hashlib
import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app, has_request_context, request
from flask_login import current_user
from markupsafe import Markup, escape

from app.clock import utcnow
from app.domain.templates import PLACEHOLDER, placeholder_count
from app.models import AuditKind, Author, Handoff, HandoffReason, Message, Outcome, ReviewReason

TIME_ZONE_COOKIE = "tz"


def live_version(state: tuple) -> str:
    """A short digest of what a live fragment shows, as the viewer sees it (their time zone) with this release's
    templates: the poll sends it back, and an unchanged one is answered 204 without rendering anything."""
    seen = (state, viewer_zone_name(), viewer_locale(), templates_digest())
    return hashlib.sha256(repr(seen).encode()).hexdigest()[:20]


@cache
def templates_digest() -> str:
    """The templates' content: a new release re-renders what an old one had sent."""
    folder = Path(current_app.root_path, current_app.template_folder)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.html")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def viewer_zone() -> ZoneInfo:
    """The viewer's time zone: their own choice, else the installation's default, else the browser's (as
    static/localtime.js reported it), else UTC."""
    return ZoneInfo(viewer_zone_name())


def viewer_zone_name() -> str:
    if not has_request_context():
        return current_app.config["DEFAULT_TIMEZONE"] or "UTC"
    chosen = current_user.time_zone if current_user.is_authenticated else None
    # localtime.js percent-encodes the zone ("America%2FSantiago").
    for name in (chosen, current_app.config["DEFAULT_TIMEZONE"], unquote(request.cookies.get(TIME_ZONE_COOKIE, ""))):
        if name and known_zone(name):
            return name
    return "UTC"


def known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# Languages the console speaks, as Accept-Language names them, and the catalog each one uses.
SPOKEN = {"en": "en", "es": "es", "pt-BR": "pt_BR", "pt": "pt_BR"}
LANGUAGE_NAMES = {"en": "English", "es": "Español", "pt_BR": "Português (Brasil)"}


def viewer_locale() -> str:
    """The viewer's language: their own choice, else the best the browser asks for, else the installation's
    (also outside a request: a command's output)."""
    if not has_request_context():
        return current_app.config["DEFAULT_LOCALE"]
    if current_user.is_authenticated and current_user.locale in LANGUAGE_NAMES:
        return current_user.locale
    asked = request.accept_languages.best_match(list(SPOKEN))
    return SPOKEN[asked] if asked else current_app.config["DEFAULT_LOCALE"]


def start_of_local_day(day: date, next_day: bool = False) -> datetime:
    """Midnight of ``day`` in the viewer's time zone (of the day after, for an inclusive end date)."""
    return datetime.combine(day + timedelta(days=1) if next_day else day, time.min, tzinfo=viewer_zone())


def parse_day(value: str | None) -> date | None:
    """A YYYY-MM-DD date from a query string, or None."""
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        return None


def localtime(moment: datetime | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    """``moment`` formatted in the viewer's time zone."""
    if moment is None:
        return ""
    return moment.astimezone(viewer_zone()).strftime(fmt)


def duration(span: timedelta | int) -> str:
    """A span (or a number of seconds) as an agent reads it: "2 h 14 m", "14 m", "under a minute"."""
    seconds = span.total_seconds() if isinstance(span, timedelta) else span
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} m" if hours else f"{minutes} m"


def template_preview(body: str) -> Markup:
    """A template's body with each placeholder as a slot the agent's values fill in (console.js)."""
    parts, last = [], 0
    for match in PLACEHOLDER.finditer(body):
        number = match.group(1)
        parts += [
            escape(body[last : match.start()]),
            Markup('<mark data-slot="{}">{{{{{}}}}}</mark>').format(number, number),
        ]
        last = match.end()
    return Markup("").join([*parts, escape(body[last:])])


QUICK_REPLY_PLACEHOLDER = re.compile(r"\{\{\s*(contact_first_name|contact_name|agent_first_name|agent_name)\s*\}\}")


def filled_quick_reply(body: str, conversation, agent) -> str:
    """A quick reply with the contact's and the agent's names where it says {{contact_first_name}},
    {{contact_name}}, {{agent_first_name}} or {{agent_name}} (an unknown name leaves nothing behind)."""
    contact = conversation.name if conversation.name and not conversation.name.startswith("+") else ""
    names = {
        "contact_name": contact,
        "contact_first_name": contact.split()[0] if contact else "",
        "agent_name": agent.name,
        "agent_first_name": agent.name.split()[0] if agent.name else "",
    }
    return QUICK_REPLY_PLACEHOLDER.sub(lambda match: names[match.group(1)], body)


def waited_since(moment: datetime) -> str:
    """How long ago ``moment`` was, as duration() reads it: a queue's waiting time."""
    return duration(utcnow() - moment)


HANDOFF_REASONS = {
    HandoffReason.PHRASE: "The customer asked for a person: “{detail}”.",
    HandoffReason.VAMBE_STATUS: "Vambe marks the contact as waiting for a human ({detail}): its AI handed over.",
    HandoffReason.CLOSING_WINDOW: "The 24-hour window is closing and nobody has answered the customer's last message.",
}


def handoff_reason(handoff: Handoff) -> str:
    return HANDOFF_REASONS[HandoffReason(handoff.reason)].format(detail=handoff.detail)


OUTCOME_LABELS = {
    Outcome.RECEIVED: "Received",
    Outcome.SENDING: "Sending…",
    Outcome.SENT: "Sent",
    Outcome.DELIVERED: "Delivered",
    Outcome.READ: "Read",
    Outcome.FAILED: "Failed",
    Outcome.UNKNOWN: "Delivery unknown",
}


def author_label(message: Message) -> str:
    """Who wrote ``message``, in the words an agent uses."""
    if message.author == Author.CUSTOMER:
        return message.conversation.display_name
    if message.author == Author.AGENT:
        return message.author_user.name if message.author_user else "Agent"
    if message.author == Author.ASSISTANT:
        return "AI assistant"
    return "Other tool"


def chart_days(points: list[tuple[date, int]]) -> list[tuple[str, int]]:
    """Day labels for a bar chart, thinned out so that at most 14 are written."""
    step = max(1, -(-len(points) // 14))
    return [(day.strftime("%d %b") if index % step == 0 else "", value) for index, (day, value) in enumerate(points)]


def filter_args(args) -> dict[str, str]:
    """The inbox's query-string filters without its page cursor, for building the next page's link."""
    return {name: value for name, value in args.items() if name not in ("after", "before")}


AUDIT_LABELS = {
    AuditKind.WINDOW_OVERRIDE: "sent outside the 24h window",
    AuditKind.ASSISTANT_PAUSED: "paused the AI assistant",
    AuditKind.ASSIGNED: "assigned the conversation",
    AuditKind.UNASSIGNED: "unassigned the conversation",
    AuditKind.RESOLVED: "marked it resolved",
    AuditKind.REOPENED: "reopened it",
    AuditKind.NEWER_REPLY_OVERRIDE: "sent despite a newer reply",
    AuditKind.LOGIN: "signed in",
    AuditKind.LOGIN_FAILED: "failed sign-in",
    AuditKind.USER_CREATED: "created a user",
    AuditKind.USER_DEACTIVATED: "deactivated a user",
    AuditKind.USER_REACTIVATED: "reactivated a user",
    AuditKind.ROLE_CHANGED: "changed a role",
    AuditKind.PASSWORD_RESET: "reset a password",
    AuditKind.WEBHOOKS_REPLAYED: "replayed a webhook delivery",
    AuditKind.NUMBERS_REFRESHED: "refreshed the business numbers",
    AuditKind.HANDOFF_REQUESTED: "put it in the queue for a human",
    AuditKind.HANDOFF_TAKEN: "took it from the queue",
    AuditKind.HANDOFF_PHRASE_ADDED: "added a handoff phrase",
    AuditKind.HANDOFF_PHRASE_REMOVED: "removed a handoff phrase",
    AuditKind.TEMPLATE_SAVED: "saved a template",
    AuditKind.TEMPLATES_IMPORTED: "imported templates",
    AuditKind.AI_AFTER_TAKEOVER: "saw the AI (or another tool) write after the takeover: an incident",
    AuditKind.RESUMED_ON_PURPOSE: "marked the AI's return as intended",
    AuditKind.RECONCILED: "reconciled with Vambe's history",
    AuditKind.REVIEW_RULE_CHANGED: "changed a review rule",
    AuditKind.REVIEWED: "reviewed the conversation",
}
REVIEW_REASON_LABELS = {
    ReviewReason.WINDOW_CLOSED_UNANSWERED: "Window closed before a person replied",
    ReviewReason.OVERRIDE: "Sent outside the window (override)",
    ReviewReason.FAILED_SEND: "A send failed or its delivery is unknown",
    ReviewReason.INCIDENT: "The AI wrote after the takeover",
    ReviewReason.LONG_WAIT: "Long wait in the handoff queue",
    ReviewReason.RANDOM: "Random share of resolved conversations",
}


def register(app: Flask) -> None:
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.filters["author_label"] = author_label
    app.jinja_env.filters["waited_since"] = waited_since
    app.jinja_env.filters["template_preview"] = template_preview
    app.jinja_env.filters["filled_quick_reply"] = filled_quick_reply
    app.jinja_env.filters["placeholder_count"] = placeholder_count
    app.jinja_env.filters["handoff_reason"] = handoff_reason
    app.jinja_env.globals["OUTCOME_LABELS"] = OUTCOME_LABELS
    app.jinja_env.globals["AUDIT_LABELS"] = AUDIT_LABELS
    app.jinja_env.globals["REVIEW_REASON_LABELS"] = REVIEW_REASON_LABELS
    app.jinja_env.globals["filter_args"] = filter_args
    app.jinja_env.globals["chart_days"] = chart_days

    @app.context_processor
    def installation():
        return {
            "sandbox_mode": current_app.config["SANDBOX_MODE"],
            "viewer_zone_name": viewer_zone().key,
            "utc": UTC,
        }
