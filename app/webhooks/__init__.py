"""Webhook deliveries from Vambe: authenticated by signature or URL token, never by session or CSRF."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__)

from app.webhooks import views  # noqa: E402,F401
