"""The Vambe HTTP API: the only module that speaks HTTP to Vambe (or to its sandbox twin)."""

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from app.i18n import N_

log = logging.getLogger(__name__)

SEND_SESSION_MESSAGE_PATH = "/api/public/whatsapp/message/session"
MAX_DETAIL_LENGTH = 300


@dataclass(frozen=True)
class SessionMessage:
    """The body of ``POST /api/public/whatsapp/message/session``, exactly as the contract defines it."""

    message: str
    pause_assistant: bool
    contact_id: str | None = None
    phone: str | None = None
    reply_message_id: str | None = None
    from_phone_number: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """The JSON body: ``contact_id`` when known, else ``phone``; optional fields only when set."""
        if not self.contact_id and not self.phone:
            raise ValueError("a session message needs a contact_id or a phone")
        payload: dict[str, Any] = {"message": self.message}
        if self.contact_id:
            payload["contact_id"] = self.contact_id
        else:
            payload["phone"] = self.phone
        if self.reply_message_id:
            payload["reply_message_id"] = self.reply_message_id
        if self.from_phone_number:
            payload["from_phone_number"] = self.from_phone_number
        payload["type"] = "text"
        payload["pause_assistant"] = bool(self.pause_assistant)
        return payload


@dataclass(frozen=True)
class Accepted:
    """Vambe accepted the message for delivery (201); not yet delivered."""

    provider_message_id: str | None


@dataclass(frozen=True)
class Channel:
    vambe_channel_id: str | None
    phone_number: str
    name: str


@dataclass(frozen=True)
class HistoryMessage:
    id: str
    body: str
    created_at: datetime
    direction: str
    status: str | None
    type: str
    error: str | None = None  # why WhatsApp failed it, when Vambe says (undocumented: read tolerantly)


@dataclass(frozen=True)
class HistoryPage:
    messages: list[HistoryMessage]
    page: int
    has_more: bool
    unreadable: int = 0  # items without a usable id or time, left out


@dataclass(frozen=True)
class WaitingContact:
    """A contact from the analytics by-status call."""

    id: str
    name: str
    chat_status: str
    waiting_seconds: int | None  # since the customer's last message, when Vambe said


@dataclass(frozen=True)
class StatusPage:
    contacts: list[WaitingContact]
    total: int | None
    unreadable: int = 0  # items without a contact id, left out


class VambeError(Exception):
    """Vambe did not accept a request. ``agent_message`` is safe to show to an agent."""

    # True when the request may have reached Vambe and been acted on.
    delivery_unknown = False

    def __init__(self, agent_message: str, status: int | None = None):
        super().__init__(agent_message)
        self.agent_message = agent_message
        self.status = status


class VambeRejected(VambeError):
    """400: Vambe (or WhatsApp behind it) refused the request."""


class VambeUnauthorized(VambeError):
    """401/403: the API key is wrong or revoked."""


class VambeNotFound(VambeError):
    """404: no such contact."""


class VambeRateLimited(VambeError):
    """429: too many requests; ``retry_after`` seconds when Vambe said."""

    def __init__(self, agent_message: str, status: int, retry_after: float | None):
        super().__init__(agent_message, status)
        self.retry_after = retry_after


class VambeServerError(VambeError):
    """5xx or another status the contract does not list."""


class VambeUnreachable(VambeError):
    """No connection could be made: the request never left."""


class VambeNoAnswer(VambeError):
    """The request was written but no answer that settles it came back: it may have been acted on."""

    delivery_unknown = True


class VambeClient:
    """A client for the Vambe public API over one ``requests.Session``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: tuple[float, float] = (3.05, 10.0),
        total_timeout: float = 15.0,
        session: requests.Session | None = None,
        on_answer: Callable[[bool], None] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        # Told after every call whether Vambe failed it (its error rate on the health panel).
        self.on_answer = on_answer
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.session = session or requests.Session()
        self.session.headers["x-api-key"] = api_key
        self.session.headers["Accept"] = "application/json"

    def __repr__(self) -> str:
        return f"VambeClient(base_url={self.base_url!r}, api_key=<redacted>)"

    def send_session_message(self, message: SessionMessage) -> Accepted:
        """Send a free-form WhatsApp message; raise a VambeError subclass unless Vambe answers 201."""
        response = self._request("POST", SEND_SESSION_MESSAGE_PATH, json=message.to_payload())
        if response.status_code != 201:
            raise error_for(response)
        return Accepted(provider_message_id=message_id_from(json_or_none(response)))

    def send_template(
        self, phone: str, template_id: str, variables: list[str], from_phone_number: str | None
    ) -> Accepted:
        """Send an approved template (it reaches the customer whatever the window); raise a VambeError subclass
        unless Vambe answers 201. ``meta_data`` is always sent: the reference marks it required."""
        params = {"from-phone-number": from_phone_number} if from_phone_number else None
        path = f"/api/public/whatsapp/message/send/{quote(phone, safe='')}/template/{quote(template_id, safe='')}"
        response = self._request("POST", path, params=params, json={"variables": variables, "meta_data": {}})
        if response.status_code != 201:
            raise error_for(response)
        return Accepted(provider_message_id=message_id_from(json_or_none(response)))

    def list_whatsapp_channels(self) -> list[Channel]:
        """The account's WhatsApp business numbers (Vambe answers with one object or a list)."""
        data = self._get_json("/api/public/channels/whatsapp")
        items = data if isinstance(data, list) else [data]
        return [
            Channel(
                vambe_channel_id=str(item["id"]) if item.get("id") is not None else None,
                phone_number=str(item["phone_number"]),
                name=str(item.get("name") or ""),
            )
            for item in items
            if isinstance(item, dict) and item.get("phone_number")
        ]

    def list_contacts(self, days: int) -> list[dict[str, Any]]:
        """Contacts whose last message (either direction) is within ``days`` days, newest first."""
        data = self._get_json("/api/public/contacts", params={"days": days})
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        """One contact, with the same fields as list_contacts plus last_message_content."""
        data = self._get_json(f"/api/public/contact/{contact_id}/info")
        if not isinstance(data, dict):
            raise VambeServerError(N_("Vambe answered with a contact that is not an object."), 200)
        return data

    def list_messages(self, contact_id: str, page: int) -> HistoryPage:
        """One page (from 1) of a contact's message history, in chronological order."""
        data = self._get_json(f"/api/public/contact/v2/{contact_id}/messages", params={"page": page})
        items = data.get("messages") if isinstance(data, dict) else None
        items = items if isinstance(items, list) else []
        parsed = [history_message(item) if isinstance(item, dict) else None for item in items]
        messages = [message for message in parsed if message is not None]
        has_more = bool(data.get("hasMore", bool(parsed))) if isinstance(data, dict) else False
        return HistoryPage(messages=messages, page=page, has_more=has_more, unreadable=len(parsed) - len(messages))

    def contacts_by_status(self, status: str, page: int) -> StatusPage:
        """One page (from 1) of the contacts Vambe's analytics list under ``status`` ("unattended", "ai-away", ...).
        An answer without a ``data`` list is refused: treating it as "nobody waits" would hide customers."""
        data = self._get_json("/api/public/analytics/contacts/by-status", params={"page": page, "status": status})
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise VambeServerError(
                N_("Vambe answered the by-status call without a list of contacts (no data array)."), 200
            )
        parsed = [waiting_contact(item, status) if isinstance(item, dict) else None for item in items]
        contacts = [contact for contact in parsed if contact is not None]
        total = data.get("total")
        total = total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None
        return StatusPage(contacts=contacts, total=total, unreadable=len(parsed) - len(contacts))

    def _get_json(self, path: str, params: dict | None = None) -> Any:
        response = self._request("GET", path, params=params)
        if response.status_code != 200:
            raise error_for(response)
        data = json_or_none(response)
        if data is None:
            raise VambeServerError(N_("Vambe answered with something that is not JSON."), response.status_code)
        return data

    def _call_within_deadline(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The response, body read, within ``total_timeout``; raise CallOverran past it. The connect and read
        timeouts bound each wait, not the whole: a server that trickles its answer a byte at a time would hold
        the worker for as long as it liked. The call runs on a helper thread, left behind if it overruns (it
        ends at the next read timeout or when the server stops)."""
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                # A redirect would carry the API key to another host (requests keeps custom headers) and turn a
                # POST into a GET that "succeeds" without sending anything.
                response = self.session.request(
                    method, self.base_url + path, timeout=self.timeout, allow_redirects=False, **kwargs
                )
                outcome["response"] = response
            except Exception as error:  # handed to the caller's thread, which maps it
                outcome["error"] = error

        worker = threading.Thread(target=call, name="vambe-call", daemon=True)
        worker.start()
        worker.join(self.total_timeout)
        if worker.is_alive():
            raise CallOverran()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["response"]

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        failed_on_vambe_side = True
        try:
            response = self._answer(method, path, **kwargs)
            failed_on_vambe_side = response.status_code in VAMBE_SIDE_FAILURES or response.status_code >= 500
            return response
        finally:
            if self.on_answer is not None:
                self.on_answer(failed_on_vambe_side)

    def _answer(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        started = time.monotonic()
        try:
            response = self._call_within_deadline(method, path, **kwargs)
        except CallOverran:
            raise VambeNoAnswer(
                N_(
                    "Vambe did not finish answering within %(seconds)s seconds. The message may or may not have "
                    "been delivered: check the conversation before sending it again."
                )
                % {"seconds": f"{self.total_timeout:g}"}
            ) from None
        except requests.ConnectTimeout:
            raise VambeUnreachable(
                N_("Handoff could not connect to Vambe in time; nothing was sent. Try again in a moment.")
            ) from None
        except requests.Timeout:
            raise VambeNoAnswer(
                N_(
                    "Vambe did not answer within %(seconds)s seconds. The message may or may not have been "
                    "delivered: check the conversation before sending it again."
                )
                % {"seconds": f"{self.timeout[1]:g}"}
            ) from None
        except requests.ConnectionError as error:
            if never_connected(error):
                raise VambeUnreachable(N_("Handoff could not reach Vambe; nothing was sent. Try again.")) from None
            raise VambeNoAnswer(
                N_(
                    "The connection to Vambe dropped before it answered. The message may or may not have been "
                    "delivered: check the conversation before sending it again."
                )
            ) from None
        log.info(
            "vambe %s %s -> %s in %.0f ms",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response


# Answers that say Vambe (or Handoff's key for it) is not working, as opposed to a refused message: with no
# answer at all, they make the error rate.
VAMBE_SIDE_FAILURES = {401, 403, 429}


class CallOverran(Exception):
    """The call to Vambe was still going at its total deadline."""


def error_for(response: requests.Response) -> VambeError:
    """The VambeError that an unsuccessful ``response`` stands for."""
    status = response.status_code
    if status == 400:
        detail = detail_from(response)
        refused = N_("Vambe refused the message: %(detail)s") % {"detail": detail} if detail else None
        return VambeRejected(refused or N_("Vambe refused the message."), 400)
    if status in (401, 403):
        return VambeUnauthorized(
            N_("Vambe rejected Handoff's API key, so nothing can be sent. Please alert an administrator."), status
        )
    if status == 404:
        return VambeNotFound(N_("Vambe has no contact with this phone number or contact id."), 404)
    if status == 429:
        retry_after = retry_after_seconds(response)
        return VambeRateLimited(
            N_("Vambe is limiting how fast Handoff may send; nothing was sent. Wait a minute and send again."),
            429,
            retry_after,
        )
    if status >= 500 or 200 <= status < 300:
        # Vambe failed while handling the request, a gateway gave up waiting for it, or it answered in a way its
        # contract does not define: either way it may have acted on the request.
        return VambeNoAnswer(
            N_(
                "Vambe's answer (HTTP %(status)s) does not say whether it acted. The message may or may not have "
                "been delivered: check the conversation before sending it again."
            )
            % {"status": status},
            status,
        )
    if 300 <= status < 400:
        return VambeServerError(
            N_(
                "Vambe's address answered with a redirect (HTTP %(status)s), so nothing was sent. Please alert an "
                "administrator: VAMBE_API_BASE_URL may be wrong."
            )
            % {"status": status},
            status,
        )
    return VambeServerError(
        N_("Vambe answered with an error (HTTP %(status)s) and did not accept the message. Try again shortly.")
        % {"status": status},
        status,
    )


def detail_from(response: requests.Response) -> str:
    """Vambe's own explanation from an error body (NestJS shape when it is one), shortened."""
    data = json_or_none(response)
    detail: Any = None
    if isinstance(data, dict):
        detail = data.get("message") or data.get("error")
    if isinstance(detail, list):
        detail = "; ".join(str(part) for part in detail)
    if detail is None and data is None:
        detail = response.text
    text = " ".join(str(detail or "").split())
    return text[:MAX_DETAIL_LENGTH]


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def message_id_from(data: Any) -> str | None:
    """A message id from a 201 body, if Vambe sent one (the body is not documented)."""
    if not isinstance(data, dict):
        return None
    return next(
        (key for key in map(message_id_key, (data.get(k) for k in ("message_id", "messageId", "id"))) if key), None
    )


MESSAGE_ID_MAX_LENGTH = 128
UUID_SHAPE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def message_id_key(raw: Any) -> str | None:
    """A message id as Handoff stores and matches it, whichever of Vambe's answers carried it: text (a number
    becomes its digits), trimmed, a UUID in lower case; None when there is none, or it is not an id of Vambe's
    (too long, not printable ASCII)."""
    if raw is None or isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    key = str(raw).strip()
    if not key or len(key) > MESSAGE_ID_MAX_LENGTH or not (key.isascii() and key.isprintable()):
        return None
    return key.lower() if UUID_SHAPE.fullmatch(key) else key


def retry_after_seconds(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def never_connected(error: requests.ConnectionError) -> bool:
    """Whether the failure happened before any byte of the request was written."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError | NameResolutionError | ConnectTimeoutError)


def history_message(item: dict[str, Any]) -> HistoryMessage | None:
    """The item as a message, or None when it has no usable id or time: one bad item must not end a sync."""
    message_id, created_at = message_id_key(item.get("id")), aware_time(item.get("created_at"))
    if message_id is None or created_at is None:
        return None
    return HistoryMessage(
        id=message_id,
        body=text_or_empty(item.get("body")),
        created_at=created_at,
        direction=text_or_empty(item.get("direction")).upper(),
        status=item.get("status") if isinstance(item.get("status"), str) else None,
        type=text_or_empty(item.get("type")) or "text",
        error=failure_reason(item),
    )


MAX_FAILURE_REASON = 300
FAILURE_FIELDS = ("error", "error_message", "errorMessage", "failure_reason", "failed_reason", "errors")


def failure_reason(item: dict[str, Any]) -> str | None:
    """Why WhatsApp failed the message, under whichever name Vambe puts it (its history documents none): a text,
    or an object or list of objects with a message, title or code."""
    for name in FAILURE_FIELDS:
        value = item.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, dict):
            code = value.get("code")
            words = next((value[k] for k in ("message", "title", "details") if isinstance(value.get(k), str)), "")
            value = f"({code}) {words}".strip() if isinstance(code, int | str) and code != "" else words
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:MAX_FAILURE_REASON]
    return None


CONTACT_ID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
MAX_WAITING_SECONDS = 400 * 24 * 3600  # beyond any window Handoff reasons about; a larger one is noise


def waiting_contact(item: dict[str, Any], status: str) -> WaitingContact | None:
    """The item as a contact, or None when it has no contact id (a UUID)."""
    contact_id = item.get("id")
    if not isinstance(contact_id, str) or not CONTACT_ID.fullmatch(contact_id.strip()):
        return None
    waiting = item.get("waiting_time")
    usable = isinstance(waiting, int | float) and not isinstance(waiting, bool) and 0 <= waiting <= MAX_WAITING_SECONDS
    return WaitingContact(
        id=contact_id.strip(),
        name=text_or_empty(item.get("name"))[:200],
        chat_status=text_or_empty(item.get("chat_status")) or status,
        waiting_seconds=int(waiting) if usable else None,
    )


def aware_time(raw: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive ones are UTC), or None when it is not one."""
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def text_or_empty(raw: Any) -> str:
    return raw if isinstance(raw, str) else ""
