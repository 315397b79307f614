"""Liveness and readiness probes for load balancers and orchestrators: no login, no secrets."""

from flask import Blueprint

bp = Blueprint("health", __name__)

from app.health import views  # noqa: E402,F401
