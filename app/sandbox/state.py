"""The sandbox's own record of "Vambe's" world, kept in database tables so every worker shares it.

These tables stand in for Vambe's side of the wire; Handoff's own store never reads them.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db_types import UTCDateTime
from app.extensions import db


class SandboxChannel(db.Model):
    __tablename__ = "sandbox_channels"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    phone_number: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))

    def as_json(self) -> dict:
        return {"id": self.id, "phone_number": self.phone_number, "name": self.name, "client_id": SANDBOX_CLIENT_ID}


class SandboxContact(db.Model):
    __tablename__ = "sandbox_contacts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32), unique=True)  # international digits, no "+"
    channel_id: Mapped[int] = mapped_column(ForeignKey("sandbox_channels.id"))
    assistant_paused: Mapped[bool] = mapped_column(default=False)
    # As Vambe's analytics name it: "ai-attended", "ai-away", "unattended" (waiting for a human), "attended".
    chat_status: Mapped[str] = mapped_column(String(16), default="ai-attended", server_default="ai-attended")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    channel: Mapped[SandboxChannel] = relationship()


class SandboxMessage(db.Model):
    __tablename__ = "sandbox_messages"
    __table_args__ = (Index("ix_sandbox_messages_contact_created", "contact_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("sandbox_contacts.id"))
    direction: Mapped[str] = mapped_column(String(8))  # "INBOUND" | "OUTBOUND", as Vambe spells it
    sender: Mapped[str] = mapped_column(String(16))  # "customer" | "assistant" | "api"
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # "sent", "delivered", "read" or "failed", as WhatsApp reports
    failure: Mapped[str | None] = mapped_column(Text)  # WhatsApp's error, for a failed one
    reply_message_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    contact: Mapped[SandboxContact] = relationship()


SANDBOX_CLIENT_ID = "00000000-0000-4000-8000-00000000c11e"


@dataclass(frozen=True)
class SandboxTemplate:
    name: str
    language: str
    category: str
    body: str


# The account's templates as Meta approved them: Vambe's side knows them; `flask sandbox seed` registers them in
# Handoff, as an admin would copy a real account's.
SANDBOX_TEMPLATES = {
    "2f0c6d1e-7a55-4c1b-9d3e-5b7a1c000001": SandboxTemplate(
        name="seguimiento_pedido",
        language="es",
        category="UTILITY",
        body="Hola {{1}}, te escribimos por tu pedido {{2}}. Responde este mensaje y seguimos la conversación.",
    ),
    "2f0c6d1e-7a55-4c1b-9d3e-5b7a1c000002": SandboxTemplate(
        name="retomar_consulta",
        language="es",
        category="UTILITY",
        body="Hola {{1}}, soy {{2}} del equipo de atención. Quedó pendiente tu consulta: ¿la retomamos?",
    ),
}
