from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectField, StringField, SubmitField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, Length, Optional

from app.i18n import gettext
from app.i18n import lazy_gettext as _l
from app.sandbox.customers import WHATSAPP_STATUSES

NEW_CUSTOMER = "new"


class CustomerMessageForm(FlaskForm):
    contact = SelectField(_l("Customer"), validate_choice=True)
    new_phone = StringField(_l("New customer's phone"), validators=[Optional(), Length(max=20)])
    new_name = StringField(_l("New customer's name"), validators=[Optional(), Length(max=120)])
    message = TextAreaField(_l("Customer message"), validators=[DataRequired(), Length(max=4096)])
    # To test Handoff's incidents: Vambe's AI writing although a person paused it.
    ai_ignores_pause = BooleanField(_l("The AI answers even if paused (misbehaves)"))
    # To test reconciliation: Vambe has the messages, its webhooks to Handoff are lost.
    lose_webhooks = BooleanField(_l("Lose this turn's webhooks (Handoff finds it only by reconciling)"))
    submit = SubmitField(_l("Send as customer"))

    def validate_contact(self, field) -> None:
        """A new customer's phone or name with an existing customer chosen: say so rather than ignore them."""
        if field.data == NEW_CUSTOMER or not (
            (self.new_phone.data or "").strip() or (self.new_name.data or "").strip()
        ):
            return
        chosen = next((choice.label for choice in field.choices if str(choice.value) == str(field.data)), "")
        chosen = chosen.split(" (+")[0] or gettext("an existing customer")
        raise ValidationError(
            gettext(
                "You filled in a new customer's details but chose %(chosen)s. Choose “A new customer…” to write as "
                "them, or clear the new customer's phone and name.",
                chosen=chosen,
            )
        )

    @property
    def new_customer_filled(self) -> bool:
        return bool((self.new_phone.data or "").strip() or (self.new_name.data or "").strip() or self.new_phone.errors)


class WhatsAppStatusForm(FlaskForm):
    status = SelectField(choices=[SelectChoice(status, status) for status in WHATSAPP_STATUSES])
