from datetime import datetime

from flask import abort, current_app, flash, redirect, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from app import vambe_client
from app.admin import bp
from app.admin.forms import HandoffPhraseForm, NewUserForm, PasswordResetForm, RoleForm, TemplateRegistryForm
from app.clock import utcnow
from app.domain import administering
from app.domain.accounts import AccountError, change_role, create_user, list_users, reset_password, set_active
from app.domain.conversations import business_numbers
from app.domain.handoff_phrases import LANGUAGES, PhraseRefused, add_phrase, list_phrases, remove_phrase
from app.domain.health import health as health_of
from app.domain.reconciling import reconcile_now, settings_from
from app.domain.templates import TemplateRefused, list_templates, save_template
from app.extensions import db
from app.htmx import render_page_or_partial
from app.i18n import gettext, translated
from app.inputs import day, record_id
from app.models import AuditKind, HandoffPhrase, MessageTemplate, Role, User, WebhookDelivery
from app.presenting import AUDIT_LABELS, DELIVERY_STATES, ROLE_LABELS, start_of_local_day
from app.security import role_required
from app.vambe import VambeError

admin_only = role_required(Role.ADMIN, area="Admin")


def actor() -> User:
    return current_user._get_current_object()


@bp.get("/users")
@admin_only
def users():
    return render_users(NewUserForm(formdata=None))


@bp.post("/users")
@admin_only
def create():
    form = NewUserForm()
    if form.validate_on_submit():
        try:
            user = create_user(
                form.email.data,
                form.password.data,
                Role(form.role.data),
                name=form.name.data or "",
                now=utcnow(),
                actor=actor(),
            )
        except AccountError as error:
            # The form checks the email's form and the password's length; what is left is about the email.
            form.email.errors.append(str(error))
        else:
            flash(gettext("Created %(email)s (%(role)s).", email=user.email, role=ROLE_LABELS[user.role]))
            return redirect(url_for("admin.users"), 303)
    return render_users(form, status=422)


@bp.post("/users/<id:user_id>/role")
@admin_only
def set_role(user_id: int):
    user = db.get_or_404(User, user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(422, gettext("Unknown role."))
    role = Role(form.role.data)
    now_is = {
        Role.AGENT: gettext("%(name)s is now an agent.", name=user.name),
        Role.LEAD: gettext("%(name)s is now a lead.", name=user.name),
        Role.ADMIN: gettext("%(name)s is now an admin.", name=user.name),
    }
    return changed(user, lambda: change_role(user, role, actor=actor(), now=utcnow()), now_is[role])


@bp.post("/users/<id:user_id>/active")
@admin_only
def set_activity(user_id: int):
    user = db.get_or_404(User, user_id)
    activate = request.form.get("active") == "yes"
    return changed(
        user,
        lambda: set_active(user, activate, actor=actor(), now=utcnow()),
        gettext("%(name)s is now active.", name=user.name)
        if activate
        else gettext("%(name)s is now deactivated.", name=user.name),
    )


@bp.post("/users/<id:user_id>/password")
@admin_only
def set_password(user_id: int):
    user = db.get_or_404(User, user_id)
    form = PasswordResetForm()

    def reset() -> None:
        reset_password(user, form.password.data or "", actor=actor(), now=utcnow())

    return changed(user, reset, gettext("%(name)s's password has been reset.", name=user.name))


def changed(user: User, change, done: str):
    """Apply ``change`` to ``user`` and go back to the user list, saying what was ``done`` or why it was refused."""
    try:
        change()
    except AccountError as error:
        flash(f"{user.name}: {error}", "error")
        return redirect(url_for("admin.users"), 303)
    flash(gettext("Saved. %(done)s", done=done))
    return redirect(url_for("admin.users"), 303)


def render_users(form: NewUserForm, status: int = 200):
    return render_page_or_partial(
        "admin/users.html",
        "admin/users.html",
        status=status,
        form=form,
        users=list_users(),
        role_form=RoleForm(formdata=None),
        password_form=PasswordResetForm(formdata=None),
    )


@bp.get("/settings")
@admin_only
def settings():
    config = current_app.config
    return render_page_or_partial(
        "admin/settings.html",
        "admin/settings.html",
        status_report=administering.connection_status(vambe_client()),
        api_key=administering.masked(None if config["SANDBOX_MODE"] else config["VAMBE_API_KEY"]),
        api_base_url=config["VAMBE_API_BASE_URL"],
        webhook_secret_set=bool(config["VAMBE_WEBHOOK_SECRET"]),
        numbers=business_numbers(),
        last_delivery=administering.last_delivery_at(),
        deliveries=administering.recent_deliveries(state=request.args.get("state") or None),
    )


@bp.post("/numbers/refresh")
@admin_only
def refresh_numbers():
    try:
        numbers = administering.refresh_numbers(vambe_client(), actor=actor(), now=utcnow())
    except VambeError as error:
        flash(translated(error.agent_message), "error")
    else:
        flash(gettext("Vambe lists %(count)d business number(s).", count=len(numbers)))
    return redirect(url_for("admin.settings"), 303)


@bp.get("/health")
@admin_only
def health():
    """Is Handoff hearing everything from Vambe? Webhooks, what they missed, failures, Vambe's error rate."""
    return render_page_or_partial("admin/health.html", "admin/health.html", health=health_of(now=utcnow()))


@bp.post("/reconcile")
@admin_only
def reconcile():
    try:
        report = reconcile_now(
            vambe_client(), actor=actor(), now=utcnow(), clock=utcnow, **settings_from(current_app.config)
        )
    except VambeError as error:
        flash(gettext("Reconciling with Vambe failed: %(error)s", error=translated(error.agent_message)), "error")
    else:
        if report is None:
            flash(gettext("A scheduled reconciliation is running right now; its results will show here."), "info")
        else:
            flash(
                gettext(
                    "Read %(contacts)d contacts' history: %(advanced)d messages moved forward, %(late)d failed after "
                    "sending, %(missed)d found that webhooks missed.",
                    contacts=report.contacts,
                    advanced=report.advanced,
                    late=report.late_failures,
                    missed=report.missed,
                )
            )
    return redirect(url_for("admin.health"), 303)


@bp.post("/webhooks/<id:delivery_id>/replay")
@admin_only
def replay(delivery_id: int):
    delivery = administering.replay(db.get_or_404(WebhookDelivery, delivery_id), actor=actor(), now=utcnow())
    flash(
        gettext("Delivery #%(number)s replayed: %(state)s.", number=delivery.id, state=DELIVERY_STATES[delivery.state])
    )
    return redirect(url_for("admin.settings", _anchor="deliveries"), 303)


@bp.get("/handoff-phrases")
@admin_only
def handoff_phrases():
    return render_phrases(HandoffPhraseForm(formdata=None))


@bp.post("/handoff-phrases")
@admin_only
def create_handoff_phrase():
    form = HandoffPhraseForm()
    if form.validate_on_submit():
        try:
            phrase = add_phrase(form.language.data or "", form.phrase.data or "", actor(), now=utcnow())
        except PhraseRefused as refusal:
            form.phrase.errors.append(str(refusal))
        else:
            flash(
                gettext("Added “%(phrase)s” (%(language)s).", phrase=phrase.phrase, language=LANGUAGES[phrase.language])
            )
            return redirect(url_for("admin.handoff_phrases"), 303)
    return render_phrases(form, status=422)


@bp.post("/handoff-phrases/<id:phrase_id>/delete")
@admin_only
def delete_handoff_phrase(phrase_id: int):
    phrase = db.get_or_404(HandoffPhrase, phrase_id, description=gettext("That phrase is no longer in the list."))
    remove_phrase(phrase, actor(), now=utcnow())
    flash(gettext("Removed “%(phrase)s”.", phrase=phrase.phrase))
    return redirect(url_for("admin.handoff_phrases"), 303)


def render_phrases(form: HandoffPhraseForm, status: int = 200):
    return render_page_or_partial(
        "admin/handoff_phrases.html",
        "admin/handoff_phrases.html",
        status=status,
        form=form,
        phrases=list_phrases(),
        languages=LANGUAGES,
    )


@bp.get("/templates")
@admin_only
def templates():
    return render_templates(TemplateRegistryForm(formdata=None))


@bp.post("/templates")
@admin_only
def create_template():
    return saved_template(TemplateRegistryForm(), None)


@bp.get("/templates/<id:template_id>")
@admin_only
def edit_template(template_id: int):
    template = db.get_or_404(MessageTemplate, template_id, description=gettext("That template is not registered."))
    form = TemplateRegistryForm(formdata=None, obj=template, business_number=template.business_number_id)
    return render_templates(form, editing=template)


@bp.post("/templates/<id:template_id>")
@admin_only
def update_template(template_id: int):
    template = db.get_or_404(MessageTemplate, template_id, description=gettext("That template is not registered."))
    return saved_template(TemplateRegistryForm(), template)


def saved_template(form: TemplateRegistryForm, template: MessageTemplate | None):
    form.offer_numbers(business_numbers())
    if form.validate_on_submit():
        try:
            saved = save_template(form.to_fields(), actor(), now=utcnow(), template=template)
        except TemplateRefused as refusal:
            db.session.rollback()
            form.body.errors.append(str(refusal))
        else:
            flash(gettext("Saved the template “%(name)s”.", name=saved.name))
            return redirect(url_for("admin.templates"), 303)
    return render_templates(form, editing=template, status=422)


def render_templates(form: TemplateRegistryForm, editing: MessageTemplate | None = None, status: int = 200):
    form.offer_numbers(business_numbers())
    return render_page_or_partial(
        "admin/templates.html",
        "admin/templates.html",
        status=status,
        form=form,
        editing=editing,
        templates=list_templates(),
    )


@bp.get("/audit")
@admin_only
def audit():
    filters = administering.AuditFilters(
        kind=request.args.get("kind") if request.args.get("kind") in tuple(AuditKind) else None,
        actor_id=record_id(request.args.get("actor"), "user"),
        since=local_day(request.args.get("since")),
        until=local_day(request.args.get("until"), end=True),
    )
    events = administering.audit_log(filters, before_id=record_id(request.args.get("before"), "page link"))
    return render_page_or_partial(
        "admin/audit.html",
        "admin/audit.html",
        events=events,
        filters=filters,
        kinds=[SelectChoice(kind.value, AUDIT_LABELS.get(kind, kind.value).capitalize()) for kind in AuditKind],
        users=list_users(),
        page_size=administering.AUDIT_PAGE_SIZE,
    )


def local_day(value: str | None, end: bool = False) -> datetime | None:
    """A YYYY-MM-DD date as the aware start (or, with ``end``, the end) of that day in the viewer's zone."""
    chosen = day(value)
    return start_of_local_day(chosen, next_day=end) if chosen else None
