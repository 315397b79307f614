"""Template helpers: times in the viewer's zone, durations, and what every page needs to know."""

import hashlib
import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime, format_skeleton
from flask import Flask, current_app, has_request_context, request
from flask_babel import format_decimal, format_percent, get_locale
from flask_login import current_user
from markupsafe import Markup, escape

from app.clock import utcnow
from app.domain.templates import PLACEHOLDER, placeholder_count
from app.i18n import gettext, request_translations, translated
from app.i18n import lazy_gettext as _l
from app.models import (
    AuditKind,
    Author,
    ConversationStatus,
    DeliveryState,
    Direction,
    Handoff,
    HandoffReason,
    Message,
    Outcome,
    ReviewReason,
    Role,
)

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
    static/localtime.js reported it), else UTC. Worked out once per request: a page formats hundreds of times."""
    if not has_request_context():
        return ZoneInfo(viewer_zone_name())
    # On the request, not on g: a test's app context can outlive many requests.
    if "handoff.viewer_zone" not in request.environ:
        request.environ["handoff.viewer_zone"] = ZoneInfo(viewer_zone_name())
    return request.environ["handoff.viewer_zone"]


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


# The layouts pages use, written as strftime formats (English keeps them to the letter), and how another language
# says the same: a CLDR date skeleton ("full": its long date), a time skeleton, and whether the zone follows.
# ("03 Dec, 14:02" -> "3 dic, 14:02" or "3 de dez., 14:02".)
LAYOUTS = {
    "%d %b %Y, %H:%M": ("yMMMd", "Hm", False),
    "%d %b, %H:%M": ("MMMd", "Hm", False),
    "%H:%M": (None, "Hm", False),
    "%A %d %B %Y": ("full", None, False),
    "%a %d %b": ("MMMEd", None, False),
    "%d %b %Y": ("yMMMd", None, False),
    "%d %b": ("MMMd", None, False),
    "%d %b %Y, %H:%M %Z": ("yMMMd", "Hm", True),
    "%d %b %Y, %H:%M:%S %Z": ("yMMMd", "Hms", True),
}


def localtime(moment: datetime | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    """``moment`` in the viewer's time zone, laid out for their language."""
    if moment is None:
        return ""
    return local_layout(moment.astimezone(viewer_zone()), fmt)


def localdate(day: date, fmt: str = "%d %b %Y") -> str:
    """A calendar day, laid out for the viewer's language."""
    return local_layout(day, fmt)


def local_layout(moment: date | datetime, fmt: str) -> str:
    locale = get_locale()
    if locale is None or locale.language == "en" or fmt not in LAYOUTS:
        return moment.strftime(fmt)
    date_part, time_part, zone = LAYOUTS[fmt]
    parts = []
    if date_part == "full":
        parts.append(format_date(moment, "full", locale=locale))
    elif date_part:
        parts.append(format_skeleton(date_part, moment, locale=locale))
    if time_part:
        parts.append(format_skeleton(time_part, moment, tzinfo=moment.tzinfo, locale=locale))
    text = ", ".join(parts)
    return f"{text} {format_datetime(moment, 'zzz', tzinfo=moment.tzinfo, locale=locale)}" if zone else text


def duration(span: timedelta | int) -> str:
    """A span (or a number of seconds) as an agent reads it: "2 h 14 m", "14 m", "under a minute"."""
    seconds = span.total_seconds() if isinstance(span, timedelta) else span
    minutes = int(seconds // 60)
    if minutes < 1:
        return gettext("under a minute")
    hours, minutes = divmod(minutes, 60)
    if hours:
        return gettext("%(hours)d h %(minutes)d m", hours=hours, minutes=minutes)
    return gettext("%(minutes)d m", minutes=minutes)


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
    HandoffReason.PHRASE: _l("The customer asked for a person: “%(detail)s”."),
    HandoffReason.VAMBE_STATUS: _l("Vambe marks the contact as waiting for a human (%(detail)s): its AI handed over."),
    HandoffReason.CLOSING_WINDOW: _l(
        "The 24-hour window is closing and nobody has answered the customer's last message."
    ),
}


def handoff_reason(handoff: Handoff) -> str:
    return str(HANDOFF_REASONS[HandoffReason(handoff.reason)]) % {"detail": handoff.detail}


OUTCOME_LABELS = {
    Outcome.RECEIVED: _l("Received"),
    Outcome.SENDING: _l("Sending…"),
    Outcome.SENT: _l("Sent"),
    Outcome.DELIVERED: _l("Delivered"),
    Outcome.READ: _l("Read"),
    Outcome.FAILED: _l("Failed"),
    Outcome.UNKNOWN: _l("Delivery unknown"),
}


def author_label(message: Message) -> str:
    """Who wrote ``message``, in the words an agent uses."""
    if message.author == Author.CUSTOMER:
        return message.conversation.display_name
    if message.author == Author.AGENT:
        return message.author_user.name if message.author_user else gettext("Agent")
    if message.author == Author.ASSISTANT:
        return gettext("AI assistant")
    return gettext("Other tool")


def chart_days(points: list[tuple[date, int]]) -> list[tuple[str, int]]:
    """Day labels for a bar chart, thinned out so that at most 14 are written."""
    step = max(1, -(-len(points) // 14))
    return [(localdate(day, "%d %b") if index % step == 0 else "", value) for index, (day, value) in enumerate(points)]


def filter_args(args) -> dict[str, str]:
    """The inbox's query-string filters without its page cursor, for building the next page's link."""
    return {name: value for name, value in args.items() if name not in ("after", "before")}


AUDIT_LABELS = {
    AuditKind.WINDOW_OVERRIDE: _l("sent outside the 24h window"),
    AuditKind.ASSISTANT_PAUSED: _l("paused the AI assistant"),
    AuditKind.ASSIGNED: _l("assigned the conversation"),
    AuditKind.UNASSIGNED: _l("unassigned the conversation"),
    AuditKind.RESOLVED: _l("marked it resolved"),
    AuditKind.REOPENED: _l("reopened it"),
    AuditKind.NEWER_REPLY_OVERRIDE: _l("sent despite a newer reply"),
    AuditKind.LOGIN: _l("signed in"),
    AuditKind.LOGIN_FAILED: _l("failed sign-in"),
    AuditKind.USER_CREATED: _l("created a user"),
    AuditKind.USER_DEACTIVATED: _l("deactivated a user"),
    AuditKind.USER_REACTIVATED: _l("reactivated a user"),
    AuditKind.ROLE_CHANGED: _l("changed a role"),
    AuditKind.PASSWORD_RESET: _l("reset a password"),
    AuditKind.WEBHOOKS_REPLAYED: _l("replayed a webhook delivery"),
    AuditKind.NUMBERS_REFRESHED: _l("refreshed the business numbers"),
    AuditKind.HANDOFF_REQUESTED: _l("put it in the queue for a human"),
    AuditKind.HANDOFF_TAKEN: _l("took it from the queue"),
    AuditKind.HANDOFF_PHRASE_ADDED: _l("added a handoff phrase"),
    AuditKind.HANDOFF_PHRASE_REMOVED: _l("removed a handoff phrase"),
    AuditKind.TEMPLATE_SAVED: _l("saved a template"),
    AuditKind.TEMPLATES_IMPORTED: _l("imported templates"),
    AuditKind.AI_AFTER_TAKEOVER: _l("saw the AI (or another tool) write after the takeover: an incident"),
    AuditKind.RESUMED_ON_PURPOSE: _l("marked the AI's return as intended"),
    AuditKind.RECONCILED: _l("reconciled with Vambe's history"),
    AuditKind.REVIEW_RULE_CHANGED: _l("changed a review rule"),
    AuditKind.REVIEWED: _l("reviewed the conversation"),
    AuditKind.PASSWORD_CHANGED: _l("changed their password"),
    AuditKind.PREFERENCES_CHANGED: _l("changed their language or time zone"),
}
REVIEW_REASON_LABELS = {
    ReviewReason.WINDOW_CLOSED_UNANSWERED: _l("Window closed before a person replied"),
    ReviewReason.OVERRIDE: _l("Sent outside the window (override)"),
    ReviewReason.FAILED_SEND: _l("A send failed or its delivery is unknown"),
    ReviewReason.INCIDENT: _l("The AI wrote after the takeover"),
    ReviewReason.LONG_WAIT: _l("Long wait in the handoff queue"),
    ReviewReason.RANDOM: _l("Random share of resolved conversations"),
}


DELIVERY_STATES = {
    DeliveryState.PENDING: _l("pending"),
    DeliveryState.PROCESSED: _l("processed"),
    DeliveryState.FAILED: _l("failed"),
}
TURN_LABELS = {
    Author.CUSTOMER: _l("Customer"),
    Author.ASSISTANT: _l("AI"),
    Author.AGENT: _l("Person"),
    Author.OTHER_TOOL: _l("Other tool"),
}
STATUS_LABELS = {ConversationStatus.OPEN: _l("Open"), ConversationStatus.RESOLVED: _l("Resolved")}
DIRECTION_LABELS = {Direction.INBOUND: _l("inbound"), Direction.OUTBOUND: _l("outbound")}
WHATSAPP_STATUSES = {"sent": _l("sent"), "delivered": _l("delivered"), "read": _l("read"), "failed": _l("failed")}
ROLE_LABELS = {Role.AGENT: _l("agent"), Role.LEAD: _l("lead"), Role.ADMIN: _l("admin")}


def console_words() -> dict[str, str]:
    """What static/console.js says or announces, in the viewer's language ("%s": a number or a name)."""
    return {
        "sending": gettext("Sending…"),
        "waiting": gettext("%s waiting for a human"),
        "closing": gettext("%s closing soon"),
        "failed": gettext("%s of your messages failed after sending"),
        "new_message": gettext("New message from %s."),
        "the_customer": gettext("the customer"),
        "a_customer": gettext("a customer"),
        "unread": gettext("(unread)"),
    }


def register(app: Flask) -> None:
    app.jinja_env.policies["ext.i18n.trimmed"] = True  # a {% trans %} block's message is its words, not its layout
    app.jinja_env.install_gettext_callables(
        lambda message: request_translations().ugettext(message),
        lambda singular, plural, count: request_translations().ungettext(singular, plural, count),
        newstyle=True,
    )
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.filters["localdate"] = localdate
    app.jinja_env.filters["translated"] = translated
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
    app.jinja_env.globals["ROLE_LABELS"] = ROLE_LABELS
    app.jinja_env.globals["DELIVERY_STATES"] = DELIVERY_STATES
    app.jinja_env.globals["STATUS_LABELS"] = STATUS_LABELS
    app.jinja_env.globals["DIRECTION_LABELS"] = DIRECTION_LABELS
    app.jinja_env.globals["TURN_LABELS"] = TURN_LABELS
    app.jinja_env.globals["WHATSAPP_STATUSES"] = WHATSAPP_STATUSES
    app.jinja_env.filters["number"] = format_decimal
    app.jinja_env.filters["score"] = lambda average: format_decimal(average, "0.0")
    app.jinja_env.filters["percent"] = lambda share: format_percent(share, "#,##0.0%")
    app.jinja_env.globals["filter_args"] = filter_args
    app.jinja_env.globals["chart_days"] = chart_days

    @app.context_processor
    def installation():
        return {
            "page_language": str(get_locale() or "en").replace("_", "-"),
            "console_words": console_words(),
            "sandbox_mode": current_app.config["SANDBOX_MODE"],
            "viewer_zone_name": viewer_zone().key,
            "utc": UTC,
        }
