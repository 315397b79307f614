"""Access rules: roles, safe redirects, and how anonymous requests are turned away."""

from functools import wraps
from urllib.parse import urlsplit

from flask import abort, make_response, redirect, request, url_for
from flask_login import current_user

from app.clock import utcnow
from app.domain.sessions import session_user
from app.extensions import login_manager
from app.i18n import gettext
from app.i18n import lazy_gettext as _l
from app.models import Role, User
from app.presenting import ROLE_LABELS


@login_manager.user_loader
def load_user(session_ref: str) -> User | None:
    """The user of the live server-side session the cookie refers to; None (signed out) once it has ended."""
    return session_user(session_ref, now=utcnow())


@login_manager.unauthorized_handler
def send_to_login():
    if request.headers.get("HX-Request") == "true":
        # Back to the page the agent was on, not to the fragment or live-update URL that found the session ended.
        login_url = url_for("auth.login", next=page_of(request.headers.get("HX-Current-URL")))
        # A 302 would be followed by fetch and the login form swapped into a fragment.
        response = make_response("", 401)
        response.headers["HX-Redirect"] = login_url
        return response
    # full_path ends in a bare "?" when there is no query string.
    page = request.full_path.removesuffix("?") if request.method == "GET" else None
    return redirect(url_for("auth.login", next=page))


def page_of(current_url: str | None) -> str | None:
    """The path and query of the page htmx says it is on, when that page is on this site."""
    if not current_url:
        return None
    parts = urlsplit(current_url)
    if parts.netloc and parts.netloc != request.host:
        return None
    return safe_next_url(parts.path + (f"?{parts.query}" if parts.query else ""))


ROLE_HOLDERS = {Role.AGENT: _l("an agent"), Role.LEAD: _l("a team lead"), Role.ADMIN: _l("an admin")}
AREAS = {"Review": _l("Review"), "Admin": _l("Admin"), "Quick replies": _l("Quick replies")}


def role_required(role: Role, *, area: str):
    """Allow the view to users whose role is ``role`` or above; anonymous users go to the login page, and
    others are told that ``area`` (as the navigation names it) needs that role."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.has_role(role):
                abort(
                    403,
                    gettext(
                        "Your role (%(role)s) cannot open this page; %(area)s needs %(holder)s. "
                        "Ask an admin if you need it.",
                        role=ROLE_LABELS[current_user.role],
                        area=AREAS.get(area, area),
                        holder=ROLE_HOLDERS[role],
                    ),
                )
            return view(*args, **kwargs)

        return wrapped

    return decorator


def safe_next_url(target: str | None) -> str | None:
    """``target`` when it is a path on this site, else None (no open redirects)."""
    if not target or "\\" in target or not target.isprintable():  # browsers read "/\\host" as "//host"
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
