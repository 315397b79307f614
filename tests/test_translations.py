"""Every user-facing string is translatable, and every catalog translates all of them.

A template may show text only through a translation call; each catalog (Spanish, Brazilian Portuguese) has a
translation for every message, none fuzzy, and its compiled .mo matches its .po."""

import re
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
TRANSLATIONS = ROOT / "app" / "translations"
LOCALES = ["es", "pt_BR"]

JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
TRANS_BLOCK = re.compile(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}", re.S)
# A tag or an expression, up to its real end: quoted strings may hold "}}" ("{{1}}" in a template's example).
JINJA_BLOCK = re.compile(
    r"""\{%(?:[^"'%]|"[^"]*"|'[^']*'|%(?!\}))*%\}|\{\{(?:[^"'}]|"[^"]*"|'[^']*'|\}(?!\}))*\}\}""", re.S
)
SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1>", re.S | re.I)
TAG = re.compile(r"<[^>]*>", re.S)
# Attributes whose value a person reads (or hears).
READ_ATTRIBUTES = re.compile(r'\b(title|placeholder|aria-label|alt|aria-description|hx-confirm)="([^"]*)"', re.I)
ENTITY = re.compile(r"&[a-z]+;|&#\d+;")
# A string literal inside a Jinja expression that reads as words: capitalised, or with a space between letters.
WORDS_LITERAL = re.compile(r"""(?<![\w.])(["'])((?:(?!\1).)*?[A-Za-z](?:(?!\1).)*?)\1""")
NAMES = {"Handoff", "Vambe", "WhatsApp"}  # the product's and its partners' names read the same in every language
TRANSLATING_CALL = re.compile(r"(?:\b_|\bgettext|\bngettext)\(\s*$")
NOT_WORDS = re.compile(r"^[%{]|^[a-z0-9_.\-/:#\[\]= ]*$|^[A-Z_]+$")


def visible_text(source: str) -> list[str]:
    """What a page shows of ``source`` that is not made by a translation call: text between tags, and the
    values of read attributes."""
    source = TRANS_BLOCK.sub("", JINJA_COMMENT.sub("", source))
    source = SCRIPT_OR_STYLE.sub("", source)
    found = []
    for match in READ_ATTRIBUTES.finditer(source):
        value = JINJA_BLOCK.sub("", match.group(2))
        if re.search(r"[A-Za-zÀ-ÿ]", ENTITY.sub("", value)):
            found.append(f'{match.group(1)}="{match.group(2)}"')
    text = TAG.sub(" ", JINJA_BLOCK.sub(" ", source))
    chunks = (chunk.strip() for chunk in re.split(r"\s{2,}|\n", ENTITY.sub(" ", text)))
    return found + [chunk for chunk in chunks if re.search(r"[A-Za-zÀ-ÿ]{2}", chunk) and chunk not in NAMES]


def untranslated_literals(source: str) -> list[str]:
    """String literals in Jinja expressions that read as words and are not the argument of a translation call."""
    found = []
    for block in JINJA_BLOCK.finditer(JINJA_COMMENT.sub("", source)):
        code = block.group(0)
        for literal in WORDS_LITERAL.finditer(code):
            words = literal.group(2)
            if (
                words in NAMES
                or NOT_WORDS.search(words)
                or not (words[:1].isupper() or re.search(r"[A-Za-z] [A-Za-z]", words))
            ):
                continue
            if TRANSLATING_CALL.search(code[: literal.start()]):
                continue
            found.append(words)
    return found


def template_files() -> list[Path]:
    return sorted(TEMPLATES.rglob("*.html"))


@pytest.mark.parametrize("path", template_files(), ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_templates_show_text_only_through_translation_calls(path):
    source = path.read_text(encoding="utf-8")
    assert visible_text(source) == [], "text outside a translation call"
    assert untranslated_literals(source) == [], "words in an expression, outside a translation call"


def test_the_checker_catches_what_it_should():
    assert visible_text("<p>Hello</p>") == ["Hello"]
    assert visible_text('<input placeholder="Search">') == ['placeholder="Search"']
    assert visible_text("<p>{{ _('Hello') }} · {{ count }}</p>") == []
    assert visible_text("<p>{% trans %}Read <a href='#'>this</a>{% endtrans %}</p>") == []
    assert untranslated_literals("{{ 'Closed' if x else _('Open') }}") == ["Closed"]
    assert untranslated_literals("{{ url_for('inbox.index', scope='waiting') }}") == []


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_is_translated_and_none_is_fuzzy(locale):
    with (TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=locale)
    missing = [m.id for m in catalog if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert missing == [] and fuzzy == []
    with (TRANSLATIONS / "messages.pot").open("rb") as pot:
        template = read_po(pot)
    assert {m.id for m in template if m.id} <= {m.id for m in catalog if m.id}, "run pybabel update"


def key(message_id) -> str | tuple:
    """A message's id as one value: a plural message's (singular, plural) pair is a list in a compiled catalog."""
    return tuple(message_id) if isinstance(message_id, list | tuple) else message_id


@pytest.mark.parametrize("locale", LOCALES)
def test_the_compiled_catalog_matches_its_source(locale):
    folder = TRANSLATIONS / locale / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as po:
        source = {
            (m.context, key(m.id)): tuple(m.string) if isinstance(m.id, tuple) else m.string
            for m in read_po(po)
            if m.id
        }
    with (folder / "messages.mo").open("rb") as mo:
        compiled = {
            (m.context, key(m.id)): tuple(m.string) if isinstance(m.id, list | tuple) else m.string
            for m in read_mo(mo)
            if m.id
        }
    assert compiled == source, "run pybabel compile -d app/translations"
