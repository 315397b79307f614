"""Bringing Vambe's view of the account into Handoff's store."""

from sqlalchemy import select

from app.extensions import db
from app.models import BusinessNumber
from app.vambe import VambeClient


def sync_business_numbers(client: VambeClient) -> list[BusinessNumber]:
    """Record the account's WhatsApp numbers from Vambe's channels endpoint; commits."""
    numbers = []
    for channel in client.list_whatsapp_channels():
        number = db.session.scalar(select(BusinessNumber).where(BusinessNumber.phone_number == channel.phone_number))
        if number is None:
            number = BusinessNumber(phone_number=channel.phone_number)
            db.session.add(number)
        number.vambe_channel_id = channel.vambe_channel_id
        number.name = channel.name
        numbers.append(number)
    db.session.commit()
    return numbers
