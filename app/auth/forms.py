from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, SelectChoice, SelectField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    next = HiddenField()
    submit = SubmitField("Sign in")


AUTOMATIC = ""


class PreferencesForm(FlaskForm):
    language = SelectField("Language", validate_choice=True)
    time_zone = SelectField("Time zone", validate_choice=True)

    def offer(self, languages: dict[str, str], zones: list[str]) -> "PreferencesForm":
        self.language.choices = [SelectChoice(AUTOMATIC, "Automatic (the browser's)")] + [
            SelectChoice(code, name) for code, name in languages.items()
        ]
        self.time_zone.choices = [SelectChoice(AUTOMATIC, "Automatic")] + [SelectChoice(zone, zone) for zone in zones]
        return self


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=200)])
    confirm = PasswordField(
        "New password, again", validators=[DataRequired(), EqualTo("new_password", "The two new passwords differ.")]
    )
