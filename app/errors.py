"""Error pages: a full page, or a fragment for htmx, and never a stack trace or a secret."""

from flask import Flask
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.extensions import db
from app.htmx import render_page_or_partial


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError):
        return render_error(400, "Your session form has expired. Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        response = render_error(error.code or 500, error.description or "")
        # Keep what the exception says about itself, e.g. Allow on a 405.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError):
        # The failure may have left the session mid-transaction; the page itself needs the database.
        db.session.rollback()
        return render_error(500, "Something went wrong on our side. The error has been logged.")


def render_error(status: int, description: str):
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Not allowed", 500: "Server error"}
    context = {"code": status, "title": titles.get(status, "Error"), "description": description}
    return render_page_or_partial("errors/page.html", "errors/_error.html", status=status, **context)
