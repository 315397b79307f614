from flask import redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.auth import bp
from app.auth.forms import LoginForm
from app.clock import utcnow
from app.domain.accounts import TooManyAttempts, authenticate
from app.security import safe_next_url


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm(next=request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(url_for("inbox.index"))
    if form.validate_on_submit():
        try:
            user = authenticate(form.email.data, form.password.data, now=utcnow())
        except TooManyAttempts:
            form.password.errors.append("Too many failed attempts for this email. Wait 15 minutes and try again.")
            return render_template("auth/login.html", form=form), 429
        if user is not None:
            login_user(user)
            return redirect(safe_next_url(form.next.data) or url_for("inbox.index"))
        form.password.errors.append("Wrong email or password.")
    status = 422 if form.errors else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))
