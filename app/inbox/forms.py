import uuid

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, SubmitField, TextAreaField

from app.domain.sending import Reply
from app.models import BusinessNumber, Conversation


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


class ReplyForm(FlaskForm):
    message = TextAreaField("Message")
    idempotency_key = HiddenField(default=new_idempotency_key)
    reply_to = HiddenField()
    pause_assistant = BooleanField("Pause assistant", default=True)
    business_number = SelectField("Send from", coerce=int, validate_choice=False)
    send = SubmitField("Send")
    confirm_outside_window = SubmitField("Send anyway")

    def offer_numbers(self, numbers: list[BusinessNumber], conversation: Conversation) -> None:
        """Offer the account's numbers, preselecting the one the customer writes to."""
        self.business_number.choices = [(number.id, number.label) for number in numbers]
        if self.business_number.data is None and conversation.business_number_id:
            self.business_number.data = conversation.business_number_id

    @property
    def quoted_message_id(self) -> int | None:
        value = self.reply_to.data or ""
        return int(value) if value.isdigit() else None

    def to_reply(self, several_numbers: bool) -> Reply:
        return Reply(
            text=self.message.data or "",
            idempotency_key=self.idempotency_key.data or "",
            pause_assistant=bool(self.pause_assistant.data),
            quoted_message_id=self.quoted_message_id,
            business_number_id=self.business_number.data if several_numbers else None,
            confirmed_outside_window=bool(self.confirm_outside_window.data),
        )
