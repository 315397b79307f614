"""Error pages: a full page, or a fragment for htmx, and never a stack trace or a secret."""

from flask import Flask
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.extensions import db
from app.htmx import render_page_or_partial
from app.i18n import gettext, translated
from app.i18n import lazy_gettext as _l

TITLES = {
    400: _l("Bad request"),
    403: _l("Not allowed"),
    404: _l("Not found"),
    405: _l("Method not allowed"),
    409: _l("Conflict"),
    413: _l("Too large"),
    415: _l("Not a form"),
    422: _l("Cannot do that"),
    429: _l("Too many requests"),
    500: _l("Server error"),
}
# In place of Werkzeug's stock descriptions, which talk about servers and spelling.
PLAIN_DESCRIPTIONS = {
    400: _l("The request could not be understood. Go back, reload the page and try again."),
    403: _l("You cannot open this page."),
    404: _l("There is no such page."),
    405: _l("This page cannot be used that way. Go back and use the page's own links and buttons."),
    413: _l("What was sent is larger than any form here takes. Shorten it and try again."),
    429: _l("Too many requests in a short time. Wait a minute and try again."),
}


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError):
        return render_error(400, gettext("Your session form has expired. Reload the page and try again."))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = error.code or 500
        response = render_error(code, described(error, code))
        # Keep what the exception says about itself, e.g. Allow on a 405.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError):
        # The failure may have left the session mid-transaction; the page itself needs the database.
        db.session.rollback()
        return render_error(500, gettext("Something went wrong on our side. The error has been logged."))


def described(error: HTTPException, code: int) -> str:
    """What the view said when it aborted, else a plain sentence for the status (not Werkzeug's own)."""
    if error.description and error.description != type(error).description:
        return translated(str(error.description))
    return str(PLAIN_DESCRIPTIONS.get(code, ""))


def render_error(status: int, description: str):
    context = {"code": status, "title": TITLES.get(status, _l("Error")), "description": description}
    return render_page_or_partial("errors/page.html", "errors/_error.html", status=status, **context)
