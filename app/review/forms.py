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
from app.i18n import lazy_gettext as _l
from app.inputs import DayField, record_id
from app.models import Direction, Outcome
from app.presenting import OUTCOME_LABELS


class SearchForm(FlaskForm):
    """Read from the query string: a search changes nothing, so it carries no CSRF token."""

    class Meta:
        csrf = False

    q = SearchField(_l("Message text"))
    contact = StringField(_l("Contact"))
    agent = SelectField(_l("Agent"), validate_choice=False)
    since = DayField(_l("From"), validators=[Optional()])
    until = DayField(_l("Until"), validators=[Optional()])
    direction = SelectField(
        _l("Direction"),
        choices=[
            SelectChoice("", _l("Both")),
            SelectChoice("inbound", _l("Inbound")),
            SelectChoice("outbound", _l("Outbound")),
        ],
        default="",
    )
    outcome = SelectField(
        _l("Outcome"),
        choices=[SelectChoice("", _l("Any")), *(SelectChoice(o.value, OUTCOME_LABELS[o]) for o in Outcome)],
        default="",
    )
    paused = BooleanField(_l("Paused the assistant"))
    overrides = BooleanField(_l("Window overrides only"))

    def offer_agents(self, users) -> None:
        self.agent.choices = [SelectChoice("", _l("Anyone"))] + [SelectChoice(str(u.id), u.name) for u in users]

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
    enabled = BooleanField(_l("On"))
    setting = IntegerField(_l("Setting"), validators=[Optional()])


class CommentForm(FlaskForm):
    message_id = HiddenField()
    body = TextAreaField(_l("Comment"), validators=[DataRequired(), Length(max=2000)])


class VerdictForm(FlaskForm):
    score = RadioField(
        _l("Score"), choices=[SelectChoice(str(n), str(n)) for n in range(1, 6)], validators=[DataRequired()]
    )
    note = TextAreaField(_l("Note"), validators=[Length(max=2000)])
