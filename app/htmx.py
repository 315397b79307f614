"""Deciding between a full page and a fragment, on htmx 4's request headers."""

from flask import Response, make_response, render_template, request


def is_partial_request() -> bool:
    """True for an htmx request that swaps a fragment; boosted and history requests want the page."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Request-Type") == "partial"


def render_page_or_partial(page: str, partial: str, /, status: int = 200, **context) -> Response:
    """Render ``partial`` for a partial htmx request and ``page`` otherwise."""
    template = partial if is_partial_request() else page
    response = make_response(render_template(template, **context), status)
    response.vary.update(("HX-Request", "HX-Request-Type"))
    return response
