from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    RadioField,
    SearchField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from app.domain.searching import SearchFilters
from app.inputs import DayField, record_id
from app.models import Direction, Outcome


class SearchForm(FlaskForm):
    """Read from the query string: a search changes nothing, so it carries no CSRF token."""

    class Meta:
        csrf = False

    q = SearchField("Message text")
    contact = StringField("Contact")
    agent = SelectField("Agent", validate_choice=False)
    since = DayField("From", validators=[Optional()])
    until = DayField("Until", validators=[Optional()])
    direction = SelectField(
        "Direction",
        choices=[SelectChoice("", "Both"), *(SelectChoice(d.value, d.value.capitalize()) for d in Direction)],
        default="",
    )
    outcome = SelectField(
        "Outcome", choices=[SelectChoice("", "Any"), *(SelectChoice(o.value, o.value) for o in Outcome)], default=""
    )
    paused = BooleanField("Paused the assistant")
    overrides = BooleanField("Window overrides only")

    def offer_agents(self, users) -> None:
        self.agent.choices = [SelectChoice("", "Anyone")] + [SelectChoice(str(u.id), u.name) for u in users]

    def to_filters(self, start_of_day) -> SearchFilters:
        """The filters asked for; dates are days in the viewer's zone (``start_of_day`` turns them into times)."""
        return SearchFilters(
            text=(self.q.data or "")[:200],
            contact=(self.contact.data or "")[:100],
            agent_id=record_id(self.agent.data, "agent"),
            since=start_of_day(self.since.data) if self.since.data else None,
            until=start_of_day(self.until.data, next_day=True) if self.until.data else None,
            direction=self.direction.data if self.direction.data in tuple(Direction) else None,
            outcome=self.outcome.data if self.outcome.data in tuple(Outcome) else None,
            paused_only=bool(self.paused.data),
            overrides_only=bool(self.overrides.data),
        )

    def is_empty(self) -> bool:
        return not any(value for name, value in self.data.items() if name not in ("csrf_token",))


class RuleForm(FlaskForm):
    enabled = BooleanField("On")
    setting = IntegerField("Setting", validators=[Optional()])


class CommentForm(FlaskForm):
    message_id = HiddenField()
    body = TextAreaField("Comment", validators=[DataRequired(), Length(max=2000)])


class VerdictForm(FlaskForm):
    score = RadioField(
        "Score", choices=[SelectChoice(str(n), str(n)) for n in range(1, 6)], validators=[DataRequired()]
    )
    note = TextAreaField("Note", validators=[Length(max=2000)])
