"""Review (lead role): search across every conversation, timelines, exports."""

from flask import Blueprint

bp = Blueprint("review", __name__)

from app.review import views  # noqa: E402,F401
