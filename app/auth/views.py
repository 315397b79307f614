from zoneinfo import available_timezones

from flask import flash, redirect, render_template, request, url_for
from flask_babel import ngettext
from flask_login import current_user, login_required, login_user, logout_user

from app.auth import bp
from app.auth.forms import AUTOMATIC, LoginForm, PasswordChangeForm, PreferencesForm
from app.clock import utcnow
from app.domain.accounts import AccountError, change_own_password, set_preferences, sign_in, sign_out
from app.domain.throttling import Throttled
from app.i18n import gettext
from app.presenting import LANGUAGE_NAMES, duration
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
            wait_text = (
                ngettext("%(num)d second", "%(num)d seconds", wait.retry_after)
                if wait.retry_after < 60
                else duration(wait.retry_after)
            )
            form.password.errors.append(
                gettext("Too many failed attempts. Wait %(time)s and try again.", time=wait_text)
            )
            return render_template("auth/login.html", form=form), 429, {"Retry-After": str(wait.retry_after)}
        if user is not None:
            login_user(user)
            return redirect(safe_next_url(form.next.data) or url_for("inbox.index"))
        form.password.errors.append(gettext("Wrong email or password."))
    status = 422 if form.errors else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    sign_out(current_user.session_ref, now=utcnow())
    logout_user()
    return redirect(url_for("auth.login"))


def preferences_form(formdata=None) -> PreferencesForm:
    form = PreferencesForm(formdata=formdata) if formdata is not None else PreferencesForm(formdata=None)
    return form.offer(LANGUAGE_NAMES, sorted(available_timezones()))


def render_settings(status: int = 200, **forms):
    user = current_user._get_current_object()
    if "preferences" not in forms:
        forms["preferences"] = preferences_form()
        forms["preferences"].language.data = user.locale or AUTOMATIC
        forms["preferences"].time_zone.data = user.time_zone or AUTOMATIC
    forms.setdefault("password_form", PasswordChangeForm(formdata=None))
    return render_template("auth/settings.html", **forms), status


@bp.get("/settings")
@login_required
def settings():
    """Every user's own settings: language, time zone, password."""
    return render_settings()


@bp.post("/settings/preferences")
@login_required
def save_preferences():
    form = preferences_form(request.form)
    if not form.validate_on_submit():
        return render_settings(422, preferences=form)
    set_preferences(
        current_user._get_current_object(),
        locale=form.language.data or None,
        time_zone=form.time_zone.data or None,
        now=utcnow(),
    )
    flash(gettext("Your settings are saved."))
    return redirect(url_for("auth.settings"), 303)


@bp.post("/settings/password")
@login_required
def change_password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            change_own_password(
                current_user._get_current_object(), form.current_password.data, form.new_password.data, now=utcnow()
            )
        except AccountError as refusal:
            form.new_password.errors.append(str(refusal))
        else:
            flash(gettext("Your password is changed. Your other sessions are signed out."))
            return redirect(url_for("auth.settings"), 303)
    return render_settings(422, password_form=form)
