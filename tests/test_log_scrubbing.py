"""Secrets never reach a log line, however a URL spells them."""

import runpy
from pathlib import Path

import pytest

from app.logs import REDACTED, Scrubber

SECRET = "whsec-9b1F3c55e0a24d8e-Test"
API_KEY = "sk-live-4a7d1e9c/key+with=odd"
scrub = Scrubber([SECRET, API_KEY, ""])


@pytest.mark.parametrize(
    "line",
    [
        f'"POST /webhooks/vambe/{SECRET} HTTP/1.1" 200',
        f'"POST //webhooks//vambe/{SECRET} HTTP/1.1" 200',
        f'"POST /WEBHOOKS/Vambe/{SECRET.upper()} HTTP/1.1" 200',
        f'"POST /webhooks/vambe/{SECRET.lower()}?x=1 HTTP/1.1" 401',
        f'"GET /anything?token={SECRET} HTTP/1.1" 404',
        f'"GET /anything?token={SECRET.swapcase()} HTTP/1.1" 404',
        '"GET /x?key=sk-live-4a7d1e9c%2Fkey%2Bwith%3Dodd HTTP/1.1" 404',
        f"vambe said {API_KEY.upper()} was wrong",
    ],
)
def test_a_secret_or_a_webhook_token_is_redacted_in_any_spelling(line):
    scrubbed = scrub(line)
    assert REDACTED in scrubbed
    assert SECRET.lower() not in scrubbed.lower()
    assert "4a7d1e9c" not in scrubbed


def test_ordinary_lines_are_left_alone():
    line = '"GET /conversations/12/live?v=abc HTTP/1.1" 204'
    assert scrub(line) == line


def test_the_gunicorn_access_log_uses_the_same_scrubber(monkeypatch):
    monkeypatch.setenv("VAMBE_WEBHOOK_SECRET", SECRET)
    settings = runpy.run_path(str(Path(__file__).parent.parent / "gunicorn.conf.py"))
    assert settings["SCRUB"](f"/Webhooks//vambe/{SECRET.upper()}") == f"/Webhooks//vambe/{REDACTED}"
    assert settings["SCRUB"](f"/healthz?t={SECRET}") == f"/healthz?t={REDACTED}"
