import uuid

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    HiddenField,
    SearchField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length

from app.domain.conversations import InboxFilters
from app.domain.sending import Reply, TemplateSend
from app.i18n import lazy_gettext as _l
from app.inputs import chosen_record, record_id
from app.models import BusinessNumber, Conversation, ConversationStatus, User

MAX_TEMPLATE_VALUES = 50  # far above any template; a longer list is not a browser's


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def choices(**labels: str) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in labels.items()]


class ReplyForm(FlaskForm):
    message = TextAreaField(_l("Message"))
    idempotency_key = HiddenField(default=new_idempotency_key)
    reply_to = HiddenField()
    seen_through = HiddenField()
    pause_assistant = BooleanField(_l("Pause assistant"), default=True)
    business_number = SelectField(_l("Send from"), coerce=chosen_record, validate_choice=False)
    send = SubmitField(_l("Send"))
    confirm_outside_window = SubmitField(_l("Send anyway"))
    override_reason = StringField(_l("Why send it anyway?"))
    confirm_newer_reply = SubmitField(_l("Send anyway"))

    def offer_numbers(self, numbers: list[BusinessNumber], conversation: Conversation) -> None:
        """Offer the account's numbers, preselecting the one the customer writes to."""
        self.business_number.choices = [SelectChoice(number.id, number.label) for number in numbers]
        if self.business_number.data is None and conversation.business_number_id:
            self.business_number.data = conversation.business_number_id

    @property
    def quoted_message_id(self) -> int | None:
        return record_id(self.reply_to.data, "quoted message")

    def to_reply(self, several_numbers: bool) -> Reply:
        return Reply(
            text=self.message.data or "",
            idempotency_key=self.idempotency_key.data or "",
            pause_assistant=bool(self.pause_assistant.data),
            quoted_message_id=self.quoted_message_id,
            business_number_id=self.business_number.data if several_numbers else None,
            confirmed_outside_window=bool(self.confirm_outside_window.data),
            override_reason=(self.override_reason.data or "")[:300],
            seen_through_message_id=record_id(self.seen_through.data, "last message seen"),
            confirmed_newer_reply=bool(self.confirm_newer_reply.data),
        )


class TemplateForm(FlaskForm):
    """An approved template chosen in the composer, and the values for its placeholders, in order."""

    template_id = HiddenField()
    idempotency_key = HiddenField(default=new_idempotency_key)
    value = FieldList(StringField(_l("Value")), min_entries=0, max_entries=MAX_TEMPLATE_VALUES)
    send = SubmitField(_l("Send template"))

    def to_send(self) -> TemplateSend:
        return TemplateSend(
            template_id=record_id(self.template_id.data, "template") or 0,
            values=[entry.data or "" for entry in self.value.entries],
            idempotency_key=self.idempotency_key.data or "",
        )


class InboxFilterForm(FlaskForm):
    """The inbox's filters; read from the query string, so no CSRF token (nothing changes)."""

    class Meta:
        csrf = False

    scope = SelectField(
        _l("Show"),
        choices=choices(all=_l("All"), mine=_l("Mine"), unassigned=_l("Unassigned"), waiting=_l("Waiting for a human")),
        default="all",
    )
    window = SelectField(
        _l("Window"),
        choices=choices(
            **{"": _l("Any window")},
            open=_l("Open"),
            closing=_l("Closing"),
            closed=_l("Closed"),
            unknown=_l("No inbound yet"),
        ),
        default="",
    )
    status = SelectField(_l("Status"), choices=choices(open=_l("Open"), resolved=_l("Resolved")), default="open")
    sort = SelectField(
        _l("Sort"),
        choices=choices(recent=_l("Latest activity"), closing_soon=_l("Window closes soonest")),
        default="recent",
    )
    paused = BooleanField(_l("Assistant paused"))
    unanswered = BooleanField(_l("Customer wrote last"))
    q = SearchField(_l("Search"))

    def to_filters(self) -> InboxFilters:
        """The filters asked for; a hand-edited URL with unknown values falls back to the defaults."""
        query = (self.q.data or "")[:200]
        try:
            return InboxFilters(
                scope=self.scope.data or "all",
                window=self.window.data or None,
                paused_only=bool(self.paused.data),
                unanswered_only=bool(self.unanswered.data),
                status=self.status.data or ConversationStatus.OPEN,
                query=query,
                sort=self.sort.data or "recent",
            )
        except ValueError:
            return InboxFilters(query=query)


class AssignForm(FlaskForm):
    assignee = SelectField(_l("Assign to"), validate_choice=False)

    def offer_users(self, users: list[User]) -> None:
        self.assignee.choices = [SelectChoice("", _l("Nobody"))] + [
            SelectChoice(str(user.id), user.name) for user in users
        ]


class StatusForm(FlaskForm):
    status = HiddenField(validators=[DataRequired()])


class QuickReplyForm(FlaskForm):
    # Its length is checked after a leading "/" is stripped (app/domain/quick_replies.py).
    shortcut = StringField(_l("Shortcut"), validators=[DataRequired()])
    body = TextAreaField(_l("Text"), validators=[DataRequired(), Length(max=4096)])
    submit = SubmitField(_l("Save quick reply"))
