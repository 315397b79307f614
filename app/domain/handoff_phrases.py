"""The words with which customers ask for a person, kept by admins: a message containing one queues its
conversation for a human (see app/domain/handoffs.py)."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.domain.handoffs import words_of
from app.extensions import db
from app.i18n import lazy_gettext as _l
from app.models import AuditEvent, AuditKind, HandoffPhrase, User

LANGUAGES = {"es": "Spanish", "pt": "Portuguese", "en": "English"}
MIN_LENGTH, MAX_LENGTH = 2, 100


class PhraseRefused(ValueError):
    """The phrase cannot be added as given."""


def list_phrases() -> list[HandoffPhrase]:
    return list(db.session.scalars(select(HandoffPhrase).order_by(HandoffPhrase.language, HandoffPhrase.folded)))


def add_phrase(language: str, phrase: str, actor: User, *, now: datetime) -> HandoffPhrase:
    """Add ``phrase`` to the list for ``language``; commits, with its audit event."""
    if language not in LANGUAGES:
        raise PhraseRefused(_l("Choose a language: %(languages)s.", languages=", ".join(LANGUAGES.values())))
    phrase = " ".join(phrase.split())
    if not MIN_LENGTH <= len(phrase) <= MAX_LENGTH:
        raise PhraseRefused(_l("A phrase has %(low)d to %(high)d characters.", low=MIN_LENGTH, high=MAX_LENGTH))
    if not phrase.isprintable():
        raise PhraseRefused(_l("A phrase cannot hold control characters."))
    folded = words_of(phrase)
    if not any(character.isalpha() for character in folded):
        raise PhraseRefused(_l("A phrase needs words: punctuation or numbers alone match nothing."))
    added = HandoffPhrase(language=language, phrase=phrase, folded=folded, created_at=now, created_by=actor)
    db.session.add(added)
    audit(AuditKind.HANDOFF_PHRASE_ADDED, added, actor, now)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise PhraseRefused(
            _l("“%(phrase)s” is already in the %(language)s list.", phrase=phrase, language=LANGUAGES[language])
        ) from None
    return added


def remove_phrase(phrase: HandoffPhrase, actor: User, *, now: datetime) -> None:
    """Take ``phrase`` off the list; commits, with its audit event."""
    audit(AuditKind.HANDOFF_PHRASE_REMOVED, phrase, actor, now)
    db.session.delete(phrase)
    db.session.commit()


def audit(kind: AuditKind, phrase: HandoffPhrase, actor: User, now: datetime) -> None:
    db.session.add(
        AuditEvent(
            occurred_at=now, kind=kind, actor=actor, details={"language": phrase.language, "phrase": phrase.phrase}
        )
    )
