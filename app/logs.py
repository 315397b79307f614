"""Logging: one line per event, as text or JSON, with secrets scrubbed from every line."""

import json
import logging
import sys

from flask import Flask, g, has_request_context

REDACTED = "[redacted]"


class RedactingFilter(logging.Filter):
    """Replace any configured secret (API key, webhook secret, session key) in a record with a marker."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [secret for secret in secrets if secret and len(secret) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = message
        for secret in self.secrets:
            scrubbed = scrubbed.replace(secret, REDACTED)
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
