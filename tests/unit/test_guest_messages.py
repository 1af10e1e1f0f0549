"""GET /api/v1/guests/{user_id}/messages: the stored conversation, oldest first, page by page."""

from __future__ import annotations

import uuid

import pytest

from tests.driver import Concierge, waha_message


def test_conversation_is_paginated_oldest_first(concierge: Concierge) -> None:
    """Pages of `limit` messages follow each other through next_cursor until it is null."""
    _, guest = concierge.register()
    for text in ("one", "two", "three"):
        concierge.webhook(waha_message(text=text))

    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = concierge.history(guest["user_id"], **query)
        assert status == 200 and len(page["messages"]) <= 2
        seen += page["messages"]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [m["role"] for m in seen] == ["System", "User", "System", "User", "System", "User", "System"]
    assert [m["text"] for m in seen if m["role"] == "User"] == ["one", "two", "three"]
    assert [m["created_at"] for m in seen] == sorted(m["created_at"] for m in seen)
    assert set(seen[0]) >= {"id", "session_id", "role", "text", "created_at", "status"}


def test_unknown_user_is_404(concierge: Concierge) -> None:
    """A user id no guest has (or one that is not a UUID) is a JSON 404."""
    for user_id in (str(uuid.uuid4()), "not-a-uuid"):
        status, body = concierge.history(user_id)
        assert status == 404 and body["error"] == "not_found"


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"cursor": "garbage!"}])
def test_bad_paging_parameters_are_400(concierge: Concierge, query: dict) -> None:
    """A limit out of 1..100 or a cursor this API did not hand out is a JSON 400 naming the parameter."""
    _, guest = concierge.register()

    status, body = concierge.history(guest["user_id"], **query)

    assert status == 400 and body["details"][0]["field"] in query


def test_cursor_of_another_guest_is_refused(concierge: Concierge) -> None:
    """A cursor from one guest's pages cannot be used to read another guest's conversation."""
    _, first = concierge.register()
    concierge.webhook(waha_message(text="hi"))
    _, second = concierge.register(phone_number="081298765432")
    _, page = concierge.history(first["user_id"], limit="1")

    status, _ = concierge.history(second["user_id"], cursor=page["next_cursor"])

    assert status == 400
