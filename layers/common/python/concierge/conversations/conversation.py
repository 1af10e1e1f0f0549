"""A guest writing to the hotel: their message stored once, with the bot's reply when one is due, and queued."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from concierge import keys, phone, store
from concierge.config import conversation_settings, settings
from concierge.conversations import auto_replies, stays
from concierge.conversations.business_hours import BusinessHours
from concierge.sending import outbox

if TYPE_CHECKING:
    # Only for annotations: importing it would build the webhook's pydantic models in every importer.
    from concierge.webhook.webhook_events import GuestMessage, HotelMessage

logger = Logger(child=True)


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    UNKNOWN_GUEST = "unknown_guest"
    NO_ACTIVE_SESSION = "no_active_session"


def _resolve_phone(message: GuestMessage | HotelMessage) -> str | None:
    if message.phone_e164:
        return message.phone_e164
    if message.lid:
        # Imported here: only a hidden-sender delivery needs WAHA on the webhook's path.
        from concierge.sending import waha

        try:
            chat = waha.client().phone_chat_id_for_lid(message.lid)
        except waha.WahaError:
            logger.warning("could not resolve a hidden (@lid) sender through WAHA")
            return None
        return phone.from_chat_id(chat) if chat else None
    return None


def policy() -> auto_replies.Policy:
    config = conversation_settings()
    hours = BusinessHours.parse(config.business_hours, config.hotel_timezone) if config.business_hours else None
    return auto_replies.Policy(cooldown=timedelta(minutes=config.auto_reply_cooldown_minutes), business_hours=hours)


def _find_stay(message: GuestMessage | HotelMessage) -> Outcome | tuple[dict[str, Any], str, str, keys.Key]:
    """The guest's active stay for a WAHA message, in one read with its dedupe marker; or why there is none."""
    e164 = _resolve_phone(message)
    marker_key = keys.waha_event(message.waha_session, message.waha_message_id)
    phone_key = keys.phone(e164) if e164 else None
    found = store.get_many([marker_key, phone_key] if phone_key else [marker_key])
    if store.identity(marker_key) in found:
        logger.info("repeated WAHA delivery ignored")
        return Outcome.DUPLICATE
    guest = found.get(store.identity(phone_key)) if phone_key else None
    masked = phone.mask(e164 or "")
    if guest is None or e164 is None:
        logger.warning("message with an unknown phone number ignored", extra={"phone": masked})
        return Outcome.UNKNOWN_GUEST
    session_id = guest.get("active_session_id")
    if not session_id:
        logger.warning("message of a guest with no active session ignored", extra={"phone": masked})
        return Outcome.NO_ACTIVE_SESSION
    return guest, e164, session_id, marker_key


RECEIVE_ATTEMPTS = 6


def receive(message: GuestMessage, attempts: int = RECEIVE_ATTEMPTS) -> Outcome:
    """Stores the guest's message once per WAHA message, with the bot's reply when one is due, and queues it.

    One read of two items (the phone's lookup: guest, active session and the bot's memory of the stay;
    the delivery's dedupe marker: a redelivery is answered there), the reply's key queued, and one
    transaction. Its first item creates the dedupe marker, so two copies of one delivery racing each
    other still store once. The reply is queued before the commit so that a committed reply is always in
    the queue or marked for the sweeper; a cancelled transaction leaves a queue record with no row, which
    the sender drops. The transaction stamps the session's last activity (condition: still active, so a
    check-in that closes it meanwhile either commits first, and the message goes to the new stay, or
    must end the session no earlier than this message) and, when the bot changes its memory (a reply
    sent, an opt-out), updates the lookup on condition that its state version is the one read: three
    lines arriving at once on three instances still get one auto-reply.
    """
    stay = _find_stay(message)
    if isinstance(stay, Outcome):
        return stay
    guest, e164, session_id, marker_key = stay
    masked = phone.mask(e164)

    now = datetime.now(UTC)
    user_id = guest["user_id"]
    state = auto_replies.ConversationState.of(guest)
    if attempts > 1:
        # A photo's caption is never a command (STOP, START): those are words a guest types on their own,
        # nor a question for the hotel's knowledge: a photo is for a person to look at.
        answer_first = _answering() and not message.has_media
        text = "" if message.has_media else message.text
        decision = auto_replies.decide(text, state, policy(), now, answer_first=answer_first)
    else:
        # Other messages of this guest kept changing the bot's memory under us: the message itself
        # must still be stored, so this last attempt stores it without a reply.
        logger.warning("storing a guest message without a reply after repeated conflicts")
        decision = auto_replies.Decision(None)
    inbound = store.StoredMessage(
        user_id=user_id,
        message_id=str(uuid.uuid4()),
        session_id=session_id,
        role="User",
        text=message.text,
        created_at=store.iso(now),
        status=store.RECEIVED,
        extra={
            "waha_message_id": message.waha_message_id,
            "has_media": message.has_media,
            "language": state.language,
        },
    )
    reply = _reply(decision.reply, decision.text, inbound, e164) if decision.reply and decision.text else None
    inbound, reply = _queue(message, inbound, reply, decision.to_answer)
    # A message sent for answering waits for staff only once the answering function says so.
    waiting_since = None if decision.to_answer else inbound.created_at
    actions = [
        store.put_new(_delivery_marker(message.event, user_id, marker_key, now)),
        store.put_new(inbound.item()),
        stays.activity(user_id, session_id, reply or inbound, guest_waiting_since=waiting_since),
    ]
    if reply is not None:
        actions.append(store.put_new(reply.item()))
    if decision.changes:
        actions.append(_remember(e164, session_id, state, decision.changes))
        if "opted_out" in decision.changes:
            actions.append(_opt_out_on_profile(user_id, bool(decision.changes["opted_out"]), inbound.created_at))
    try:
        store.transact(actions)
    except store.TransactionConflict as conflict:
        if conflict.failed(0):
            logger.info("repeated WAHA delivery ignored", extra={"user_id": user_id})
            return Outcome.DUPLICATE
        if attempts <= 1:
            raise
        # A new check-in replaced the session, or another message changed the bot's memory, between
        # our read and write: decide again on what is there now.
        logger.info("the guest's stay changed while the message was stored; retrying", extra={"user_id": user_id})
        # Jitter spreads the guest's racing messages apart.
        time.sleep(random.uniform(0, 0.005 * 2 ** (RECEIVE_ATTEMPTS - attempts)))  # noqa: S311 - not a secret
        return receive(message, attempts - 1)
    logger.info(
        "guest message stored",
        extra={"user_id": user_id, "phone": masked, "reply": decision.reply.value if decision.reply else None},
    )
    return Outcome.STORED


def _reply(kind: auto_replies.ReplyKind, text: str, inbound: store.StoredMessage, e164: str) -> store.StoredMessage:
    reply_id = str(uuid.uuid4())
    # A microsecond later, so the reply always sorts after the message it answers.
    reply_at = store.iso(datetime.strptime(inbound.created_at, store.ISO_FORMAT) + timedelta(microseconds=1))
    return store.StoredMessage(
        user_id=inbound.user_id,
        message_id=reply_id,
        session_id=inbound.session_id,
        role="System",
        text=text,
        created_at=reply_at,
        status=store.PENDING,
        chat_id=phone.chat_id(e164),
        extra={
            "kind": kind.value,
            "in_reply_to": inbound.message_id,
            # The sender marks that message seen before replying (concierge.sending.pacing), without reading its row.
            "in_reply_to_waha_id": inbound.extra["waha_message_id"],
            "language": inbound.extra["language"],
        },
    )


def _answering() -> bool:
    return conversation_settings().ai_answers and bool(settings().answer_queue_url)


def _queue(
    message: GuestMessage, inbound: store.StoredMessage, reply: store.StoredMessage | None, to_answer: bool
) -> tuple[store.StoredMessage, store.StoredMessage | None]:
    """The webhook's one SendMessage, before the commit: the message's key to the answer queue
    (concierge.answers), a photo's or file's copy job, which carries the reply's key to the outbound queue
    (concierge.sending.media), or else the reply's key itself. The rows as they must be written: the message or the
    reply marked for the sweeper when SQS refused, the file's state."""
    if to_answer:
        if outbox.enqueue(inbound.key, settings().answer_queue_url):
            return inbound, reply
        marker = {"outbox_pk": keys.UNANSWERED_OUTBOX, "outbox_sk": inbound.created_at}
        return replace(inbound, extra={**inbound.extra, **marker}), reply
    if message.media is None:
        queued = outbox.enqueue(reply.key) if reply is not None else False
    else:
        # Imported here: only messages with a file need it.
        from concierge.sending import media

        copy = message.media.waha_file is not None
        queued = media.enqueue(inbound.key, reply.key if reply else None) if copy else False
        if not copy and reply is not None:
            queued = outbox.enqueue(reply.key)
        inbound = replace(inbound, extra={**inbound.extra, "media": media.described(message.media, queued)})
    return inbound, replace(reply, queued=queued) if reply is not None else None


def _remember(e164: str, session_id: str, state: auto_replies.ConversationState, changes: dict[str, Any]) -> dict:
    """The lookup's share: the bot's new memory, only if nobody changed it since we read it."""
    sets = ["state_version = :next"] + [f"{name} = :{name}" for name in changes]
    values = {
        ":next": state.version + 1,
        ":session": session_id,
        **{f":{name}": value for name, value in changes.items()},
    }
    if state.version:
        condition = "active_session_id = :session AND state_version = :seen"
        values[":seen"] = state.version
    else:
        condition = "active_session_id = :session AND attribute_not_exists(state_version)"
    return store.update(keys.phone(e164), "SET " + ", ".join(sets), values, condition)


def _opt_out_on_profile(user_id: str, opted_out: bool, at: str) -> dict:
    # The choice belongs to the guest: kept on the profile too, so that it outlives this phone's lookup.
    return store.update(
        keys.user(user_id),
        "SET opted_out = :opted_out, opted_out_changed_at = :at",
        {":opted_out": opted_out, ":at": at},
        "attribute_exists(pk)",
    )


# --- the hotel writing from its own WhatsApp -------------------------------------------------------


class HotelOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    UNKNOWN_GUEST = "unknown_guest"
    NO_ACTIVE_SESSION = "no_active_session"
    # WAHA echoes our own sends on message.any too: they are stored already.
    OUR_OWN_SEND = "ignored"

    @property
    def reason(self) -> str | None:
        return "one of our own sends, echoed by WAHA" if self is HotelOutcome.OUR_OWN_SEND else None


def record_from_hotel(message: HotelMessage, attempts: int = 3) -> HotelOutcome:
    """Stores a message the hotel wrote from its own WhatsApp (phone, WAHA's dashboard) as staff's, once.

    Our own sends come back the same way, so first one Query on the `waha_ids` index by the message's
    bare id: found, it is an echo and nothing is written. Then, as for a guest's message, one read of the
    dedupe marker and the phone's lookup, and one transaction: the marker (condition: new) with the staff
    message, the session's activity and the handoff (staff.record_hotel_message). Nothing is queued or
    answered: the message is already in WhatsApp, and the bot never replies to the hotel.
    """
    # Imported here: of the webhook's flows, only the hotel's own messages need these.
    from concierge.conversations import ticks

    if ticks.find_sent(message.bare_id) is not None:
        logger.info("our own message, echoed by WAHA, ignored")
        return HotelOutcome.OUR_OWN_SEND
    return _store_hotel_message(message, attempts)


def _store_hotel_message(message: HotelMessage, attempts: int) -> HotelOutcome:
    from concierge.conversations import staff

    stay = _find_stay(message)
    if isinstance(stay, Outcome):
        return HotelOutcome(stay.value)
    guest, e164, session_id, marker_key = stay
    masked = phone.mask(e164)
    now = datetime.now(UTC)
    user_id = guest["user_id"]
    actions = [
        store.put_new(_delivery_marker(message.event, user_id, marker_key, now)),
        *staff.record_hotel_message(user_id, session_id, e164, message.text, message.waha_message_id, now),
    ]
    try:
        store.transact(actions)
    except store.TransactionConflict as conflict:
        if conflict.failed(0):
            logger.info("repeated WAHA delivery ignored", extra={"user_id": user_id})
            return HotelOutcome.DUPLICATE
        if attempts <= 1:
            raise
        # The stay changed between our read and write (a check-in, a check-out): look again.
        logger.info("the guest's stay changed while the hotel's message was stored; retrying")
        return _store_hotel_message(message, attempts - 1)
    logger.info("hotel message stored as staff's", extra={"user_id": user_id, "phone": masked})
    return HotelOutcome.STORED


def _delivery_marker(event: str, user_id: str, marker_key: keys.Key, now: datetime) -> dict[str, Any]:
    """The WahaDelivery item that makes a WAHA message stored once, however often WAHA delivers it."""
    return {
        **marker_key,
        "type": "WahaDelivery",
        "event": event,
        "user_id": user_id,
        "received_at": store.iso(now),
        "expires_at": int(now.timestamp()) + settings().webhook_event_ttl_days * 86400,
    }
