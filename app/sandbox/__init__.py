"""The sandbox: a local twin of the Vambe API, registered only when no Vambe API key is set."""

from flask import Blueprint

bp = Blueprint("sandbox", __name__)

from app.sandbox import api, views  # noqa: E402,F401  (register the routes on bp)
