"""A guest's stays as chat sessions: what an open session holds, and closing one.

An open session carries the `open_sessions` index keys (`open_pk`, `open_sk` = its last activity) and
what the hotel's list of conversations shows (guest, room, masked phone, last message, since when the
guest is waiting), so the list is one Query. Every transaction that stores a message in a session
updates these fields with it. A session closes (check-in of a new stay, check-out, or by itself at
`close_at`) in one transaction with the phone's lookup item, never before its last message.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from concierge import keys, store
from concierge.config import conversation_settings

LAST_MESSAGE_PREVIEW_CHARACTERS = 100


def parse_iso(value: str) -> datetime:
    return datetime.strptime(value, store.ISO_FORMAT).replace(tzinfo=UTC)


def close_at(start: datetime, checkout_date: date | None) -> str:
    """When a session closes by itself: checkout day's midnight (hotel time) + grace, or the longest stay."""
    config = conversation_settings()
    if checkout_date is None:
        return store.iso(start + timedelta(days=config.session_max_days))
    midnight = datetime.combine(checkout_date, time(0), tzinfo=ZoneInfo(config.hotel_timezone))
    return store.iso((midnight + timedelta(hours=config.session_grace_hours)).astimezone(UTC))


def preview(message: store.StoredMessage) -> dict[str, str]:
    """What the list of conversations shows of a message; a photo or file also says its type."""
    shown = {
        "text": message.text[:LAST_MESSAGE_PREVIEW_CHARACTERS],
        "role": message.role,
        "created_at": message.created_at,
    }
    media = message.extra.get("media")
    if isinstance(media, dict) and media.get("mimetype"):
        shown["media"] = str(media["mimetype"])
    return shown


def activity(
    user_id: str,
    session_id: str,
    last: store.StoredMessage,
    *,
    guest_waiting_since: str | None = None,
    staff_answered: bool = False,
    extra_sets: dict[str, Any] | None = None,
    extra_removes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The session's share of a transaction that stores messages: last activity, preview, who is waiting.

    Conditional on the session being active, so a message never lands in a closed session, and on no
    later message being stored already: `last_message_at` only moves forward (clocks of concurrent
    writers differ), which is what lets a close keep its `end` at or after every message. A cancelled
    write is retried by its caller with a fresh time.
    """
    sets = [
        "last_message_at = :at",
        "open_sk = :at",
        "last_message = :last",
    ]
    values: dict[str, Any] = {":at": last.created_at, ":last": preview(last), ":true": True}
    removes = list(extra_removes)
    if guest_waiting_since:
        sets.append("waiting_since = if_not_exists(waiting_since, :waiting)")
        values[":waiting"] = guest_waiting_since
    if staff_answered:
        # Staff answered whatever was waiting, a department's request included.
        removes += ["waiting_since", "open_request"]
    for index, (name, value) in enumerate((extra_sets or {}).items()):
        sets.append(f"{name} = :extra{index}")
        values[f":extra{index}"] = value
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    return store.update(
        keys.session(user_id, session_id),
        expression,
        values,
        "is_active = :true AND (attribute_not_exists(last_message_at) OR last_message_at <= :at)",
    )


def waiting(user_id: str, session_id: str, since: str) -> dict[str, Any]:
    """The session's share when a guest's message waits for staff and nothing is sent: only who is waiting."""
    return store.update(
        keys.session(user_id, session_id),
        "SET waiting_since = if_not_exists(waiting_since, :waiting)",
        {":waiting": since, ":true": True},
        "is_active = :true",
    )


def still_open(cancelled: store.TransactionConflict, index: int) -> bool:
    """Whether a cancelled `activity` at `index` failed on a later message only (retry) rather than a close."""
    session = cancelled.old_item(index) if cancelled.failed(index) else None
    return session is None or bool(session.get("is_active"))


def close(user_id: str, session_id: str, started: str, now: datetime, at_least: str | None = None) -> dict[str, Any]:
    """Ends an active session (`is_active` false, `end`, `duration` in seconds), never before its last message."""
    end = max(store.iso(now), at_least or "")
    duration = max(int((parse_iso(end) - parse_iso(started)).total_seconds()), 0)
    return store.update(
        keys.session(user_id, session_id),
        "SET is_active = :false, #end = :end, #duration = :duration, closed_pk = :closed, closed_sk = :end "
        "REMOVE open_pk, open_sk, handoff_until",
        {
            ":false": False,
            ":true": True,
            ":end": end,
            ":duration": duration,
            ":closed": keys.CLOSED_SESSIONS,
        },
        "is_active = :true AND (attribute_not_exists(last_message_at) OR last_message_at <= :end)",
        names={"#end": "end", "#duration": "duration"},
    )


def later_end(session: dict[str, Any] | None) -> str | None:
    """From a cancelled close: the last message's time when a message was stored after our clock read."""
    if session and session.get("is_active") and session.get("last_message_at"):
        return str(session["last_message_at"])
    return None


def release_phone(e164: str, session_id: str) -> dict[str, Any]:
    """The phone's lookup forgets the closed stay; a later message takes the guide's no-active-session path."""
    return store.update(
        keys.phone(e164),
        "SET state_version = if_not_exists(state_version, :zero) + :one "
        "REMOVE active_session_id, active_checkin_id, active_session_start, handoff_until",
        {":zero": 0, ":one": 1, ":session": session_id},
        "active_session_id = :session",
    )


def summary(session: dict[str, Any]) -> dict[str, Any]:
    """A session as the API shows it, with the guide's sessions-table fields."""
    return {
        "session_id": session["session_id"],
        "user_id": session["user_id"],
        "checkin_id": session.get("checkin_id"),
        "is_active": bool(session.get("is_active")),
        "start": session.get("start"),
        "end": session.get("end"),
        "duration": int(session["duration"]) if session.get("duration") is not None else None,
    }
