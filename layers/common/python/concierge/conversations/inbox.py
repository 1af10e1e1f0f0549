"""The hotel's list of open conversations: who wrote last, and who is waiting for staff. One Query."""

from __future__ import annotations

from typing import Any

from concierge import phone, store

STATUSES = ("open", "waiting")


def page(status: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Open sessions, most recent activity first; `waiting` keeps those with a guest message staff owe an answer."""
    items, next_cursor = store.query_open_sessions(limit, cursor, waiting_only=status == "waiting")
    return [_entry(item) for item in items], next_cursor


def _entry(session: dict[str, Any]) -> dict[str, Any]:
    return {
        "session_id": session["session_id"],
        "user_id": session["user_id"],
        "guest_name": session.get("guest_name"),
        "room_number": session.get("room_number"),
        "phone": phone.mask(session["phone_e164"]) if session.get("phone_e164") else None,
        "last_message": session.get("last_message"),
        "waiting_since": session.get("waiting_since"),
        # A department's request routed by the bot ({department, text, at}), until staff reply or resolve.
        "request": session.get("open_request"),
        "handoff_until": session.get("handoff_until"),
    }
