from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, Length

from app.domain.accounts import AccountError, check_password_strength
from app.domain.handoff_phrases import LANGUAGES
from app.domain.templates import CATEGORIES, TemplateFields
from app.inputs import chosen_record
from app.models import BusinessNumber, Role

ROLE_CHOICES = [SelectChoice(role.value, role.value.capitalize()) for role in Role]


class NewUserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter the new user's email."), Length(max=254)])
    name = StringField("Name", validators=[Length(max=120)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.AGENT.value)
    password = PasswordField("Initial password", validators=[DataRequired("Enter an initial password.")])
    submit = SubmitField("Create user")

    def validate_email(self, field) -> None:
        if "@" not in (field.data or ""):
            raise ValidationError(f"“{field.data.strip()}” is not an email address.")

    def validate_password(self, field) -> None:
        # The same rule create_user applies, checked here so that its message shows under this field.
        try:
            check_password_strength(field.data or "")
        except AccountError as error:
            raise ValidationError(str(error)) from None


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class PasswordResetForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired()])


class HandoffPhraseForm(FlaskForm):
    language = SelectField(
        "Language", choices=[SelectChoice(code, name) for code, name in LANGUAGES.items()], validate_choice=False
    )
    phrase = StringField("Phrase")
    submit = SubmitField("Add phrase")


class TemplateRegistryForm(FlaskForm):
    vambe_template_id = StringField("Vambe template id")
    name = StringField("Name")
    language = StringField("Language", default="es")
    category = SelectField(
        "Category", choices=[SelectChoice(c, c.capitalize() or "None") for c in CATEGORIES], validate_choice=False
    )
    business_number = SelectField("Business number", coerce=chosen_record, validate_choice=False)
    header = StringField("Header (optional)")
    body = TextAreaField("Body")
    footer = StringField("Footer (optional)")
    active = BooleanField("Active: agents can send it", default=True)
    submit = SubmitField("Save template")

    def offer_numbers(self, numbers: list[BusinessNumber]) -> None:
        self.business_number.choices = [SelectChoice("", "Any number")] + [
            SelectChoice(number.id, number.label) for number in numbers
        ]

    def to_fields(self) -> TemplateFields:
        return TemplateFields(
            vambe_template_id=self.vambe_template_id.data or "",
            name=self.name.data or "",
            language=self.language.data or "",
            body=self.body.data or "",
            category=self.category.data or "",
            business_number_id=self.business_number.data,
            header=self.header.data or "",
            footer=self.footer.data or "",
            active=bool(self.active.data),
        )
