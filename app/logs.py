"""Logging: one line per event, as text or JSON, with secrets scrubbed from every line."""

import json
import logging
import re
import sys
from urllib.parse import quote

from flask import Flask, g, has_request_context

REDACTED = "[redacted]"


# The webhook token in a URL, however the path is written: /webhooks//vambe/<token>, /WEBHOOKS/Vambe/<token>, ...
WEBHOOK_TOKEN_IN_PATH = re.compile(r"(/+webhooks/+vambe/+)[^/?#\s\"]+", re.IGNORECASE)


class Scrubber:
    """Removes secrets from a line of text: each configured one in any letter case or percent-encoded, and any
    webhook token in a URL path (which may be a wrong guess at the secret, or the secret mistyped)."""

    def __init__(self, secrets: list[str]):
        variants = {
            form for secret in secrets if secret and len(secret) >= 6 for form in (secret, quote(secret, safe=""))
        }
        self.pattern = (
            re.compile("|".join(re.escape(v) for v in sorted(variants, key=len, reverse=True)), re.IGNORECASE)
            if variants
            else None
        )

    def __call__(self, text: str) -> str:
        if self.pattern is not None:
            text = self.pattern.sub(REDACTED, text)
        return WEBHOOK_TOKEN_IN_PATH.sub(rf"\1{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Scrub every record that reaches the handler (see Scrubber)."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.scrub = Scrubber(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id") if has_request_context() else None
        return True


def configure_logging(app: Flask) -> None:
    """Send log records to stderr through one handler that formats and scrubs them."""
    handler = next((h for h in logging.getLogger().handlers if getattr(h, "handoff", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.handoff = True
        logging.getLogger().addHandler(handler)
    if app.config["LOG_FORMAT"] == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.filters = [
        RequestIdFilter(),
        RedactingFilter([app.config["VAMBE_API_KEY"], app.config["VAMBE_WEBHOOK_SECRET"], app.config["SECRET_KEY"]]),
    ]
    logging.getLogger("app").setLevel(logging.INFO)
