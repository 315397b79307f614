"""Approved WhatsApp templates: the account's registry (Vambe offers no list call) and filling one in.

A template's text carries numbered placeholders, ``{{1}}``, ``{{2}}``…, as Meta approves them: numbered from 1
without gaps, first used in order. The values go to Vambe as ``variables``, in that order.
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from app.extensions import db
from app.i18n import lazy_gettext as _l
from app.models import AuditEvent, AuditKind, BusinessNumber, Conversation, MessageTemplate, User

PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
# Vambe shows template ids as UUIDs or as Meta's numeric ids; either way letters, digits, dashes, underscores.
TEMPLATE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
CATEGORIES = ("", "MARKETING", "UTILITY", "AUTHENTICATION")
MAX_BODY = 1024  # Meta's limit on a template body
MAX_HEADER_FOOTER = 60
MAX_VALUE = 1024
# Meta refuses a value with a line break or a tab, or more than four spaces in a row.
BAD_VALUE = re.compile(r"[\n\r\t]| {5,}")


class TemplateRefused(ValueError):
    """The template, or the values for it, cannot be used as given."""


@dataclass(frozen=True)
class TemplateFields:
    vambe_template_id: str
    name: str
    language: str
    body: str
    category: str = ""
    business_number_id: int | None = None
    header: str = ""
    footer: str = ""
    active: bool = True


def placeholder_count(body: str) -> int:
    """How many values ``body`` takes; raises TemplateRefused unless its placeholders are {{1}}…{{n}}, each
    first used after the one before it."""
    first_uses = []
    for match in PLACEHOLDER.finditer(body):
        number = int(match.group(1))
        if number not in first_uses:
            first_uses.append(number)
    if first_uses != list(range(1, len(first_uses) + 1)):
        expected = list(range(1, max(first_uses, default=0) + 1))
        if sorted(first_uses) != expected:
            missing = sorted(set(expected) - set(first_uses))
            shown = ", ".join("{{" + str(n) + "}}" for n in missing) or "{{1}}"
            raise TemplateRefused(
                _l(
                    "The placeholders must be numbered from %(first)s without gaps: %(missing)s is missing.",
                    first="{{1}}",
                    missing=shown,
                )
            )
        raise TemplateRefused(
            _l(
                "The placeholders must first appear in order: %(first)s, then %(second)s, and so on.",
                first="{{1}}",
                second="{{2}}",
            )
        )
    return len(first_uses)


def checked(fields: TemplateFields) -> TemplateFields:
    """``fields`` tidied, or TemplateRefused saying what is wrong."""
    template_id = fields.vambe_template_id.strip()
    if not TEMPLATE_ID.fullmatch(template_id):
        raise TemplateRefused(
            _l("The template id is the one Vambe shows: letters, digits, dashes or underscores, up to 64.")
        )
    name = " ".join(fields.name.split())
    if not 1 <= len(name) <= 120:
        raise TemplateRefused(_l("Give the template a name of up to 120 characters."))
    language = fields.language.strip()
    if not LANGUAGE.fullmatch(language):
        raise TemplateRefused(_l("The language is a code such as es, pt_BR or en_US."))
    category = fields.category.strip().upper()
    if category not in CATEGORIES:
        raise TemplateRefused(_l("The category is MARKETING, UTILITY or AUTHENTICATION (or none)."))
    body = fields.body.replace("\r\n", "\n").strip()
    if not 1 <= len(body) <= MAX_BODY:
        raise TemplateRefused(_l("The body has 1 to %(count)d characters.", count=MAX_BODY))
    placeholder_count(body)
    header, footer = fields.header.strip(), fields.footer.strip()
    for part, text in ((_l("header"), header), (_l("footer"), footer)):
        if len(text) > MAX_HEADER_FOOTER or "\n" in text:
            raise TemplateRefused(
                _l("The %(part)s is one line of at most %(count)d characters.", part=part, count=MAX_HEADER_FOOTER)
            )
        if PLACEHOLDER.search(text):
            raise TemplateRefused(
                _l("Handoff sends values for the body only: the %(part)s cannot have placeholders.", part=part)
            )
    if fields.business_number_id is not None and db.session.get(BusinessNumber, fields.business_number_id) is None:
        raise TemplateRefused(_l("That business number is not one of the account's."))
    return TemplateFields(
        template_id, name, language, body, category, fields.business_number_id, header, footer, fields.active
    )


def save_template(
    fields: TemplateFields, actor: User | None, *, now: datetime, template: MessageTemplate | None = None
) -> MessageTemplate:
    """Register a template (or change ``template``); commits, with its audit event."""
    template = store(checked(fields), now=now, template=template)
    db.session.add(
        AuditEvent(
            occurred_at=now,
            kind=AuditKind.TEMPLATE_SAVED,
            actor=actor,
            details={"id": template.vambe_template_id, "name": template.name, "active": template.active},
        )
    )
    db.session.commit()
    return template


def store(fields: TemplateFields, *, now: datetime, template: MessageTemplate | None = None) -> MessageTemplate:
    """Write checked ``fields``; a template id another template has is refused. Never commits."""
    clash = db.session.scalar(
        select(MessageTemplate).where(MessageTemplate.vambe_template_id == fields.vambe_template_id)
    )
    if clash is not None and clash is not template:
        raise TemplateRefused(
            _l(
                "The template id %(id)s is already registered (“%(name)s”).",
                id=fields.vambe_template_id,
                name=clash.name,
            )
        )
    if template is None:
        template = MessageTemplate(created_at=now)
        db.session.add(template)
    for name, value in vars(fields).items():
        setattr(template, name, value)
    template.updated_at = now
    db.session.flush()
    return template


def list_templates() -> list[MessageTemplate]:
    return list(db.session.scalars(select(MessageTemplate).order_by(MessageTemplate.name, MessageTemplate.id)))


def templates_for(conversation: Conversation) -> list[MessageTemplate]:
    """The active templates that can reach this customer: for any number, or the number they write to."""
    query = select(MessageTemplate).where(MessageTemplate.active.is_(True))
    if conversation.business_number_id is not None:
        query = query.where(
            or_(
                MessageTemplate.business_number_id.is_(None),
                MessageTemplate.business_number_id == conversation.business_number_id,
            )
        )
    return list(db.session.scalars(query.order_by(MessageTemplate.name, MessageTemplate.id)))


def filled(template: MessageTemplate, values: list[str]) -> str:
    """The message as the customer will see it (header, body and footer), or TemplateRefused when the values do
    not fit: one per placeholder, none empty, none Meta would refuse."""
    wanted = placeholder_count(template.body)
    if len(values) != wanted:
        raise TemplateRefused(
            _l(
                "“%(name)s” takes %(wanted)d value(s); %(given)d given.",
                name=template.name,
                wanted=wanted,
                given=len(values),
            )
        )
    for number, value in enumerate(values, start=1):
        slot = f"{{{{{number}}}}}"
        if not value.strip():
            raise TemplateRefused(_l("Fill in %(slot)s.", slot=slot))
        if len(value) > MAX_VALUE or BAD_VALUE.search(value):
            raise TemplateRefused(
                _l(
                    "%(slot)s must be one line of at most %(count)d characters, without runs of spaces.",
                    slot=slot,
                    count=MAX_VALUE,
                )
            )
    body = PLACEHOLDER.sub(lambda match: values[int(match.group(1)) - 1].strip(), template.body)
    return "\n\n".join(part for part in (template.header, body, template.footer) if part)


# -- configuration as code: flask templates import / export -------------------------------------------------------


def import_templates(raw: str, *, now: datetime) -> tuple[int, int]:
    """Register the templates of a JSON list (id, name, language, body; optionally business_number, category,
    header, footer, active). All or nothing; commits once. Returns (added, changed); importing the same file
    again changes nothing. Raises TemplateRefused naming the position of the first bad entry."""
    try:
        entries = json.loads(raw)
    except ValueError as error:
        raise TemplateRefused(f"The file is not JSON: {error}") from None
    if not isinstance(entries, list):
        raise TemplateRefused("The file must hold a JSON list of templates.")
    seen, added, changed = set(), 0, 0
    for position, entry in enumerate(entries, start=1):
        try:
            fields = checked(fields_from(entry))
            if fields.vambe_template_id in seen:
                raise TemplateRefused(f"the id {fields.vambe_template_id} appears twice in the file")
            seen.add(fields.vambe_template_id)
            existing = db.session.scalar(
                select(MessageTemplate).where(MessageTemplate.vambe_template_id == fields.vambe_template_id)
            )
            if existing is not None and fields_of(existing) == fields:
                continue
            store(fields, now=now, template=existing)
        except TemplateRefused as refusal:
            db.session.rollback()
            raise TemplateRefused(f"Entry {position}: {refusal}") from None
        added, changed = (added + 1, changed) if existing is None else (added, changed + 1)
    if added or changed:
        db.session.add(
            AuditEvent(occurred_at=now, kind=AuditKind.TEMPLATES_IMPORTED, details={"added": added, "changed": changed})
        )
    db.session.commit()
    return added, changed


def fields_from(entry: Any) -> TemplateFields:
    if not isinstance(entry, dict):
        raise TemplateRefused("each entry is an object with id, name, language and body")
    unknown = set(entry) - {
        "id",
        "name",
        "language",
        "body",
        "business_number",
        "category",
        "header",
        "footer",
        "active",
    }
    if unknown:
        raise TemplateRefused(f"unknown field(s): {', '.join(sorted(unknown))}")
    for name in ("id", "name", "language", "body"):
        if not isinstance(entry.get(name), str):
            raise TemplateRefused(f"{name} is required, as text")
    for name in ("business_number", "category", "header", "footer"):
        if entry.get(name) is not None and not isinstance(entry[name], str):
            raise TemplateRefused(f"{name} must be text")
    if not isinstance(entry.get("active", True), bool):
        raise TemplateRefused("active must be true or false")
    return TemplateFields(
        vambe_template_id=entry["id"],
        name=entry["name"],
        language=entry["language"],
        body=entry["body"],
        category=entry.get("category") or "",
        business_number_id=business_number_id(entry.get("business_number")),
        header=entry.get("header") or "",
        footer=entry.get("footer") or "",
        active=entry.get("active", True),
    )


def business_number_id(phone: str | None) -> int | None:
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    number = db.session.scalar(select(BusinessNumber).where(BusinessNumber.phone_number == digits))
    if number is None:
        raise TemplateRefused(f"business_number {phone} is not one of the account's (run `flask vambe numbers`)")
    return number.id


def fields_of(template: MessageTemplate) -> TemplateFields:
    return TemplateFields(
        template.vambe_template_id,
        template.name,
        template.language,
        template.body,
        template.category,
        template.business_number_id,
        template.header,
        template.footer,
        template.active,
    )


def export_templates() -> str:
    """Every registered template as the JSON list `flask templates import` reads."""
    entries = []
    for template in list_templates():
        entry = {"id": template.vambe_template_id, "name": template.name, "language": template.language}
        if template.business_number is not None:
            entry["business_number"] = template.business_number.phone_number
        entry |= {"category": template.category, "header": template.header, "body": template.body}
        entry |= {"footer": template.footer, "active": template.active}
        entries.append(entry)
    return json.dumps(entries, ensure_ascii=False, indent=2) + "\n"
