from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, SelectChoice, SelectField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from app.i18n import lazy_gettext as _l


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired()])
    password = PasswordField(_l("Password"), validators=[DataRequired()])
    next = HiddenField()
    submit = SubmitField(_l("Sign in"))


AUTOMATIC = ""


class PreferencesForm(FlaskForm):
    language = SelectField(_l("Language"), validate_choice=True)
    time_zone = SelectField(_l("Time zone"), validate_choice=True)

    def offer(self, languages: dict[str, str], zones: list[str]) -> "PreferencesForm":
        self.language.choices = [SelectChoice(AUTOMATIC, _l("Automatic (the browser's)"))] + [
            SelectChoice(code, name) for code, name in languages.items()
        ]
        self.time_zone.choices = [SelectChoice(AUTOMATIC, _l("Automatic"))] + [
            SelectChoice(zone, zone) for zone in zones
        ]
        return self


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired()])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=200)])
    confirm = PasswordField(
        "New password, again", validators=[DataRequired(), EqualTo("new_password", _l("The two new passwords differ."))]
    )
