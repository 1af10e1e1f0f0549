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
    """Stores the guest's text and the auto-reply once per WAHA message, then queues the reply.

    One read (phone -> guest and active session) and one transaction, whose first item is the
    delivery's dedupe marker: a redelivered event cancels the transaction and stores nothing.
    """
    e164 = _resolve_phone(message)
    guest = store.get(keys.phone(e164)) if e164 else None
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
    reply = store.StoredMessage(
        user_id=user_id,
        message_id=str(uuid.uuid4()),
        session_id=session_id,
        role="System",
        text=templates.auto_reply(),
        # A microsecond later, so the reply always sorts after the message it answers.
        created_at=store.iso(now + timedelta(microseconds=1)),
        status=store.PENDING,
        chat_id=phone.chat_id(e164),
        extra={"kind": "auto_reply", "in_reply_to": inbound.message_id},
    )
    expires_at = int(now.timestamp()) + settings().webhook_event_ttl_days * 86400
    try:
        store.transact(
            [
                store.put_new(
                    {
                        **keys.waha_event(message.waha_session, message.waha_message_id),
                        "type": "WahaDelivery",
                        "event": message.event,
                        "user_id": user_id,
                        "received_at": inbound.created_at,
                        "expires_at": expires_at,
                    }
                ),
                store.put_new(inbound.item()),
                store.put_new(reply.item()),
                store.condition_check(keys.phone(e164), "active_session_id = :session", {":session": session_id}),
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
    outbox.enqueue(reply.key)
    logger.info("guest message stored and reply queued", extra={"user_id": user_id, "phone": masked})
    return Outcome.STORED
