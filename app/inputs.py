"""What a request may carry, checked at the edge: one helper per kind of value, each refusing with a clear 400.

Views and forms call these instead of ``int()`` or ``date.fromisoformat()``: those accept Unicode digits
('١٢', '²' even raises) and values no column can hold, which the database then answers with a 500.
"""

import re
from datetime import date

from flask import Flask, current_app, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType
from werkzeug.routing import BaseConverter, ValidationError
from wtforms import DateField

from app.i18n import N_, gettext
from app.models import MAX_RECORD_ID, unstorable

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
ASCII_ID = re.compile(r"[1-9][0-9]{0,9}")
ASCII_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FORM_BODIES = ("application/x-www-form-urlencoded", "multipart/form-data")
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class RecordIdConverter(BaseConverter):
    """``<id:name>`` in a route: an ASCII record id that fits the column, else the route does not match (404)."""

    regex = ASCII_ID.pattern

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_RECORD_ID:
            raise ValidationError()
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))


# What record_id() and day() are told a value is, for their messages (marked here for the catalogs).
VALUE_NAMES = (
    N_("id"),
    N_("page link"),
    N_("agent"),
    N_("first message"),
    N_("quoted message"),
    N_("last message seen"),
    N_("template"),
    N_("choice"),
    N_("date"),
    N_("day"),
    N_("start date"),
    N_("end date"),
    N_("user"),
)


def record_id(raw: str | None, what: str = "id") -> int | None:
    """An optional record id from a query string or form: None when absent, 400 when it cannot be one."""
    if raw is None or raw == "":
        return None
    if not ASCII_ID.fullmatch(raw) or int(raw) > MAX_RECORD_ID:
        raise BadRequest(gettext("The %(what)s must be a record number, like 42.", what=gettext(what)))
    return int(raw)


def id_or_none(raw: str | None) -> int | None:
    """``raw`` as a record id when it can be one, else None: for a choice where any other value names no record."""
    return int(raw) if raw and ASCII_ID.fullmatch(raw) and int(raw) <= MAX_RECORD_ID else None


def day(raw: str | None, what: str = "date") -> date | None:
    """An optional YYYY-MM-DD day between 2000 and 2100: None when absent, 400 otherwise."""
    if raw is None or raw == "":
        return None
    try:
        parsed = date.fromisoformat(raw) if ASCII_DAY.fullmatch(raw) else None
    except ValueError:
        parsed = None
    if parsed is None or not FIRST_DAY <= parsed <= LAST_DAY:
        raise BadRequest(
            gettext(
                "The %(what)s must be a day between %(first)s and %(last)s, written YYYY-MM-DD.",
                what=gettext(what),
                first=FIRST_DAY,
                last=LAST_DAY,
            )
        )
    return parsed


def chosen_record(value: int | str | None) -> int | None:
    """A SelectField's ``coerce`` for a choice of records: its choices are ids, the browser sends text."""
    return value if isinstance(value, int) else record_id(value, "choice")


class DayField(DateField):
    """A date input whose value is read by ``day``: a bad one is a 400, not a silently dropped filter."""

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data = day(valuelist[0] if valuelist else None, self.label.text.lower())


def takes_json(view):
    """Mark a view that reads a JSON body itself (webhooks, the sandbox's API) and checks its own values."""
    view.takes_json = True
    return view


def refuse_unusable_requests() -> None:
    """Before any view: refuse what no form or query of this app can take, so that no view meets it.

    Flask-WTF reads a JSON body as if it were the form (values then arrive as lists, numbers and booleans) and
    takes uploaded files as form values: the console's forms are plain HTML forms, so neither is accepted.
    """
    if request.routing_exception is not None:
        return  # a 404 or 405 answers it
    values = [*request.args.items(multi=True), *request.view_args.items()]
    view = current_app.view_functions[request.endpoint]
    if not getattr(view, "takes_json", False):
        if request.files:
            raise BadRequest(gettext("This form takes no files."))
        if request.method in BODY_METHODS and request.mimetype and request.mimetype not in FORM_BODIES:
            raise UnsupportedMediaType(
                gettext("Send this form as an HTML form would (application/x-www-form-urlencoded).")
            )
        values += request.form.items(multi=True)
    for name, value in values:
        if unstorable(name) or (isinstance(value, str) and unstorable(value)):
            raise BadRequest("The request holds a character that cannot be stored (a NUL byte or a broken one).")


def register(app: Flask) -> None:
    app.url_map.converters["id"] = RecordIdConverter
    app.before_request(refuse_unusable_requests)
