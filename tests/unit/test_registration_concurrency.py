"""Registrations and messages of one phone at the same moment, against one shared moto table.

moto's server runs in a thread with DynamoDB's atomicity (devstack.moto_dynamodb), and the domain
functions run on 20 threads at once, as 20 Lambda instances would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from concierge import keys
from concierge.conversations import conversation
from concierge.guests.registration import Registration, RegistrationConflict, RegistrationRequest, register_guest
from concierge.webhook.webhook_events import GuestMessage
from devstack.resources import LocalResources
from tests.concurrency import at_once, table_items
from tests.driver import GUEST

THREADS = 20
PHONE = "+6281234567890"


def _request(**changes: Any) -> RegistrationRequest:
    return RegistrationRequest.model_validate({**GUEST, **changes})


def _assert_one_active_session_named_by_the_lookup(items: list[dict[str, Any]]) -> dict[str, Any]:
    active = [item for item in items if item.get("type") == "ChatSession" and item["is_active"]]
    (lookup,) = [item for item in items if item.get("type") == "PhoneLookup"]
    assert len(active) == 1, f"{len(active)} active sessions"
    assert (lookup["active_session_id"], lookup["user_id"]) == (active[0]["session_id"], active[0]["user_id"])
    return lookup


@pytest.mark.parametrize(
    "request_for",
    [
        pytest.param(lambda index: _request(room_number=str(300 + index)), id="20 stays of one guest"),
        pytest.param(lambda index: _request(full_name=f"Guest {index}", email=None), id="20 people on one phone"),
        pytest.param(lambda index: _request(), id="one stay sent 20 times"),
    ],
)
def test_concurrent_registrations_of_one_phone_never_fail(
    shared_table: LocalResources, request_for: Callable[[int], RegistrationRequest]
) -> None:
    """Every caller gets its registration or a RegistrationConflict (409); one session stays active."""
    results = at_once([lambda index=index: register_guest(request_for(index)) for index in range(THREADS)])

    unexpected = [result for result in results if not isinstance(result, Registration | RegistrationConflict)]
    assert unexpected == []
    registered = [result for result in results if isinstance(result, Registration)]
    assert registered, "at least one registration must win"
    items = table_items(shared_table)
    lookup = _assert_one_active_session_named_by_the_lookup(items)
    assert lookup["active_session_id"] in {result.session_id for result in registered}
    sessions = {item["session_id"]: item for item in items if item.get("type") == "ChatSession"}
    welcomes = {item["session_id"] for item in items if item.get("kind") == "welcome"}
    for result in registered:
        # Each answer names a stay that exists, with its own welcome.
        assert result.session_id in sessions and result.session_id in welcomes
        assert sessions[result.session_id]["user_id"] == result.user_id


def _guest_message(index: int) -> GuestMessage:
    return GuestMessage(
        waha_session="default",
        waha_message_id=f"race-{index}",
        event="message",
        phone_e164=PHONE,
        lid=None,
        text=f"line {index}",
        has_media=False,
    )


def test_messages_during_re_registration_land_in_exactly_one_session_before_it_ends(
    shared_table: LocalResources,
) -> None:
    """Messages racing new check-ins are each stored once, in a session whose end is not before them."""
    register_guest(_request())
    calls: list[Callable[[], Any]] = []
    for index in range(THREADS):
        if index % 4 == 0:
            calls.append(lambda index=index: register_guest(_request(room_number=str(500 + index))))
        else:
            calls.append(lambda index=index: conversation.receive(_guest_message(index)))

    results = at_once(calls)

    # A registration may lose every attempt to the messages and answer 409; a message is never lost.
    assert [result for result in results if isinstance(result, Exception | RegistrationConflict)] == [
        result for result in results if isinstance(result, RegistrationConflict)
    ]
    items = table_items(shared_table)
    _assert_one_active_session_named_by_the_lookup(items)
    sessions = {item["session_id"]: item for item in items if item.get("type") == "ChatSession"}
    inbound = [item for item in items if item.get("type") == "Message" and item["role"] == "User"]
    sent_lines = {f"line {index}" for index in range(THREADS) if index % 4}
    assert sorted(item["text"] for item in inbound) == sorted(sent_lines)
    for message in (item for item in items if item.get("type") == "Message"):
        session = sessions[message["session_id"]]
        assert message["created_at"] >= session["start"]
        if not session["is_active"]:
            assert session["end"] >= message["created_at"], f"closed before a message stored in it: {session} {message}"
    assert all(item["pk"].startswith(keys.user_partition("")) or item.get("type") != "Message" for item in items)
