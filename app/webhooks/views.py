from flask import current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from app import vambe_client
from app.clock import utcnow
from app.domain.deliveries import MAX_BODY_BYTES, WebhookUnauthorized, authenticate, record_delivery
from app.domain.syncing import process_with_vambe
from app.extensions import csrf
from app.webhooks import bp


@bp.post("/vambe")
@bp.post("/vambe/<token>")
@csrf.exempt
def receive_vambe(token: str | None = None):
    # One byte over the limit: a chunked body (no Content-Length) is cut at max_content_length rather than
    # refused, so reading one byte more is what tells a body that fits from one that does not.
    # A Content-Length over the limit is refused before anything is read.
    request.max_content_length = MAX_BODY_BYTES + 1
    body = request.get_data()
    if len(body) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    now = utcnow()
    try:
        method = authenticate(
            current_app.config["VAMBE_WEBHOOK_SECRET"],
            url_token=token,
            timestamp=request.headers.get("x-vambe-timestamp"),
            signature=request.headers.get("x-vambe-signature"),
            body=body,
            now=now,
        )
    except WebhookUnauthorized:
        return jsonify({"error": "unauthorized"}), 401
    headers = {name.lower(): value for name, value in request.headers.items()}
    delivery = process_with_vambe(vambe_client(), record_delivery(body, headers, method, now=now), now=now)
    # Stored either way: a 2xx stops Vambe retrying a delivery that can only fail again.
    return jsonify({"delivery": delivery.id, "state": delivery.state}), 200
