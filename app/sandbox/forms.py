from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

NEW_CUSTOMER = "new"


class CustomerMessageForm(FlaskForm):
    contact = SelectField("Customer", validate_choice=True)
    new_phone = StringField("New customer's phone", validators=[Optional(), Length(max=20)])
    new_name = StringField("New customer's name", validators=[Optional(), Length(max=120)])
    message = TextAreaField("Customer message", validators=[DataRequired(), Length(max=4096)])
    submit = SubmitField("Send as customer")
