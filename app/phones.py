"""Phone numbers, parsed with libphonenumber."""

import phonenumbers


class InvalidPhoneNumber(ValueError):
    """The text is not a phone number WhatsApp could reach."""


def to_e164(raw: str) -> str:
    """``raw`` in E.164 form with a leading ``+``.

    Vambe lists numbers as bare international digits ("56998389641"), so digits without a
    ``+`` are read as international too.
    """
    text = raw.strip()
    if text and not text.startswith("+"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as error:
        raise InvalidPhoneNumber(f"{raw!r} is not a phone number: {error}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhoneNumber(f"{raw!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
