"""Administration (admin role): users, settings and the Vambe connection, the audit log."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.admin import views  # noqa: E402,F401
