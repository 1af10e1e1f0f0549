"""Reading a guest's conversation back: the messages of all their stays, oldest first, a page at a time."""

from __future__ import annotations

from typing import Any

from concierge import keys, store


class UnknownUser(LookupError):
    """No guest has this user id."""


def page(user_id: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the conversation, oldest first; a guest always has at least the welcome."""
    items, next_cursor = store.query_messages(user_id, limit, cursor)
    if not items and cursor is None and store.get(keys.user(user_id)) is None:
        raise UnknownUser(user_id)
    messages = [message_view(item) for item in items]
    return messages, next_cursor


def message_view(item: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the API shows it: the history, and a staff reply's answer."""
    view = {
        "id": item["message_id"],
        "session_id": item["session_id"],
        "role": item["role"],
        "text": item["text"],
        "created_at": item["created_at"],
        "status": item["status"],
    }
    view["language"] = item.get("language")
    if item.get("author"):
        view["author"] = item["author"]
    # The bot's: what kind of reply (auto_reply, answer, request...), which FAQ or department it came from.
    for name in ("kind", "faq_id", "department"):
        if item.get(name) and item["role"] != "Staff":
            view[name] = item[name]
    # A guest's message: where the answering function sent it (an answer, a department, staff).
    if item.get("routed"):
        view["routed"] = item["routed"]
    if item.get("last_error"):
        view["error"] = item["last_error"]
    # WhatsApp's ticks (concierge.conversations.ticks), once they came.
    for tick in ("delivered_at", "read_at"):
        if item.get(tick):
            view[tick] = item[tick]
    if item.get("media"):
        # Imported here, as its S3 client is created: only a page that holds a file pays for them.
        from concierge.sending import media

        view["media"] = media.view(item["media"])
    return view
