import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Response, abort, current_app, flash, redirect, request, stream_with_context, url_for
from flask_login import current_user

from app.clock import utcnow
from app.domain import conversations, reviewing
from app.domain.accounts import list_users
from app.domain.reporting import (
    MEASURES,
    build_report,
    conversation_rows,
    handoffs_answered_by,
    incidents_between,
    incidents_per_day,
    late_failures_between,
    mark_resumed_on_purpose,
    overrides_between,
    report_items,
)
from app.domain.searching import iterate_matches, search_messages
from app.domain.window import window_status
from app.extensions import db
from app.htmx import render_page_or_partial
from app.i18n import gettext
from app.inputs import day, id_or_none, record_id
from app.models import AuditEvent, AuditKind, Author, Conversation, ReviewItem, Role, User
from app.presenting import author_label, start_of_local_day, viewer_zone
from app.review import bp
from app.review.forms import CommentForm, RuleForm, SearchForm, VerdictForm
from app.security import role_required

lead_only = role_required(Role.LEAD, area="Review")
MAX_REPORT_DAYS = 366
REPORT_COLUMNS = [
    "day",
    "agent",
    "conversations",
    "messages_sent",
    "median_response_seconds",
    "p90_response_seconds",
    "sends_outside_window",
    "outside_window_accepted",
    "outside_window_failed",
    "failed_sends",
    "unknown_sends",
    # Added later, so at the end: a spreadsheet reading columns by position keeps working.
    "handoffs_answered",
    "median_first_response_seconds",
    "p90_first_response_seconds",
]
CSV_COLUMNS = [
    "time",
    "conversation",
    "phone",
    "direction",
    "author",
    "body",
    "outcome",
    "reason",
    "window_override",
]


def search_form() -> SearchForm:
    form = SearchForm(request.args)
    form.offer_agents(list_users())
    return form


@bp.get("/")
@lead_only
def search():
    form = search_form()
    hits = (
        []
        if form.is_empty()
        else search_messages(
            form.to_filters(start_of_local_day), before_id=record_id(request.args.get("before"), "page link")
        )
    )
    return render_page_or_partial("review/search.html", "review/_results.html", form=form, hits=hits)


@bp.get("/search.csv")
@lead_only
def export():
    filters, zone = search_form().to_filters(start_of_local_day), viewer_zone()

    rows = (
        [
            local_iso(message.occurred_at, zone),
            safe_cell(message.conversation.display_name),
            message.conversation.phone or "",
            message.direction,
            safe_cell(author_label(message)),
            safe_cell(message.body),
            message.outcome,
            safe_cell(message.outcome_reason or ""),
            "yes" if message.window_override else "no",
        ]
        for message in iterate_matches(filters)
    )
    return csv_download(CSV_COLUMNS, rows, f"handoff-messages-{utcnow():%Y%m%d-%H%M}.csv")


@dataclass(frozen=True)
class Period:
    """The days a report covers, in the viewer's zone, and the instants that bound them."""

    first: date
    last: date

    @property
    def since(self) -> datetime:
        return start_of_local_day(self.first)

    @property
    def until(self) -> datetime:
        return start_of_local_day(self.last, next_day=True)


def report_period() -> Period:
    """The days asked for (default: the last 7 days, today included), in the viewer's zone."""
    today = utcnow().astimezone(viewer_zone()).date()
    first = day(request.args.get("since"), "start date") or today - timedelta(days=6)
    last = day(request.args.get("until"), "end date") or today
    first, last = (first, last) if first <= last else (last, first)
    if (last - first).days >= MAX_REPORT_DAYS:
        abort(400, gettext("A report covers at most %(days)d days: choose a shorter period.", days=MAX_REPORT_DAYS))
    return Period(first, last)


def render_period_list(template: str, listing: str, find) -> str:
    """A review page listing what ``find(since, until)`` finds in the period asked for, under the name ``listing``."""
    period = report_period()
    found = {listing: find(period.since, period.until)}
    return render_page_or_partial(template, template, first=period.first, last=period.last, **found)


def chosen_agent() -> User:
    """The agent a drill-down link names (?agent=); a clear 400 or 404 when it names none."""
    agent_id = record_id(request.args.get("agent"), "agent")
    if agent_id is None:
        abort(400, gettext("Say whose figures to list: the link needs ?agent=<user number>."))
    return db.get_or_404(User, agent_id, description=gettext("There is no user #%(number)s.", number=agent_id))


def chosen_day_or(period: Period) -> Period:
    """One day of the period when the link names one (?day=), the whole period otherwise."""
    one_day = day(request.args.get("day"), "day")
    return Period(one_day, one_day) if one_day is not None else period


@bp.get("/reports")
@lead_only
def reports():
    period = report_period()
    return render_page_or_partial(
        "review/reports.html",
        "review/reports.html",
        report=build_report(period.since, period.until, viewer_zone()),
        first=period.first,
        last=period.last,
        incidents=incidents_per_day(period.since, period.until, viewer_zone()),
        scores={scores.agent_id: scores for scores in reviewing.scores_between(period.since, period.until)},
    )


@bp.get("/handoffs")
@lead_only
def handoffs():
    """The handoffs behind one agent's first-response figures: for the report's period, or one day of it."""
    agent, period = chosen_agent(), chosen_day_or(report_period())
    answered = handoffs_answered_by(agent.id, period.since, period.until)
    return render_page_or_partial(
        "review/handoffs.html",
        "review/handoffs.html",
        agent=agent,
        handoffs=answered,
        first=period.first,
        last=period.last,
    )


@bp.get("/overrides")
@lead_only
def overrides():
    """Free-form sends outside the window: the reason each agent gave, and the outcome."""
    return render_period_list("review/overrides.html", "overrides", overrides_between)


@bp.get("/report-items")
@lead_only
def report_items_view():
    """The messages (or conversations) behind one figure of an agent's row in the report."""
    measure = request.args.get("measure", "")
    if measure not in MEASURES:
        abort(400, gettext("Say which figure to list: measure is one of %(measures)s.", measures=", ".join(MEASURES)))
    agent, period = chosen_agent(), report_period()
    one_day = day(request.args.get("day"), "day")
    items = report_items(agent.id, measure, period.since, period.until, viewer_zone(), one_day)
    return render_page_or_partial(
        "review/report_items.html",
        "review/report_items.html",
        agent=agent,
        measure=measure,
        items=items,
        first=period.first,
        last=period.last,
        one_day=one_day,
    )


@bp.get("/late-failures")
@lead_only
def late_failures():
    """Sends WhatsApp failed after Vambe had accepted them: whose, and why."""
    return render_period_list("review/late_failures.html", "failures", late_failures_between)


@bp.get("/incidents")
@lead_only
def incidents():
    """The AI (or another tool) writing after a person took over: each one, and whether it was intended."""
    return render_period_list("review/incidents.html", "incidents", incidents_between)


@bp.post("/incidents/<id:event_id>/resumed")
@lead_only
def resumed_on_purpose(event_id: int):
    incident = db.get_or_404(AuditEvent, event_id, description=gettext("There is no such incident."))
    if incident.kind != AuditKind.AI_AFTER_TAKEOVER:
        abort(404, gettext("There is no such incident."))
    mark_resumed_on_purpose(incident, current_user._get_current_object(), now=utcnow())
    return redirect(url_for("review.incidents", _anchor=f"incident-{incident.id}"), 303)


@bp.get("/reports.csv")
@lead_only
def export_report():
    period = report_period()
    report, first, last = build_report(period.since, period.until, viewer_zone()), period.first, period.last

    rows = (
        [
            row.day.isoformat(),
            safe_cell(row.agent),
            len(row.conversations),
            row.messages_sent,
            seconds(row.median_response),
            seconds(row.p90_response),
            sum(row.overrides.values()),
            sum(row.overrides.get(outcome, 0) for outcome in ("sent", "delivered", "read")),
            row.overrides.get("failed", 0),
            row.failed,
            row.unknown,
            len(row.first_responses),
            seconds(row.median_first_response),
            seconds(row.p90_first_response),
        ]
        for row in report.rows
    )
    return csv_download(REPORT_COLUMNS, rows, f"handoff-report-{first}-{last}.csv")


def csv_download(header: list[str], rows, filename: str) -> Response:
    """A CSV attachment written row by row as it is sent, so a large export never sits in memory."""

    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        try:
            for row in rows:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                writer.writerow(row)
            yield buffer.getvalue()
        finally:
            if hasattr(rows, "close"):
                rows.close()  # a download cut short closes its query's cursor now, not at garbage collection

    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def local_iso(moment: datetime | None, zone) -> str:
    """A time for a CSV: in the viewer's zone, with its offset, so a spreadsheet can still tell the instant."""
    return moment.astimezone(zone).isoformat(timespec="seconds") if moment else ""


def seconds(value: timedelta | None) -> str:
    return "" if value is None else str(int(value.total_seconds()))


def safe_cell(value: str) -> str:
    """Free text that a spreadsheet would run as a formula is prefixed with a quote (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get("/conversations/<id:conversation_id>")
@lead_only
def timeline(conversation_id: int):
    conversation = db.get_or_404(Conversation, conversation_id)
    return render_page_or_partial(
        "review/timeline.html",
        "inbox/_thread.html",
        conversation=conversation,
        thread=conversations.thread(conversation, from_id=record_id(request.args.get("from"), "first message")),
        thread_url=url_for("review.timeline", conversation_id=conversation.id),
        window=window_status(conversation.last_inbound_at, utcnow(), current_app.config["WINDOW_WARNING"]),
        viewer=current_user,
        read_only=True,
    )


@bp.get("/queue")
@lead_only
def queue():
    """The conversations waiting for a lead's review, the rules that sampled them, and the latest verdicts.
    Opening the queue samples what happened since the last look, so it is never stale."""
    reviewing.sample(now=utcnow())
    return render_queue()


def render_queue(status: int = 200, rule_error: tuple[str, str] | None = None):
    return render_page_or_partial(
        "review/queue.html",
        "review/queue.html",
        status=status,
        rules=reviewing.rules(),
        settings=reviewing.SETTINGS,
        pending=reviewing.pending_reviews(),
        reviewed=reviewing.recent_reviews(),
        rule_error=rule_error,
    )


@bp.post("/rules/<reason>")
@lead_only
def change_rule(reason: str):
    form = RuleForm()
    if not form.validate_on_submit():
        abort(400, gettext("The rule's setting must be a whole number."))
    try:
        reviewing.change_rule(
            reason,
            enabled=form.enabled.data,
            setting=form.setting.data,
            actor=current_user._get_current_object(),
            now=utcnow(),
        )
    except reviewing.UnknownRule as refusal:
        abort(404, str(refusal))
    except reviewing.ReviewRefused as refusal:
        db.session.rollback()
        return render_queue(status=422, rule_error=(reason, str(refusal)))
    return redirect(url_for("review.queue", _anchor="rules"), 303)


def review_item_or_404(item_id: int) -> ReviewItem:
    return db.get_or_404(ReviewItem, item_id, description=gettext("There is no review #%(number)s.", number=item_id))


@bp.get("/queue/<id:item_id>")
@lead_only
def review_conversation(item_id: int, status: int = 200, **context):
    item = review_item_or_404(item_id)
    conversation = item.conversation
    context.setdefault("verdict_form", VerdictForm(formdata=None))
    return render_page_or_partial(
        "review/review.html",
        "review/review.html",
        status=status,
        item=item,
        review_item=item,
        conversation=conversation,
        thread=conversations.thread(conversation, from_id=record_id(request.args.get("from"), "first message")),
        thread_url=url_for("review.review_conversation", item_id=item.id),
        window=window_status(conversation.last_inbound_at, utcnow(), current_app.config["WINDOW_WARNING"]),
        comments=reviewing.comments_by_message(item),
        read_only=True,
        **context,
    )


@bp.post("/queue/<id:item_id>/comments")
@lead_only
def add_comment(item_id: int):
    item, form = review_item_or_404(item_id), CommentForm()
    if not form.validate_on_submit():
        abort(400, gettext("Write the comment (at most 2,000 characters) on a message of this conversation."))
    try:
        note = reviewing.comment(
            item,
            id_or_none(form.message_id.data),
            form.body.data,
            author=current_user._get_current_object(),
            now=utcnow(),
        )
    except reviewing.ReviewRefused as refusal:
        abort(400, str(refusal))
    return redirect(url_for("review.review_conversation", item_id=item.id, _anchor=f"message-{note.message_id}"), 303)


@bp.post("/queue/<id:item_id>/verdict")
@lead_only
def give_verdict(item_id: int):
    item, form = review_item_or_404(item_id), VerdictForm()
    if not form.validate_on_submit():
        return review_conversation(item_id, status=422, verdict_form=form)
    try:
        reviewing.give_verdict(
            item, int(form.score.data), form.note.data or "", reviewer=current_user._get_current_object(), now=utcnow()
        )
    except reviewing.ReviewRefused as refusal:
        db.session.rollback()
        form.score.errors = [str(refusal)]
        return review_conversation(item_id, status=409 if item.reviewed_at else 422, verdict_form=form, refusal=refusal)
    flash(gettext("Reviewed: %(name)s, %(score)s of 5.", name=item.conversation.display_name, score=item.score))
    return redirect(url_for("review.queue"), 303)


@bp.get("/reviewed")
@lead_only
def reviewed():
    """The reviews behind one agent's score in the report."""
    agent, period = chosen_agent(), report_period()
    return render_page_or_partial(
        "review/reviewed.html",
        "review/reviewed.html",
        agent=agent,
        reviews=reviewing.reviews_of(agent.id, period.since, period.until),
        first=period.first,
        last=period.last,
    )


CONVERSATION_COLUMNS = [
    "conversation",
    "contact",
    "phone",
    "agent",
    "status",
    "handoff_at",
    "first_human_reply_at",
    "customer_messages",
    "ai_messages",
    "agent_messages",
    "other_tool_messages",
    "overrides",
    "failures",
    "incidents",
    "review_score",
    "reviewed_at",
]


@bp.get("/conversations.csv")
@lead_only
def export_conversations():
    """One row per conversation with a message in the period; times in the viewer's zone, with its offset."""
    period, zone = report_period(), viewer_zone()

    rows = (
        [
            row.conversation.id,
            safe_cell(row.conversation.display_name),
            row.conversation.phone or "",
            safe_cell(row.conversation.assignee.name) if row.conversation.assignee else "",
            row.conversation.status,
            local_iso(row.handoff_at, zone),
            local_iso(row.first_human_reply_at, zone),
            row.messages[Author.CUSTOMER],
            row.messages[Author.ASSISTANT],
            row.messages[Author.AGENT],
            row.messages[Author.OTHER_TOOL],
            row.overrides,
            row.failures,
            row.incidents,
            "" if row.review_score is None else row.review_score,
            local_iso(row.reviewed_at, zone),
        ]
        for row in conversation_rows(period.since, period.until)
    )
    return csv_download(CONVERSATION_COLUMNS, rows, f"handoff-conversations-{period.first}-{period.last}.csv")
