from flask import redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.auth import bp
from app.auth.forms import LoginForm
from app.clock import utcnow
from app.domain.accounts import sign_in, sign_out
from app.domain.throttling import Throttled
from app.presenting import duration
from app.security import safe_next_url


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm(next=request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(url_for("inbox.index"))
    if form.validate_on_submit():
        try:
            user = sign_in(form.email.data, form.password.data, address=request.remote_addr or "", now=utcnow())
        except Throttled as wait:
            wait_text = f"{wait.retry_after} seconds" if wait.retry_after < 60 else duration(wait.retry_after)
            form.password.errors.append(f"Too many failed attempts. Wait {wait_text} and try again.")
            return render_template("auth/login.html", form=form), 429, {"Retry-After": str(wait.retry_after)}
        if user is not None:
            login_user(user)
            return redirect(safe_next_url(form.next.data) or url_for("inbox.index"))
        form.password.errors.append("Wrong email or password.")
    status = 422 if form.errors else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    sign_out(current_user.session_ref, now=utcnow())
    logout_user()
    return redirect(url_for("auth.login"))
