from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectField, StringField, SubmitField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, Length, Optional

NEW_CUSTOMER = "new"


class CustomerMessageForm(FlaskForm):
    contact = SelectField("Customer", validate_choice=True)
    new_phone = StringField("New customer's phone", validators=[Optional(), Length(max=20)])
    new_name = StringField("New customer's name", validators=[Optional(), Length(max=120)])
    message = TextAreaField("Customer message", validators=[DataRequired(), Length(max=4096)])
    # To test Handoff's incidents: Vambe's AI writing although a person paused it.
    ai_ignores_pause = BooleanField("The AI answers even if paused (misbehaves)")
    # To test reconciliation: Vambe has the messages, its webhooks to Handoff are lost.
    lose_webhooks = BooleanField("Lose this turn's webhooks (Handoff finds it only by reconciling)")
    submit = SubmitField("Send as customer")

    def validate_contact(self, field) -> None:
        """A new customer's phone or name with an existing customer chosen: say so rather than ignore them."""
        if field.data == NEW_CUSTOMER or not (
            (self.new_phone.data or "").strip() or (self.new_name.data or "").strip()
        ):
            return
        chosen = next((choice.label for choice in field.choices if str(choice.value) == str(field.data)), "")
        chosen = chosen.split(" (+")[0] or "an existing customer"
        raise ValidationError(
            f"You filled in a new customer's details but chose {chosen}. "
            "Choose “A new customer…” to write as them, or clear the new customer's phone and name."
        )

    @property
    def new_customer_filled(self) -> bool:
        return bool((self.new_phone.data or "").strip() or (self.new_name.data or "").strip() or self.new_phone.errors)


class WhatsAppStatusForm(FlaskForm):
    status = SelectField(choices=[SelectChoice(status, status) for status in ("delivered", "read", "failed")])
