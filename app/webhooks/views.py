import logging
from collections.abc import Callable
from functools import partial

from flask import Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from app import vambe_client
from app.clock import utcnow
from app.domain.deliveries import MAX_BODY_BYTES, WebhookUnauthorized, authenticate, receive_delivery
from app.domain.syncing import complete_with_vambe
from app.extensions import csrf
from app.inputs import takes_json
from app.webhooks import bp

log = logging.getLogger(__name__)


@bp.post("/vambe")
@bp.post("/vambe/<token>")
@takes_json
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
    receipt = receive_delivery(body, headers, method, now=now)
    # Stored either way: a 2xx stops Vambe retrying a delivery that can only fail again.
    response = jsonify({"delivery": receipt.delivery_id, "state": receipt.state})
    if receipt.needs_vambe:
        after_answering(response, partial(complete_with_vambe, vambe_client(), receipt.delivery_id, now=now))
    return response


def after_answering(response: Response, work: Callable[[], None]) -> None:
    """Run ``work`` in an app context once ``response`` has gone out, so the caller does not wait on it."""
    app = current_app._get_current_object()

    def run() -> None:
        with app.app_context():
            try:
                work()
            except Exception:
                log.exception("work after answering a webhook failed")

    response.call_on_close(run)
