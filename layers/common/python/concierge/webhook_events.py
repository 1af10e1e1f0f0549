"""WAHA webhook deliveries: the envelope, and which of them are a guest writing to the hotel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from concierge import phone

MESSAGE_EVENTS = frozenset({"message", "message.any"})
# WhatsApp caps a text at 65,536 characters; anything longer is not a real message.
MAX_TEXT_LENGTH = 65536

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class MessagePayload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: Identifier
    sender: Identifier = Field(alias="from")
    from_me: bool = Field(default=False, alias="fromMe")
    participant: str | None = Field(default=None, max_length=512)
    body: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)
    has_media: bool = Field(default=False, alias="hasMedia")
    data: dict[str, Any] | None = Field(default=None, alias="_data")


class WahaEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = Field(default=None, max_length=512)
    event: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    session: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    payload: dict[str, Any] | None = None


@dataclass(frozen=True)
class GuestMessage:
    """A guest's text, ready to be matched to a stay."""

    waha_session: str
    waha_message_id: str
    event: str
    phone_e164: str | None
    lid: str | None
    text: str
    has_media: bool


@dataclass(frozen=True)
class Ignored:
    reason: str


def _ignored_chat(chat: str) -> str | None:
    if chat.endswith("@g.us"):
        return "group chat"
    if chat == "status@broadcast" or chat.endswith("@broadcast"):
        return "status broadcast"
    if chat.endswith("@newsletter"):
        return "channel"
    return None


def _phone_in_data(data: dict[str, Any] | None) -> str | None:
    # Newer engines put the real number beside a hidden @lid sender, as ...@s.whatsapp.net.
    key = (data or {}).get("key")
    if not isinstance(key, dict):
        return None
    for field in ("senderPn", "remoteJidAlt", "participantPn"):
        value = key.get(field)
        if isinstance(value, str):
            found = phone.from_chat_id(value)
            if found:
                return found
    return None


def classify(event: WahaEvent) -> GuestMessage | Ignored:
    """Decides what a delivery is; raises pydantic.ValidationError for a malformed message payload."""
    if event.event not in MESSAGE_EVENTS:
        return Ignored(f"event {event.event}")
    payload = MessagePayload.model_validate(event.payload or {})
    if payload.from_me:
        return Ignored("sent by the hotel's own account")
    chat_reason = _ignored_chat(payload.sender)
    if chat_reason:
        return Ignored(chat_reason)
    if payload.participant and payload.participant != payload.sender:
        return Ignored("group participant")
    text = payload.body or ""
    if not text.strip() and not payload.has_media:
        return Ignored("no text")
    e164 = phone.from_chat_id(payload.sender)
    lid = None
    if e164 is None and payload.sender.endswith("@lid"):
        e164 = _phone_in_data(payload.data)
        lid = None if e164 else payload.sender
    return GuestMessage(
        waha_session=event.session,
        waha_message_id=payload.id,
        event=event.event,
        phone_e164=e164,
        lid=lid,
        text=text,
        has_media=payload.has_media,
    )
