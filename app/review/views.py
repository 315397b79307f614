import csv
import io
from datetime import date, datetime, time, timedelta

from flask import Response, current_app, request, stream_with_context
from flask_login import current_user

from app.clock import utcnow
from app.domain import conversations
from app.domain.accounts import list_users
from app.domain.searching import iterate_matches, search_messages
from app.domain.window import window_status
from app.extensions import db
from app.htmx import render_page_or_partial
from app.models import Conversation, Role
from app.presenting import author_label, viewer_zone
from app.review import bp
from app.review.forms import SearchForm
from app.security import role_required

lead_only = role_required(Role.LEAD)
CSV_COLUMNS = [
    "time_utc",
    "conversation",
    "phone",
    "direction",
    "author",
    "body",
    "outcome",
    "reason",
    "window_override",
]


def start_of_day(day: date, next_day: bool = False) -> datetime:
    """Midnight of ``day`` in the viewer's time zone (of the day after, for an inclusive end date)."""
    return datetime.combine(day + timedelta(days=1) if next_day else day, time.min, tzinfo=viewer_zone())


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
        else search_messages(form.to_filters(start_of_day), before_id=request.args.get("before", type=int))
    )
    return render_page_or_partial("review/search.html", "review/_results.html", form=form, hits=hits)


@bp.get("/search.csv")
@lead_only
def export():
    filters = search_form().to_filters(start_of_day)

    def rows():
        # Streamed row by row, so a large export never sits in memory.
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for message in iterate_matches(filters):
            writer.writerow(
                [
                    message.occurred_at.isoformat(),
                    safe_cell(message.conversation.display_name),
                    message.conversation.phone or "",
                    message.direction,
                    safe_cell(author_label(message)),
                    safe_cell(message.body),
                    message.outcome,
                    safe_cell(message.outcome_reason or ""),
                    "yes" if message.window_override else "no",
                ]
            )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="handoff-messages-{stamp}.csv"'},
    )


def safe_cell(value: str) -> str:
    """Free text that a spreadsheet would run as a formula is prefixed with a quote (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get("/conversations/<int:conversation_id>")
@lead_only
def timeline(conversation_id: int):
    conversation = db.get_or_404(Conversation, conversation_id)
    return render_page_or_partial(
        "review/timeline.html",
        "inbox/_thread.html",
        conversation=conversation,
        items=conversations.thread(conversation),
        window=window_status(conversation.last_inbound_at, utcnow(), current_app.config["WINDOW_WARNING"]),
        viewer=current_user,
    )
