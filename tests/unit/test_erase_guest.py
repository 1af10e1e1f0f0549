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
from concierge.config import MissingSetting
from devstack.template import functions, load_template
from tests.conftest import forget_cached_clients
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
    """The budget of docs/architecture.md: a guest with 5 items and no files is erased in 7 calls (one listing of
    their files); the repeat in 3."""
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
            "S3.ListObjectsV2": 1,
        }
    )
    assert repeat == Counter({"DynamoDB.GetItem": 1, "DynamoDB.Query": 1, "S3.ListObjectsV2": 1})


# --- the guest's photos and files in the media bucket -------------------------------------------------------

OTHER_GUEST = {
    "full_name": "Other Guest",
    "email": "other@example.com",
    "phone_number": "081299990000",
    "room_number": "202",
}
OTHER_CHAT_ID = "6281299990000@c.us"


def _bucket(concierge: Concierge) -> str:
    return concierge.resources.bucket_names["MediaBucket"]


def _objects(concierge: Concierge, prefix: str = "media/") -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=_bucket(concierge), Prefix=prefix)
    return [entry["Key"] for page in pages for entry in page.get("Contents", [])]


def _guest_with_a_photo(concierge: Concierge, chat_id: str = GUEST_CHAT_ID, **registration: str) -> dict[str, Any]:
    """A registered guest whose photo the copy job has put in the media bucket."""
    _, guest = concierge.register(**registration)
    concierge.webhook(concierge.media_message("The broken tap", **{"from": chat_id}))
    concierge.copy_media()
    return guest


def test_erasing_a_guest_deletes_their_photos_and_files_and_no_one_elses(concierge: Concierge) -> None:
    """The guest's copied photos go with them; another guest's photo stays, and their history still links to it."""
    guest = _guest_with_a_photo(concierge)
    concierge.webhook(concierge.media_message("And the shower"))
    other = _guest_with_a_photo(concierge, OTHER_CHAT_ID, **OTHER_GUEST)
    assert len(_objects(concierge, keys.media_prefix(guest["user_id"]))) == 2
    (kept,) = _objects(concierge, keys.media_prefix(other["user_id"]))

    status, _ = concierge.erase(guest["user_id"])

    assert status == 204
    assert _objects(concierge) == [kept]
    (photo,) = [message["media"] for message in concierge.conversation(other["user_id"]) if message.get("media")]
    assert concierge.media_object(kept) and photo["size"] == len(concierge.media_object(kept))


class _KeptFiles:
    """S3 refusing every key of a DeleteObjects (it answers 200 with an error per key), `times` times."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls = 0

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        self.calls += 1
        if self.calls > self.times:
            return None
        return SimpleNamespace(status_code=200, headers={}), {
            "Errors": [{"Key": "media/x", "Code": "InternalError", "Message": "We encountered an internal error."}]
        }


def test_files_s3_would_not_delete_are_503_and_a_repeat_deletes_them(concierge: Concierge) -> None:
    """S3 keeping the files: 503 erasure_incomplete after the table is erased; the repeat (the table holding only
    the tombstone) still clears the guest's prefix, and answers 204."""
    guest = _guest_with_a_photo(concierge)
    aws_clients.s3().meta.events.register("before-call.s3.DeleteObjects", _KeptFiles(times=1))

    status, body = concierge.erase(guest["user_id"])
    assert status == 503 and body["error"] == "erasure_incomplete"
    assert [item["type"] for item in _items_of_user(concierge, guest["user_id"])] == ["Erasure"]
    assert len(_objects(concierge)) == 1

    status, _ = concierge.erase(guest["user_id"])

    assert status == 204 and _objects(concierge) == []


def test_more_files_than_one_listing_holds_are_all_deleted(concierge: Concierge) -> None:
    """1,001 objects under the guest's prefix: two pages listed, two DeleteObjects, nothing left; a neighbour's
    prefix that shares the guest's id as its start is not theirs and stays."""
    _, guest = concierge.register()
    s3 = boto3.client("s3")
    prefix = keys.media_prefix(guest["user_id"])
    for index in range(1001):
        s3.put_object(Bucket=_bucket(concierge), Key=f"{prefix}{index:04d}", Body=b"x")
    neighbour = f"media/{guest['user_id']}0/photo"
    s3.put_object(Bucket=_bucket(concierge), Key=neighbour, Body=b"y")

    calls = count_calls(lambda: concierge.erase(guest["user_id"]))

    assert _objects(concierge) == [neighbour]
    assert (calls["S3.ListObjectsV2"], calls["S3.DeleteObjects"]) == (2, 2)


def test_without_the_bucket_setting_an_erasure_deletes_nothing(
    concierge: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MEDIA_BUCKET unset is a deployment mistake: refused before anything is deleted (not a half erasure)."""
    guest = _guest_with_a_photo(concierge)
    before = concierge.items()
    monkeypatch.delenv("MEDIA_BUCKET")
    forget_cached_clients()

    with pytest.raises(MissingSetting):
        concierge.erase(guest["user_id"])

    assert concierge.items() == before and len(_objects(concierge)) == 1


def test_the_erase_function_may_list_and_delete_guests_files_and_nothing_more() -> None:
    """Least privilege: ListBucket limited to the media/ prefix, DeleteObject on media/* objects; no read or write."""
    spec = functions()["EraseGuestFunction"]
    statements = load_template()["Resources"]["EraseGuestFunction"]["Properties"]["Policies"][0]["Statement"]
    s3 = [statement for statement in statements if any(a.startswith("s3:") for a in statement["Action"])]

    assert spec.environment["MEDIA_BUCKET"] == {"Ref": "MediaBucket"}
    assert [(statement["Action"], statement["Resource"]) for statement in s3] == [
        (["s3:ListBucket"], {"Fn::GetAtt": ["MediaBucket", "Arn"]}),
        (["s3:DeleteObject"], {"Fn::Sub": "${MediaBucket.Arn}/media/*"}),
    ]
    assert s3[0]["Condition"] == {"StringLike": {"s3:prefix": ["media/*"]}}
