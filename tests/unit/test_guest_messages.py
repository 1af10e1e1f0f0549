"""GET /api/v1/guests/{user_id}/messages: the stored conversation, oldest first, page by page."""

from __future__ import annotations

import base64
import json
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

    # The welcome first; then the guest's three messages in order (with the auto-replies the conversation rules
    # give them), exactly as one page of them all.
    assert seen[0]["role"] == "System"
    assert [m["text"] for m in seen if m["role"] == "User"] == ["one", "two", "three"]
    assert seen == concierge.conversation(guest["user_id"])
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


@pytest.mark.parametrize(
    "limit",
    ["²", "٣", "¹⁰", "1" * 5000, " 5", "5 ", "+5", "-1", "5.0", "0x10", ""],
    ids=[
        "superscript",
        "arabic-indic",
        "superscripts",
        "5000-digits",
        "space-first",
        "space-last",
        "plus",
        "minus",
        "decimal",
        "hex",
        "empty",
    ],
)
def test_a_limit_that_is_not_ascii_digits_is_400(concierge: Concierge, limit: str) -> None:
    """Digits that str.isdigit() accepts but int() refuses (²) or reads as another script's digits are a 400,
    as is a digit string too long for int()."""
    _, guest = concierge.register()

    status, body = concierge.history(guest["user_id"], limit=limit)

    assert status == 400, body
    assert body["error"] == "bad_request" and body["details"] == [{"field": "limit"}]


def test_a_cursor_of_deeply_nested_json_is_400(concierge: Concierge) -> None:
    """A cursor that decodes to 1,000 nested arrays is refused before json recurses into it."""
    _, guest = concierge.register()
    cursor = base64.urlsafe_b64encode(b"[" * 1000 + b"]" * 1000).decode().rstrip("=")

    status, body = concierge.history(guest["user_id"], cursor=cursor)

    assert status == 400 and body["details"] == [{"field": "cursor"}]


@pytest.mark.parametrize(
    "sort_key",
    ["MSG#\ud800", "MSG#" + "x" * 2000],
    ids=["lone-surrogate", "longer-than-a-sort-key"],
)
def test_a_cursor_whose_sort_key_dynamodb_would_refuse_is_400(concierge: Concierge, sort_key: str) -> None:
    """A cursor of the right shape whose sort key is not a key DynamoDB accepts (not UTF-8, over 1,024 bytes)
    is refused by us, not by DynamoDB as a server error."""
    _, guest = concierge.register()
    plain = json.dumps({"pk": f"USER#{guest['user_id']}", "sk": sort_key}).encode()
    cursor = base64.urlsafe_b64encode(plain).decode().rstrip("=")

    status, body = concierge.history(guest["user_id"], cursor=cursor)

    assert status == 400 and body["details"] == [{"field": "cursor"}]
