"""Texts Handoff stores in English (an outcome's reason, a job's error) and shows in the viewer's language.

A stored text is written as ``N_(pattern) % values``: ``N_`` marks the pattern for the catalogs (pybabel extracts
it) and remembers it, so that ``translated`` can find the pattern again in the stored text, translate it and put
the values back. A text that matches no pattern (Vambe's or WhatsApp's own words) is shown as it is.
"""

import re

from flask import has_request_context, request
from flask_babel import get_translations
from flask_babel.speaklater import LazyString


def request_translations():
    """The viewer's catalog, looked up once per request (Flask-Babel's own lookup runs for every string)."""
    if not has_request_context():
        return get_translations()
    # On the request, not on g: a test's app context can outlive many requests.
    if "handoff.translations" not in request.environ:
        request.environ["handoff.translations"] = get_translations()
    return request.environ["handoff.translations"]


def gettext(message: str, **values) -> str:
    """Flask-Babel's gettext, with the catalog looked up once per request: pages translate hundreds of strings."""
    text = request_translations().ugettext(message)
    return text % values if values else text


def lazy_gettext(message: str, **values) -> LazyString:
    """``gettext`` when the text is shown, not when it is defined (form labels, domain refusals)."""
    return LazyString(gettext, message, **values)


FIELD = re.compile(r"%\((\w+)\)s")
PATTERNS: dict[str, re.Pattern] = {}


def N_(pattern: str) -> str:  # noqa: N802  (the name gettext tools know)
    """Mark ``pattern`` as a stored text to translate when shown; returns it unchanged."""
    if FIELD.search(pattern) and pattern not in PATTERNS:
        parts = FIELD.split(pattern)
        regex = "".join(re.escape(part) if index % 2 == 0 else f"(?P<{part}>.*?)" for index, part in enumerate(parts))
        PATTERNS[pattern] = re.compile(regex, re.S)
    return pattern


def translated(text: str | None) -> str:
    """``text`` in the viewer's language when it is (or fills in) a marked pattern; else as it was."""
    if not text:
        return ""
    if not FIELD.search(text):
        exact = gettext(text)
        if exact != text or not PATTERNS:
            return exact
    for pattern, regex in PATTERNS.items():
        match = regex.fullmatch(text)
        if match:
            return gettext(pattern, **match.groupdict())
    return text
