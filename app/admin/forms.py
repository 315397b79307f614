from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectChoice, SelectField, StringField, SubmitField, ValidationError
from wtforms.validators import DataRequired, Length

from app.domain.accounts import AccountError, check_password_strength
from app.domain.handoff_phrases import LANGUAGES
from app.models import Role

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
