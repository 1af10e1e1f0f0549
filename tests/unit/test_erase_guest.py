"""DELETE /api/v1/guests/{user_id}: a guest's data erased on request, once and for all, and safely repeated."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from bench.calls import count_calls
from concierge import aws_clients, keys, store
from tests.driver import GUEST, GUEST_CHAT_ID, Concierge, waha_message

SECRET_TEXT = "my card ends 4242"
PHONE_DIGITS = "81234567890"


def _strings(value: Any) -> Iterator[str]:
    """Every string inside an item, keys and values, however nested."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for name, inner in value.items():
            yield name
            yield from _strings(inner)
    elif isinstance(value, list | set | tuple):
        for inner in value:
            yield from _strings(inner)


def _items_of_user(concierge: Concierge, user_id: str) -> list[dict[str, Any]]:
    return [item for item in concierge.items() if item["pk"] == keys.user_partition(user_id)]


def test_erased_guest_is_gone_and_their_history_is_404(concierge: Concierge) -> None:
    """After the 204, the history answers 404 as for an id no guest ever had."""
    _, guest = concierge.register()
    concierge.webhook(waha_message(text=SECRET_TEXT))

    status, body = concierge.erase(guest["user_id"])

    assert (status, body) == (204, None)
    status, body = concierge.history(guest["user_id"])
    assert status == 404 and body["error"] == "not_found"


def test_nothing_of_the_guest_remains_in_the_table(concierge: Concierge) -> None:
    """No profile, lookup, stay or message is left; no text, name or email anywhere; only counts and dedupe markers."""
    _, guest = concierge.register()
    for text in (SECRET_TEXT, "and my passport is X1234567"):
        concierge.webhook(waha_message(text=text))
    concierge.deliver_queued()
    found = Counter(item["type"] for item in _items_of_user(concierge, guest["user_id"]))

    concierge.erase(guest["user_id"])

    remaining = concierge.items()
    assert {item["type"] for item in remaining} == {"Erasure", "WahaDelivery"}
    for item in remaining:
        for text in _strings(item):
            for secret in (SECRET_TEXT, "X1234567", GUEST["full_name"], GUEST["email"]):
                assert secret not in text, item
            if item["type"] == "Erasure":
                # WAHA's message ids embed the chat id, so only the dedupe markers' keys hold the number.
                assert PHONE_DIGITS not in text, item
    (tombstone,) = [item for item in remaining if item["type"] == "Erasure"]
    assert tombstone["pk"] == keys.user_partition(guest["user_id"])
    assert tombstone["removed"] == found and found["Message"] >= 3
    assert set(tombstone) == {"pk", "sk", "type", "erased_at", "removed"}


def test_erasing_twice_answers_204_and_keeps_the_first_tombstone(concierge: Concierge) -> None:
    """DELETE is idempotent: the repeat answers 204, changes nothing, and the tombstone keeps the first counts."""
    _, guest = concierge.register()
    concierge.erase(guest["user_id"])
    before = concierge.items()

    status, body = concierge.erase(guest["user_id"])

    assert (status, body) == (204, None)
    assert concierge.items() == before


@pytest.mark.parametrize(
    "user_id",
    [
        str(uuid.uuid4()),
        "not-a-uuid",
        "x" * 3000,
        # Another spelling of a real guest's id names no partition this API wrote.
        "UPPER",
        "NO-HYPHENS",
    ],
)
def test_unknown_and_malformed_user_ids_are_404_and_erase_nothing(concierge: Concierge, user_id: str) -> None:
    """An id no guest ever had is 404 (nothing to erase, no earlier erasure), as is one that is not a user id."""
    _, guest = concierge.register()
    concierge.webhook(waha_message(text=SECRET_TEXT))
    user_id = {"UPPER": guest["user_id"].upper(), "NO-HYPHENS": guest["user_id"].replace("-", "")}.get(user_id, user_id)
    before = concierge.items()

    status, body = concierge.erase(user_id)

    assert status == 404 and body["error"] == "not_found"
    assert concierge.items() == before


def test_a_new_registration_on_the_same_phone_starts_fresh(concierge: Concierge) -> None:
    """The same person registering again after the erasure is a new user with only their new welcome."""
    _, first = concierge.register()
    concierge.webhook(waha_message(text=SECRET_TEXT))
    concierge.erase(first["user_id"])

    status, second = concierge.register()
    concierge.webhook(waha_message(text="hello again"))

    assert status == 201 and second["user_id"] != first["user_id"]
    texts = [message["text"] for message in concierge.conversation(second["user_id"])]
    assert len(texts) == 3 and texts[1] == "hello again"
    assert not any(SECRET_TEXT in text for text in texts)
    assert concierge.history(first["user_id"])[0] == 404


def test_a_number_that_passed_to_another_guest_keeps_their_lookup(concierge: Concierge) -> None:
    """Erasing the number's earlier guest leaves the lookup that names its new guest, whose messages still arrive."""
    _, alice = concierge.register(full_name="Alice Example", email="alice@example.com")
    concierge.webhook(waha_message(text=SECRET_TEXT))
    _, carol = concierge.register(full_name="Carol Example", email="carol@example.com", room_number="202")
    assert carol["user_id"] != alice["user_id"]

    status, _ = concierge.erase(alice["user_id"])
    status_after, outcome = concierge.webhook(waha_message(text="Carol here"))

    assert status == 204 and status_after == 200 and outcome["outcome"] == "stored"
    assert [m["text"] for m in concierge.conversation(carol["user_id"])][1] == "Carol here"
    assert concierge.history(alice["user_id"])[0] == 404


def test_nothing_is_sent_after_erasure(concierge: Concierge) -> None:
    """The welcome and the auto-reply still queued when the guest is erased never reach WhatsApp, nor come back."""
    _, guest = concierge.register()
    concierge.webhook(waha_message(text=SECRET_TEXT))

    concierge.erase(guest["user_id"])
    concierge.deliver_queued()

    assert concierge.waha.sent_messages() == []
    assert _items_of_user(concierge, guest["user_id"]) == [
        item for item in concierge.items() if item["type"] == "Erasure"
    ]


def _store_messages(concierge: Concierge, user_id: str, session_id: str, count: int, size: int) -> None:
    """Writes `count` stored messages of `size` characters into a guest's partition, 25 per call."""
    rows = [
        store.StoredMessage(
            user_id=user_id,
            message_id=str(uuid.uuid4()),
            session_id=session_id,
            role="User",
            text=f"{index:05d} " + "x" * size,
            created_at=f"2025-11-23T10:{index // 60 % 60:02d}:{index % 60:02d}.{index:06d}Z",
            status=store.RECEIVED,
        ).item()
        for index in range(count)
    ]
    for start in range(0, count, 25):
        concierge.dynamodb.batch_write_item(
            RequestItems={
                concierge.resources.table_name: [
                    {"PutRequest": {"Item": store.to_item(row)}} for row in rows[start : start + 25]
                ]
            }
        )


def test_thousands_of_messages_are_erased(concierge: Concierge) -> None:
    """A partition larger than one 1 MB query page and than many 25-item batches is erased to the last message."""
    _, guest = concierge.register()
    _store_messages(concierge, guest["user_id"], guest["session_id"], count=2100, size=600)

    status, _ = concierge.erase(guest["user_id"])

    assert status == 204
    assert [item["type"] for item in _items_of_user(concierge, guest["user_id"])] == ["Erasure"]
    (tombstone,) = concierge.items_of_type("Erasure")
    assert tombstone["removed"]["Message"] == 2101


class _UnprocessedDeletes:
    """DynamoDB under throttling: BatchWriteItem hands every delete back in UnprocessedItems, `times` times."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls = 0

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        self.calls += 1
        if self.calls > self.times:
            return None
        request = json.loads(params["body"])["RequestItems"]
        return SimpleNamespace(status_code=200, headers={}), {"UnprocessedItems": request}


def test_deletes_left_unprocessed_are_sent_again(concierge: Concierge) -> None:
    """UnprocessedItems are retried until DynamoDB takes them; the erasure still completes in one request."""
    _, guest = concierge.register()
    concierge.webhook(waha_message(text=SECRET_TEXT))
    throttled = _UnprocessedDeletes(times=2)
    aws_clients.dynamodb().meta.events.register("before-call.dynamodb.BatchWriteItem", throttled)

    status, _ = concierge.erase(guest["user_id"])

    assert status == 204 and throttled.calls == 3
    assert [item["type"] for item in _items_of_user(concierge, guest["user_id"])] == ["Erasure"]


def test_an_erasure_dynamodb_keeps_refusing_is_503_and_a_repeat_finishes_it(concierge: Concierge) -> None:
    """Persistent throttling answers 503 erasure_incomplete (the lookup is already released); the repeat ends in 204."""
    _, guest = concierge.register()
    client = aws_clients.dynamodb()
    client.meta.events.register("before-call.dynamodb.BatchWriteItem", _UnprocessedDeletes(times=1000), "throttle")

    status, body = concierge.erase(guest["user_id"])

    assert status == 503 and body["error"] == "erasure_incomplete"
    assert store.get(keys.phone("+6281234567890")) is None
    client.meta.events.unregister("before-call.dynamodb.BatchWriteItem", unique_id="throttle")
    status, _ = concierge.erase(guest["user_id"])
    assert status == 204
    assert [item["type"] for item in _items_of_user(concierge, guest["user_id"])] == ["Erasure"]


def test_a_message_stored_while_the_erasure_reads_is_erased_too(concierge: Concierge) -> None:
    """An inbound message that found the phone before it was released and commits during the read is caught."""
    _, guest = concierge.register()
    user_id, session_id = guest["user_id"], guest["session_id"]
    reads = []

    def webhook_commits_meanwhile(**_: Any) -> None:
        reads.append(1)
        if len(reads) > 1:
            return
        # What the webhook's transaction writes (inbound message, session stamp), committed right after our read.
        message = store.StoredMessage(
            user_id=user_id,
            message_id=str(uuid.uuid4()),
            session_id=session_id,
            role="User",
            text=SECRET_TEXT,
            created_at="2099-01-01T00:00:00.000000Z",
            status=store.RECEIVED,
        )
        boto3.client("dynamodb").transact_write_items(
            TransactItems=[
                store.put_new(message.item()),
                store.update(
                    keys.session(user_id, session_id),
                    "SET last_message_at = :at",
                    {":at": message.created_at, ":true": True},
                    "is_active = :true",
                ),
            ]
        )

    aws_clients.dynamodb().meta.events.register("after-call.dynamodb.Query", webhook_commits_meanwhile)

    status, _ = concierge.erase(user_id)

    assert status == 204 and len(reads) >= 2
    assert [item["type"] for item in _items_of_user(concierge, user_id)] == ["Erasure"]


def test_the_chat_of_an_erased_guest_is_unknown_to_the_webhook(concierge: Concierge) -> None:
    """A message from the erased guest's number, with no new registration, is not stored for anyone."""
    _, guest = concierge.register()
    concierge.erase(guest["user_id"])

    status, body = concierge.webhook(waha_message(chat_id=GUEST_CHAT_ID, text=SECRET_TEXT))

    assert status == 200 and body["outcome"] == "unknown_guest"
    assert concierge.items_of_type("Message") == []


def test_an_erasure_costs_a_read_a_release_two_queries_a_tombstone_and_a_batch_per_25(concierge: Concierge) -> None:
    """The budget of docs/architecture.md: a guest with 5 items is erased in 6 calls; the repeat in 2."""
    _, guest = concierge.register()
    concierge.webhook(waha_message(text=SECRET_TEXT))

    first = count_calls(lambda: concierge.erase(guest["user_id"]))
    repeat = count_calls(lambda: concierge.erase(guest["user_id"]))

    assert first == Counter(
        {
            "DynamoDB.GetItem": 1,
            "DynamoDB.DeleteItem": 1,
            "DynamoDB.Query": 2,
            "DynamoDB.PutItem": 1,
            "DynamoDB.BatchWriteItem": 1,
        }
    )
    assert repeat == Counter({"DynamoDB.GetItem": 1, "DynamoDB.Query": 1})
