from flask_babel import lazy_pgettext
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
from app.i18n import lazy_gettext as _l
from app.inputs import chosen_record
from app.models import BusinessNumber, Role

ROLE_CHOICES = [
    SelectChoice(Role.AGENT.value, lazy_pgettext("role", "Agent")),
    SelectChoice(Role.LEAD.value, lazy_pgettext("role", "Lead")),
    SelectChoice(Role.ADMIN.value, lazy_pgettext("role", "Admin")),
]


class NewUserForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Enter the new user's email.")), Length(max=254)])
    name = StringField(_l("Name"), validators=[Length(max=120)])
    role = SelectField(_l("Role"), choices=ROLE_CHOICES, default=Role.AGENT.value)
    password = PasswordField(_l("Initial password"), validators=[DataRequired(_l("Enter an initial password."))])
    submit = SubmitField(_l("Create user"))

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
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)


class PasswordResetForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=[DataRequired()])


class HandoffPhraseForm(FlaskForm):
    language = SelectField(
        _l("Language"), choices=[SelectChoice(code, name) for code, name in LANGUAGES.items()], validate_choice=False
    )
    phrase = StringField(_l("Phrase"))
    submit = SubmitField(_l("Add phrase"))


class TemplateRegistryForm(FlaskForm):
    vambe_template_id = StringField(_l("Vambe template id"))
    name = StringField(_l("Name"))
    language = StringField(_l("Language"), default="es")
    category = SelectField(
        _l("Category"),
        choices=[SelectChoice(c, c.capitalize() or _l("None")) for c in CATEGORIES],
        validate_choice=False,
    )
    business_number = SelectField(_l("Business number"), coerce=chosen_record, validate_choice=False)
    header = StringField(_l("Header (optional)"))
    body = TextAreaField(_l("Body"))
    footer = StringField(_l("Footer (optional)"))
    active = BooleanField(_l("Active: agents can send it"), default=True)
    submit = SubmitField(_l("Save template"))

    def offer_numbers(self, numbers: list[BusinessNumber]) -> None:
        self.business_number.choices = [SelectChoice("", _l("Any number"))] + [
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
