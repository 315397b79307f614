from flask import current_app, jsonify

from app.domain.readiness import readiness
from app.health import bp


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    report = readiness(current_app.extensions["migrate"].directory)
    return jsonify(report.as_json()), 200 if report.ready else 503
