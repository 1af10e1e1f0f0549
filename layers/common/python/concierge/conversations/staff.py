"""The hotel's side of a conversation: staff replies (and the handoff they start), handing back to the bot,
and check-out.

A staff reply is stored with role `Staff` and its author, sent like any message, answers whoever was
waiting, and keeps the bot quiet for HANDOFF_MINUTES after it (`handoff_until`, on the session for the
list and on the phone's lookup, where the webhook reads it). Routes name a session by its id; the
`SessionRef` item says whose partition holds it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from concierge import keys, phone, store, templates
from concierge.config import conversation_settings
from concierge.conversations import stays
from concierge.conversations.history import message_view
from concierge.sending import outbox

logger = Logger(child=True)

MAX_STAFF_TEXT_CHARACTERS = 4096
# WhatsApp shows at most this much of a photo's or file's caption.
MAX_CAPTION_CHARACTERS = 1024
DEFAULT_AUTHOR = "API"
WHATSAPP_AUTHOR = "WhatsApp"
INVALID_PHONE_REASON = "invalid phone number"
CLOSE_ATTEMPTS = 3


class UnknownSession(LookupError):
    """No session has this id."""


class ClosedSession(Exception):
    """The session has ended: staff cannot write in it any more."""


class UnknownGuest(LookupError):
    """No guest has this user id."""


def _session_ref(session_id: str) -> dict[str, Any]:
    ref = store.get(keys.session_ref(session_id))
    if ref is None:
        raise UnknownSession(session_id)
    return ref


def _bump_lookup(e164: str, session_id: str, expression: str, values: dict[str, Any]) -> dict[str, Any]:
    """The phone's lookup share of a staff action; it changes the bot's memory, so its version moves on."""
    return store.update(
        keys.phone(e164),
        "SET state_version = if_not_exists(state_version, :zero) + :one" + expression,
        {":zero": 0, ":one": 1, ":session": session_id, **values},
        "active_session_id = :session",
    )


def reply(session_id: str, text: str, author: str, media: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stores and queues a staff message in an open session; raises UnknownSession or ClosedSession.

    `media` ({url, mimetype, filename?}): a photo or file WAHA fetches from `url` and sends with `text` as
    its caption (sendImage for image/*, sendFile otherwise).
    """
    ref = _session_ref(session_id)
    for _ in range(CLOSE_ATTEMPTS):
        try:
            return _store_reply(ref, session_id, text, author, datetime.now(UTC), media)
        except _LaterMessage:
            continue  # a guest's message got in first: write again, after it
    raise ClosedSession(session_id)


class _LaterMessage(Exception):
    """A message stamped later than ours was stored in the session meanwhile."""


def _store_reply(
    ref: dict[str, Any], session_id: str, text: str, author: str, now: datetime, media: dict[str, Any] | None
) -> dict[str, Any]:
    user_id, e164 = ref["user_id"], ref.get("phone_e164")
    created_at = store.iso(now)
    message_id = str(uuid.uuid4())
    handoff_until = store.iso(now + timedelta(minutes=conversation_settings().handoff_minutes))
    message = store.StoredMessage(
        user_id=user_id,
        message_id=message_id,
        session_id=session_id,
        role="Staff",
        text=text,
        created_at=created_at,
        status=store.PENDING if e164 else store.FAILED,
        chat_id=phone.chat_id(e164) if e164 else None,
        queued=outbox.enqueue(keys.message(user_id, created_at, message_id)) if e164 else False,
        extra={
            "kind": "staff",
            "author": author,
            **({"media": media} if media else {}),
            **({} if e164 else {"last_error": INVALID_PHONE_REASON}),
        },
    )
    actions = [
        stays.activity(user_id, session_id, message, staff_answered=True, extra_sets={"handoff_until": handoff_until}),
        store.put_new(message.item()),
    ]
    if e164:
        actions.append(_bump_lookup(e164, session_id, ", handoff_until = :until", {":until": handoff_until}))
    try:
        store.transact(actions)
    except store.TransactionConflict as conflict:
        if conflict.failed(0) and stays.still_open(conflict, 0):
            raise _LaterMessage from conflict
        raise ClosedSession(session_id) from conflict
    logger.info("staff reply stored", extra={"user_id": user_id, "session_id": session_id})
    return message_view(message.item())


def resolve(session_id: str) -> dict[str, Any]:
    """Hands the conversation back to the bot at once: no handoff, nobody waiting."""
    ref = _session_ref(session_id)
    user_id, e164 = ref["user_id"], ref.get("phone_e164")
    actions = [
        store.update(
            keys.session(user_id, session_id),
            "REMOVE handoff_until, waiting_since, open_request",
            {":true": True},
            "is_active = :true",
        )
    ]
    if e164:
        actions.append(_bump_lookup(e164, session_id, " REMOVE handoff_until", {}))
    try:
        store.transact(actions)
    except store.TransactionConflict as conflict:
        raise ClosedSession(session_id) from conflict
    logger.info("conversation handed back to the bot", extra={"session_id": session_id})
    return {"session_id": session_id, "user_id": user_id, "handoff": False}


def record_hotel_message(
    user_id: str, session_id: str, e164: str, text: str, waha_message_id: str, now: datetime
) -> list[dict[str, Any]]:
    """The actions that store a message the hotel wrote from its own WhatsApp (not through us) as staff's.

    It answers the guest and starts the handoff, like a staff reply; it is already sent, so nothing is queued.
    """
    handoff_until = store.iso(now + timedelta(minutes=conversation_settings().handoff_minutes))
    message = store.StoredMessage(
        user_id=user_id,
        message_id=str(uuid.uuid4()),
        session_id=session_id,
        role="Staff",
        text=text,
        created_at=store.iso(now),
        status=store.SENT,
        chat_id=phone.chat_id(e164),
        extra={"kind": "staff", "author": WHATSAPP_AUTHOR, "waha_message_id": waha_message_id},
    )
    return [
        store.put_new(message.item()),
        stays.activity(user_id, session_id, message, staff_answered=True, extra_sets={"handoff_until": handoff_until}),
        _bump_lookup(e164, session_id, ", handoff_until = :until", {":until": handoff_until}),
    ]


def checkout(user_id: str) -> dict[str, Any]:
    """Ends the guest's active session and queues a farewell (not to opted-out guests); idempotent.

    A guest whose stay is already closed gets that closed session back and nothing is sent.
    """
    at_least: str | None = None
    for _ in range(CLOSE_ATTEMPTS):
        sessions = store.query_sessions(user_id)
        if not sessions:
            raise UnknownGuest(user_id)
        active = next((session for session in sessions if session.get("is_active")), None)
        if active is None:
            return stays.summary(max(sessions, key=lambda session: session.get("start", "")))
        try:
            return _close_with_farewell(active, datetime.now(UTC), at_least)
        except _StayMoved as moved:
            at_least = moved.at_least or at_least
    raise ClosedSession(user_id)


class _StayMoved(Exception):
    def __init__(self, at_least: str | None) -> None:
        super().__init__("the session changed while it was being closed")
        self.at_least = at_least


def _close_with_farewell(session: dict[str, Any], now: datetime, at_least: str | None) -> dict[str, Any]:
    user_id, session_id = session["user_id"], session["session_id"]
    e164 = session.get("phone_e164")
    lookup = store.get(keys.phone(e164), consistent=True) if e164 else None
    holds_phone = lookup is not None and lookup.get("active_session_id") == session_id
    opted_out = bool(holds_phone and lookup and lookup.get("opted_out"))
    close = stays.close(user_id, session_id, session["start"], now, at_least)
    actions = [close]
    if holds_phone and e164:
        actions.append(stays.release_phone(e164, session_id))
    if e164 and not opted_out:
        created_at = store.iso(now)
        message_id = str(uuid.uuid4())
        farewell = store.StoredMessage(
            user_id=user_id,
            message_id=message_id,
            session_id=session_id,
            role="System",
            text=templates.farewell(session.get("guest_name") or "", session.get("language") or "id"),
            created_at=created_at,
            status=store.PENDING,
            chat_id=phone.chat_id(e164),
            queued=outbox.enqueue(keys.message(user_id, created_at, message_id)),
            extra={"kind": "farewell", "language": session.get("language") or "id"},
        )
        actions.append(store.put_new(farewell.item()))
    try:
        store.transact(actions)
    except store.TransactionConflict as conflict:
        raise _StayMoved(stays.later_end(conflict.old_item(0)) if conflict.failed(0) else None) from conflict
    values = close["Update"]["ExpressionAttributeValues"]
    logger.info("guest checked out", extra={"user_id": user_id, "session_id": session_id})
    return stays.summary(
        {
            **session,
            "is_active": False,
            "end": values[":end"]["S"],
            "duration": int(values[":duration"]["N"]),
        }
    )


def close_due_sessions(now: datetime | None = None) -> int:
    """Closes every open session whose close_at has passed (no farewell); returns how many closed."""
    now = now or datetime.now(UTC)
    closed = 0
    for session in store.query_sessions_due(store.iso(now)):
        user_id, session_id, e164 = session["user_id"], session["session_id"], session.get("phone_e164")
        close = stays.close(user_id, session_id, session["start"], now, session.get("last_message_at"))
        actions = [close, stays.release_phone(e164, session_id)] if e164 else [close]
        try:
            store.transact(actions)
        except store.TransactionConflict:
            if not e164:
                continue
            # The lookup no longer names this session (it moved on): close the session alone.
            try:
                store.transact([close])
            except store.TransactionConflict:
                continue
        closed += 1
    if closed:
        logger.info("sessions closed by their close_at", extra={"closed": closed})
    return closed
