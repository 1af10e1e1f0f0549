"""WAHA webhook deliveries: the envelope, and what each one is (a guest writing, the hotel writing, a tick)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StringConstraints
from pydantic_core import PydanticCustomError

from concierge import phone
from concierge.config import MAX_SESSION_NAME_BYTES, WEBHOOK_CLOCK_SKEW_SECONDS
from concierge.conversations.ticks import ACK_ERROR, ACK_NAMES, ACK_PENDING, ACK_PLAYED, ACK_SERVER
from concierge.keys import split_message_id
from concierge.sending import waha

MESSAGE_EVENTS = frozenset({"message", "message.any"})
# WAHA sends the hotel account's own messages (fromMe) only on message.any.
ALL_MESSAGES_EVENT = "message.any"
SESSION_STATUS_EVENT = "session.status"
ACK_EVENT = "message.ack"
# WhatsApp caps a text at 65,536 characters; anything longer is not a real message.
MAX_TEXT_LENGTH = 65536
# Identifiers go into table keys (WAHA#<session>#<message id>), and DynamoDB limits a partition key to 2,048
# bytes, not characters: 512 emoji are 2,048 bytes. Counting UTF-8 bytes keeps every key we build far below it.
MAX_IDENTIFIER_BYTES = 512


def _utf8_bytes_at_most(limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            # A lone surrogate (JSON's "\ud800") has no UTF-8 form, so it cannot be part of a key.
            raise PydanticCustomError("invalid_unicode", "not valid Unicode text") from None
        if size > limit:
            raise PydanticCustomError(
                "string_too_many_bytes", "at most {max_bytes} bytes in UTF-8", {"max_bytes": limit}
            )
        return value

    return check


def utf8_text(max_bytes: int, min_length: int = 0) -> Any:
    """A string type limited in UTF-8 bytes, as keys and DynamoDB measure it, rather than in characters."""
    return Annotated[str, StringConstraints(min_length=min_length), AfterValidator(_utf8_bytes_at_most(max_bytes))]


Identifier = utf8_text(MAX_IDENTIFIER_BYTES, min_length=1)
SessionName = utf8_text(MAX_SESSION_NAME_BYTES, min_length=1)
StatusName = utf8_text(64, min_length=1)
EventId = utf8_text(MAX_IDENTIFIER_BYTES)
# Event time in milliseconds; a number only (WAHA's schema), never a boolean, NaN or infinity.
EventTime = StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]


class MessagePayload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: Identifier
    sender: Identifier = Field(alias="from")
    from_me: bool = Field(default=False, alias="fromMe")
    participant: Identifier | None = None
    body: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)
    has_media: bool = Field(default=False, alias="hasMedia")
    # WAHA's WAMedia ({url, mimetype, filename, error}); read leniently (guest_media): a file we cannot use
    # still leaves the message to store.
    media: Any = None
    data: dict[str, Any] | None = Field(default=None, alias="_data")


class HotelMessagePayload(MessagePayload):
    # For the hotel's own messages: on WEBJS `from` is the hotel's number and `to` the guest's chat.
    to: Identifier | None = None


class AckPayload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: Identifier
    sender: Identifier | None = Field(default=None, alias="from")
    # Required by WAHA's schema; absent here means "not said", and the lookup decides.
    from_me: bool | None = Field(default=None, alias="fromMe")
    ack: Annotated[StrictInt, Field(ge=ACK_ERROR, le=ACK_PLAYED)]


class WahaEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: EventId | None = None
    # When WAHA created the event (ms since the epoch); older WAHA versions leave it out.
    timestamp: EventTime | None = None
    event: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    session: SessionName
    payload: dict[str, Any] | None = None
    # The hotel's own account ({"id": "<number>@c.us", ...}); read leniently, only fromMe messages need it.
    me: Any = None


class SessionStatusPayload(BaseModel):
    model_config = ConfigDict(extra="allow")

    # Any name: a status WAHA adds later is still "not WORKING", which is what matters here.
    status: StatusName


# What we keep of a guest's file's description: WhatsApp's names and types are short; longer ones are cut.
MAX_MEDIA_NAME_CHARACTERS = 255
DEFAULT_MIMETYPE = "application/octet-stream"


@dataclass(frozen=True)
class GuestMedia:
    """A photo or file a guest sent, as WAHA described it."""

    mimetype: str
    filename: str | None
    # The file's path on WAHA (`/api/files/...`), to copy at once; None when there is nothing to copy.
    waha_file: str | None
    # Why there is nothing to copy (WAHA's own download failed, no URL): stored with the message, never retried.
    error: str | None = None


@dataclass(frozen=True)
class GuestMessage:
    """A guest's text (a photo's or file's caption), ready to be matched to a stay."""

    waha_session: str
    waha_message_id: str
    event: str
    phone_e164: str | None
    lid: str | None
    text: str
    has_media: bool
    media: GuestMedia | None = None


@dataclass(frozen=True)
class HotelMessage:
    """A message the hotel's own WhatsApp account wrote in a guest's chat: from its phone, WAHA's dashboard,
    or one of our own sends echoed back (`bare_id` tells those apart)."""

    waha_session: str
    waha_message_id: str
    bare_id: str
    event: str
    phone_e164: str | None
    lid: str | None
    text: str
    has_media: bool


@dataclass(frozen=True)
class Ack:
    """WhatsApp's news about a message the hotel sent: delivered to the phone, read, or failed."""

    waha_session: str
    bare_id: str
    ack: int
    # When WAHA reported it (ms since the epoch).
    at_ms: int


@dataclass(frozen=True)
class Ignored:
    reason: str


@dataclass(frozen=True)
class Stale:
    """A delivery whose envelope time is outside the replay window: refused, nothing stored."""

    reason: str


@dataclass(frozen=True)
class SessionStatus:
    """A WAHA session's new status, and when WAHA reported it (ms since the epoch)."""

    waha_session: str
    status: str
    at_ms: int


def screen(
    event: WahaEvent, served_sessions: Collection[str], max_age_hours: int, now_ms: int
) -> Ignored | Stale | None:
    """Why a delivery is not ours to process (another WAHA session, or too old to trust), or None.

    The envelope's `timestamp` is when WAHA created the event. A signed body stays valid forever, so
    only its time bounds a replay; the dedupe marker outlives the window (config.webhook_event_ttl_days).
    `payload.timestamp` is when the guest wrote, which can be long before a late delivery: not used here.
    """
    if event.session not in served_sessions:
        return Ignored("a WAHA session this stack does not serve")
    if event.timestamp is None:
        # Older WAHA versions: the dedupe marker still guards against repeats.
        return None
    if now_ms - event.timestamp > max_age_hours * 3_600_000:
        return Stale(f"the event is older than {max_age_hours} hours")
    if event.timestamp - now_ms > WEBHOOK_CLOCK_SKEW_SECONDS * 1000:
        return Stale("the event's time is ahead of this stack's clock")
    return None


def session_status(event: WahaEvent, now_ms: int) -> SessionStatus:
    """A session.status delivery's status; raises pydantic.ValidationError for a malformed payload."""
    payload = SessionStatusPayload.model_validate(event.payload or {})
    # Without an envelope time (older WAHA) the status is as recent as its arrival.
    at_ms = now_ms if event.timestamp is None else int(event.timestamp)
    return SessionStatus(waha_session=event.session, status=payload.status, at_ms=at_ms)


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


def _short_text(value: Any) -> str | None:
    return value[:MAX_MEDIA_NAME_CHARACTERS] if isinstance(value, str) and value.strip() else None


def guest_media(payload: MessagePayload) -> GuestMedia | None:
    """The file of a `hasMedia` message: where WAHA holds it, or why there is nothing to copy.

    Only the URL's path is kept: WAHA writes its URLs with its own WAHA_BASE_URL (`http://localhost:3000` unless
    set), which need not be how we reach it, and WAHA's key must never go to another host than WAHA_HOST.
    """
    if not payload.has_media:
        return None
    media = payload.media if isinstance(payload.media, dict) else {}
    mimetype = _short_text(media.get("mimetype")) or DEFAULT_MIMETYPE
    filename = _short_text(media.get("filename"))
    if media.get("error"):
        # WAHA's error object may say anything; a fixed reason keeps guests' data and noise out of the table.
        return GuestMedia(mimetype, filename, None, "WAHA could not download the file from WhatsApp")
    url = media.get("url")
    if not isinstance(url, str) or not url:
        return GuestMedia(mimetype, filename, None, "WAHA gave no file (media.url is null)")
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    if not waha.is_waha_file(path):
        return GuestMedia(mimetype, filename, None, "media.url is not a file WAHA serves under /api/files/")
    return GuestMedia(mimetype, filename, path)


def _me_id(event: WahaEvent) -> str | None:
    me = event.me
    return me.get("id") if isinstance(me, dict) and isinstance(me.get("id"), str) else None


def _hotel_chat(event: WahaEvent, payload: HotelMessagePayload, chat_in_id: str | None) -> str:
    """The guest's chat of a message the hotel wrote: the id names it on every engine that shapes ids so;
    otherwise WEBJS puts it in `to` (`from` is the hotel's own number) and the other engines in `from`."""
    if chat_in_id:
        return chat_in_id
    if payload.to and payload.sender == _me_id(event):
        return payload.to
    return payload.sender


def _hotel_message(event: WahaEvent) -> HotelMessage | Ignored:
    payload = HotelMessagePayload.model_validate(event.payload or {})
    chat_in_id, bare_id = split_message_id(payload.id)
    chat = _hotel_chat(event, payload, chat_in_id)
    chat_reason = _ignored_chat(chat)
    if chat_reason:
        return Ignored(chat_reason)
    text = payload.body or ""
    if not text.strip() and not payload.has_media:
        return Ignored("no text")
    e164 = phone.from_chat_id(chat)
    lid = None
    if e164 is None and chat.endswith("@lid"):
        e164 = _phone_in_data(payload.data)
        lid = None if e164 else chat
    return HotelMessage(
        waha_session=event.session,
        waha_message_id=payload.id,
        bare_id=bare_id,
        event=event.event,
        phone_e164=e164,
        lid=lid,
        text=text,
        has_media=payload.has_media,
    )


def classify(event: WahaEvent) -> GuestMessage | HotelMessage | Ignored:
    """Decides what a delivery is; raises pydantic.ValidationError for a malformed message payload."""
    if event.event not in MESSAGE_EVENTS:
        return Ignored(f"event {event.event}")
    payload = MessagePayload.model_validate(event.payload or {})
    if payload.from_me:
        if event.event != ALL_MESSAGES_EVENT:
            # WAHA sends the account's own messages on message.any only; this is not one to store.
            return Ignored("sent by the hotel's own account")
        return _hotel_message(event)
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
        media=guest_media(payload),
    )


def classify_ack(event: WahaEvent, now_ms: int) -> Ack | Ignored:
    """A message.ack delivery's news; raises pydantic.ValidationError for a malformed payload.

    PENDING and SERVER say nothing a SENT message does not already say, so they end here with no AWS call;
    so do acks of messages the hotel received and of group chats (we never write to groups).
    """
    payload = AckPayload.model_validate(event.payload or {})
    if payload.from_me is False:
        return Ignored("ack of a message the hotel received")
    chat_in_id, bare_id = split_message_id(payload.id)
    for chat in (chat_in_id, payload.sender):
        chat_reason = _ignored_chat(chat) if chat else None
        if chat_reason:
            return Ignored(chat_reason)
    if payload.ack in (ACK_PENDING, ACK_SERVER):
        return Ignored(f"ack {ACK_NAMES[payload.ack]} changes no status")
    at_ms = now_ms if event.timestamp is None else int(event.timestamp)
    return Ack(waha_session=event.session, bare_id=bare_id, ack=payload.ack, at_ms=at_ms)
