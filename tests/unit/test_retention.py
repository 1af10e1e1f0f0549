"""Retention: a closed stay's messages, check-in and session expire MESSAGE_RETENTION_DAYS after it ends (TTL)."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.calls import count_calls
from concierge import aws_clients, keys, store
from devstack.lambda_context import LambdaContext
from tests.conftest import forget_cached_clients
from tests.driver import Concierge, waha_message
from tests.lambda_events import sample

DAY = 86400


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def _by_session(concierge: Concierge, session_id: str) -> list[dict[str, Any]]:
    return [item for item in concierge.items() if item.get("session_id") == session_id]


def _a_stay_that_closed(concierge: Concierge, messages: int = 2) -> tuple[dict[str, Any], dict[str, Any]]:
    """A guest writes during a first stay, then checks in again: the first session closes (the second is open)."""
    _, first = concierge.register()
    for index in range(messages):
        concierge.webhook(waha_message(text=f"first stay {index}"))
    _, second = concierge.register(room_number="202", checkin_date="2025-12-01")
    assert second["session_id"] != first["session_id"]
    return first, second


def test_closed_stays_expire_a_year_after_they_end(concierge: Concierge) -> None:
    """Each message, the check-in and the session of the closed stay get expires_at = end + 365 days."""
    first, _ = _a_stay_that_closed(concierge)
    session = store.get(keys.session(first["user_id"], first["session_id"]))
    assert session["closed_pk"] == keys.CLOSED_SESSIONS

    result = concierge.expire_closed_stays()

    expected = _epoch(session["end"]) + 365 * DAY
    stamped = _by_session(concierge, first["session_id"])
    messages = [item for item in stamped if item["type"] == "Message"]
    assert {item["type"] for item in stamped} >= {"Message", "CheckIn", "ChatSession"}
    assert {item["expires_at"] for item in stamped} == {expected}
    assert len(messages) >= 3 and result == {"sessions": 1, "messages": len(messages), "unfinished": False}
    closed = store.get(keys.session(first["user_id"], first["session_id"]))
    assert "closed_pk" not in closed and "closed_sk" not in closed


def test_the_open_stay_is_left_alone(concierge: Concierge) -> None:
    """Nothing of the guest's current stay (its welcome, session, check-in) or their profile gets an expiry."""
    _, second = _a_stay_that_closed(concierge)
    concierge.webhook(waha_message(text="second stay"))

    concierge.expire_closed_stays()

    current = _by_session(concierge, second["session_id"])
    assert {item["type"] for item in current} >= {"Message", "CheckIn", "ChatSession"}
    assert not any("expires_at" in item for item in current)
    assert "expires_at" not in store.get(keys.user(second["user_id"]))
    assert "second stay" in [m["text"] for m in concierge.conversation(second["user_id"])]


def test_retention_follows_the_setting(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> None:
    """MESSAGE_RETENTION_DAYS sets the retention."""
    first, _ = _a_stay_that_closed(concierge)
    monkeypatch.setenv("MESSAGE_RETENTION_DAYS", "30")
    forget_cached_clients()

    concierge.expire_closed_stays()

    session = store.get(keys.session(first["user_id"], first["session_id"]))
    assert session["expires_at"] == _epoch(session["end"]) + 30 * DAY
    assert {item["expires_at"] for item in _by_session(concierge, first["session_id"])} == {session["expires_at"]}


def test_a_second_run_has_nothing_to_do(concierge: Concierge) -> None:
    """A stamped session has left the index: the next run reads nothing and writes nothing."""
    _a_stay_that_closed(concierge)
    concierge.expire_closed_stays()
    before = concierge.items()

    result = concierge.expire_closed_stays()

    assert result == {"sessions": 0, "messages": 0, "unfinished": False}
    assert concierge.items() == before


def test_another_sessions_message_in_the_time_range_keeps_its_own_lifetime(concierge: Concierge) -> None:
    """The query reads the stay's time range of the partition; only the session's own messages are stamped."""
    _, first = concierge.register()
    concierge.webhook(waha_message(text="first stay"))
    stranger = store.StoredMessage(
        user_id=first["user_id"],
        message_id=str(uuid.uuid4()),
        session_id=str(uuid.uuid4()),
        role="User",
        text="another session's message",
        created_at=store.iso(datetime.now(UTC)),
        status=store.RECEIVED,
    )
    aws_clients.dynamodb().put_item(TableName=concierge.resources.table_name, Item=store.to_item(stranger.item()))
    concierge.register(room_number="202", checkin_date="2025-12-01")

    concierge.expire_closed_stays()

    assert "expires_at" not in store.get(stranger.key)
    assert all("expires_at" in item for item in _by_session(concierge, first["session_id"]))


def test_a_guest_erased_during_the_run_is_not_brought_back(concierge: Concierge) -> None:
    """The stamp is written only on items that still exist: an erasure between the index read and the writes wins."""
    first, _ = _a_stay_that_closed(concierge)
    erased: list[int] = []
    started: list[bool] = []

    def erase_after_the_index_read(**_: Any) -> None:
        if not started:  # the erasure's own queries pass through here too
            started.append(True)
            erased.append(concierge.erase(first["user_id"])[0])

    aws_clients.dynamodb().meta.events.register("after-call.dynamodb.Query", erase_after_the_index_read)

    concierge.expire_closed_stays()

    assert erased == [204]
    assert [item["type"] for item in concierge.items() if item["pk"] == keys.user_partition(first["user_id"])] == [
        "Erasure"
    ]


@dataclass
class _Countdown(LambdaContext):
    """Lambda's context whose remaining time drops by `step_millis` at each look (no sleeping, no clock)."""

    start_millis: int = 60_000
    step_millis: int = 0

    def get_remaining_time_in_millis(self) -> int:
        self.start_millis -= self.step_millis
        return self.start_millis


def test_a_run_out_of_time_stops_and_the_next_run_finishes(concierge: Concierge) -> None:
    """A session with more messages than one run's time allows stays in the index; the next run completes it."""
    first, _ = _a_stay_that_closed(concierge, messages=110)
    handler = concierge.handlers["ExpireClosedStaysFunction"]
    # Enough time for the first look and one page of 100 messages, not for the rest.
    context = _Countdown("ExpireClosedStaysFunction", 256, 300, start_millis=30_000, step_millis=8_000)

    total = len([item for item in _by_session(concierge, first["session_id"]) if item["type"] == "Message"])

    partial = handler(sample("expire_closed_stays"), context)

    assert partial["sessions"] == 0 and partial["unfinished"] is True and 0 < partial["messages"] < total
    assert store.get(keys.session(first["user_id"], first["session_id"]))["closed_pk"] == keys.CLOSED_SESSIONS

    rest = concierge.expire_closed_stays()

    assert rest == {"sessions": 1, "messages": total - partial["messages"], "unfinished": False}
    messages = [item for item in _by_session(concierge, first["session_id"]) if item["type"] == "Message"]
    assert len(messages) == total and all("expires_at" in item for item in messages)


def test_a_run_costs_two_queries_and_one_update_per_item(concierge: Concierge) -> None:
    """Index query, one range query of the partition, then an UpdateItem per message, check-in, reference, session."""
    first, _ = _a_stay_that_closed(concierge, messages=2)
    messages = [item for item in _by_session(concierge, first["session_id"]) if item["type"] == "Message"]

    calls = count_calls(concierge.expire_closed_stays)

    assert calls == Counter({"DynamoDB.Query": 2, "DynamoDB.UpdateItem": len(messages) + 3})
