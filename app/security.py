"""Access rules: roles, safe redirects, and how anonymous requests are turned away."""

import hmac
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, make_response, redirect, request, url_for
from flask_login import current_user

from app.extensions import db, login_manager
from app.models import Role, User


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The active user whose ``User.get_id()`` this is, made with their current password; else None (signed out).

    A session from before the password changed, or in the old format (the bare id), no longer matches."""
    user_id, _, digest = session_id.partition(".")
    if not (user_id.isascii() and user_id.isdigit() and digest):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.is_active or not hmac.compare_digest(digest.encode(), user.password_digest().encode()):
        return None
    return user


@login_manager.unauthorized_handler
def send_to_login():
    # full_path ends in a bare "?" when there is no query string.
    login_url = url_for("auth.login", next=request.full_path.removesuffix("?") if request.method == "GET" else None)
    if request.headers.get("HX-Request") == "true":
        # A 302 would be followed by fetch and the login form swapped into a fragment.
        response = make_response("", 401)
        response.headers["HX-Redirect"] = login_url
        return response
    return redirect(login_url)


ROLE_HOLDERS = {Role.AGENT: "an agent", Role.LEAD: "a team lead", Role.ADMIN: "an admin"}


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
                    f"Your role ({current_user.role}) cannot open this page; {area} needs {ROLE_HOLDERS[role]}. "
                    "Ask an admin if you need it.",
                )
            return view(*args, **kwargs)

        return wrapped

    return decorator


def safe_next_url(target: str | None) -> str | None:
    """``target`` when it is a path on this site, else None (no open redirects)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
