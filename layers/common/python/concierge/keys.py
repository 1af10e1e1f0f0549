"""Every key of the single table, built in one place (docs/architecture.md lists the item types)."""

from __future__ import annotations

Key = dict[str, str]


def phone(e164: str) -> Key:
    return {"pk": f"PHONE#{e164}", "sk": "PHONE"}


def user(user_id: str) -> Key:
    return {"pk": f"USER#{user_id}", "sk": "PROFILE"}


def checkin(user_id: str, checkin_id: str) -> Key:
    return {"pk": f"USER#{user_id}", "sk": f"CHECKIN#{checkin_id}"}


SESSION_PREFIX = "SESSION#"


def session(user_id: str, session_id: str) -> Key:
    return {"pk": f"USER#{user_id}", "sk": f"{SESSION_PREFIX}{session_id}"}


MESSAGE_PREFIX = "MSG#"


def message(user_id: str, created_at: str, message_id: str) -> Key:
    # created_at first: a query on the user's partition returns the conversation in order.
    return {"pk": f"USER#{user_id}", "sk": f"{MESSAGE_PREFIX}{created_at}#{message_id}"}


def user_partition(user_id: str) -> str:
    return f"USER#{user_id}"


def waha_event(waha_session: str, message_id: str) -> Key:
    return {"pk": f"WAHA#{waha_session}#{message_id}", "sk": "EVENT"}


def registration_request(idempotency_key: str) -> Key:
    return {"pk": f"REGISTRATION#{idempotency_key}", "sk": "REGISTRATION"}


# Outbox index partition of messages that never reached the queue (see `outbox`).
UNQUEUED_OUTBOX = "UNQUEUED"
# The same index for guests' messages whose answer job never reached the answer queue (concierge.answers).
UNANSWERED_OUTBOX = "UNANSWERED"

# closed_sessions index partition: sessions whose messages still need their retention stamp.
CLOSED_SESSIONS = "CLOSED"


def erasure(user_id: str) -> Key:
    # What an erased guest leaves in their partition: counts only, so a repeated erase still answers 204.
    return {"pk": f"USER#{user_id}", "sk": "ERASED"}


def messages_between(start: str, end: str) -> tuple[str, str]:
    """Sort-key bounds (inclusive) of the messages created from `start` to `end` in a user's partition."""
    # "~" sorts after "#": a message created exactly at `end` (MSG#<end>#<id>) is still inside.
    return f"{MESSAGE_PREFIX}{start}", f"{MESSAGE_PREFIX}{end}~"


def waha_session_status(waha_session: str) -> Key:
    # One item per WAHA session, overwritten by each newer status: the health answer reads them by key.
    return {"pk": f"WAHA_SESSION#{waha_session}", "sk": "STATUS"}


# open_sessions index partition: every active chat session, sorted by its last activity.
OPEN_SESSIONS = "OPEN"


def session_ref(session_id: str) -> Key:
    # Routes name a session by its id alone; this item says whose partition holds it.
    return {"pk": f"SESSION#{session_id}", "sk": "REF"}


def outbound_waha_id(message_id: str) -> str:
    """The id we ask WAHA to give an outbound message (and the waha_ids index key): stable across retries."""
    return message_id.replace("-", "").upper()


# The first part of an id that names its chat: whether the account sent the message.
_ID_DIRECTIONS = ("true", "false")


def split_message_id(waha_id: str) -> tuple[str | None, str]:
    """The chat a WAHA message id names (None when it names none) and the bare WhatsApp id inside it.

    The bare id is the `waha_ids` index key: acks and echoes are matched by it, and the sender stores
    WAHA's own id in this form when WAHA answers with another than the one we asked for.

    WEBJS and WPP write `<fromMe>_<chat>_<id>`, followed by `_<participant>` in groups; NOWEB and GOWS
    send the bare `<id>` (perhaps with a participant suffix in groups). Chat and participant ids hold an
    "@" and WhatsApp's own ids never do, which tells the parts apart. Our sends' bare id is the one we
    asked WAHA to use (outbound_waha_id), so the bare id finds them whatever the engine.
    """
    parts = waha_id.split("_")
    if len(parts) >= 3 and parts[0] in _ID_DIRECTIONS and "@" in parts[1] and parts[2] and "@" not in parts[2]:
        return parts[1], parts[2]
    if len(parts) >= 2 and "@" in parts[-1] and parts[0] and not any("@" in part for part in parts[:-1]):
        return None, "_".join(parts[:-1])
    return None, waha_id


def media_object(user_id: str, message_id: str) -> str:
    """The S3 key of our copy of a guest's photo or file: ids only, never the guest's number or file name, and
    one prefix per guest, so that erasing a guest can find their files without listing anyone else's."""
    return f"media/{user_id}/{message_id}"


def send_pacing(waha_session: str) -> Key:
    # One item per WhatsApp account (WAHA session): the send slots every sender reserves from (sending.pacing).
    return {"pk": f"WAHA_SESSION#{waha_session}", "sk": "PACING"}


def user_id_of(partition: str) -> str:
    """The user id in a `USER#<user_id>` partition key."""
    return partition.removeprefix("USER#")


def media_prefix(user_id: str) -> str:
    """Where every copy of one guest's photos and files sits in the media bucket (`media_object`'s keys): the
    erasure lists and deletes exactly this prefix."""
    return f"media/{user_id}/"
