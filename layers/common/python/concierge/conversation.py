"""A guest writing to the hotel: their message stored once with its auto-reply, and the reply queued."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from concierge import keys, outbox, phone, store, templates
from concierge.config import settings

if TYPE_CHECKING:
    # Only for annotations: importing it would build the webhook's pydantic models in every importer.
    from concierge.webhook_events import GuestMessage

logger = Logger(child=True)


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    UNKNOWN_GUEST = "unknown_guest"
    NO_ACTIVE_SESSION = "no_active_session"


def _resolve_phone(message: GuestMessage) -> str | None:
    if message.phone_e164:
        return message.phone_e164
    if message.lid:
        # Imported here: only a hidden-sender delivery needs WAHA on the webhook's path.
        from concierge import waha

        try:
            chat = waha.client().phone_chat_id_for_lid(message.lid)
        except waha.WahaError:
            logger.warning("could not resolve a hidden (@lid) sender through WAHA")
            return None
        return phone.from_chat_id(chat) if chat else None
    return None


def receive(message: GuestMessage, attempts: int = 3) -> Outcome:
    """Stores the guest's text and the auto-reply once per WAHA message, and queues the reply.

    One read of two items (the phone's lookup: guest and active session; the delivery's dedupe
    marker: a redelivery is answered there), the reply's key queued, and one transaction whose first
    item creates the dedupe marker, so that two copies of one delivery racing each other still store
    once (the loser's queue record then finds no row, and the sender drops it). The reply is queued
    before the commit so that a committed reply is always in the queue or marked for the sweeper.
    The transaction also stamps the session's `last_message_at`, on condition that it is still
    active: a check-in that closes it meanwhile either wins (the message goes to the new stay) or
    must end the session no earlier than this message.
    """
    e164 = _resolve_phone(message)
    marker_key = keys.waha_event(message.waha_session, message.waha_message_id)
    phone_key = keys.phone(e164) if e164 else None
    found = store.get_many([marker_key, phone_key] if phone_key else [marker_key])
    if store.identity(marker_key) in found:
        logger.info("repeated WAHA delivery ignored")
        return Outcome.DUPLICATE
    guest = found.get(store.identity(phone_key)) if phone_key else None
    masked = phone.mask(e164 or "")
    if guest is None:
        logger.warning("message from an unknown phone number ignored", extra={"phone": masked})
        return Outcome.UNKNOWN_GUEST
    session_id = guest.get("active_session_id")
    if not session_id:
        logger.warning("message from a guest with no active session ignored", extra={"phone": masked})
        return Outcome.NO_ACTIVE_SESSION

    now = datetime.now(UTC)
    user_id = guest["user_id"]
    inbound = store.StoredMessage(
        user_id=user_id,
        message_id=str(uuid.uuid4()),
        session_id=session_id,
        role="User",
        text=message.text,
        created_at=store.iso(now),
        status=store.RECEIVED,
        extra={"waha_message_id": message.waha_message_id, "has_media": message.has_media},
    )
    reply_id = str(uuid.uuid4())
    # A microsecond later, so the reply always sorts after the message it answers.
    reply_at = store.iso(now + timedelta(microseconds=1))
    reply = store.StoredMessage(
        user_id=user_id,
        message_id=reply_id,
        session_id=session_id,
        role="System",
        text=templates.auto_reply(),
        created_at=reply_at,
        status=store.PENDING,
        chat_id=phone.chat_id(e164),
        queued=outbox.enqueue(keys.message(user_id, reply_at, reply_id)),
        extra={"kind": "auto_reply", "in_reply_to": inbound.message_id},
    )
    expires_at = int(now.timestamp()) + settings().webhook_event_ttl_days * 86400
    try:
        store.transact(
            [
                store.put_new(
                    {
                        **marker_key,
                        "type": "WahaDelivery",
                        "event": message.event,
                        "user_id": user_id,
                        "received_at": inbound.created_at,
                        "expires_at": expires_at,
                    }
                ),
                store.put_new(inbound.item()),
                store.put_new(reply.item()),
                store.update(
                    keys.session(user_id, session_id),
                    "SET last_message_at = :at",
                    {":at": reply.created_at, ":true": True},
                    "is_active = :true",
                ),
            ]
        )
    except store.TransactionConflict as conflict:
        if conflict.failed(0):
            logger.info("repeated WAHA delivery ignored", extra={"user_id": user_id})
            return Outcome.DUPLICATE
        if attempts <= 1:
            raise
        # A new check-in replaced the session between our read and write: store it in the new one.
        logger.warning("the guest's session changed while the message was stored", extra={"user_id": user_id})
        return receive(message, attempts - 1)
    logger.info("guest message stored and reply queued", extra={"user_id": user_id, "phone": masked})
    return Outcome.STORED
