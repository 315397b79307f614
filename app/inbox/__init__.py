from flask import Blueprint

bp = Blueprint("inbox", __name__)

from app.inbox import quick_replies, views  # noqa: E402,F401
