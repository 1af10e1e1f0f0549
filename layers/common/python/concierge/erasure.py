"""Erasing a guest on request: everything the table holds about them, in an order that is safe to repeat.

1. The phone's lookup item goes first, and only while it still names this guest (a recycled number may
   belong to someone else by now): no registration or inbound message finds the guest through it again.
2. The partition is read (every page) and a tombstone is written into it: the erasure time and how many
   items of each type it found, nothing else (no name, number, email or text). A repeated request then
   answers as the first did, and the erasure can be audited.
3. Every item of the partition but the tombstone is deleted, 25 at a time: profile, check-ins, sessions,
   messages, and each session's reference item (`SESSION#<id>`, outside the partition). Deleting a
   PENDING message's row is what cancels its sending: the sender drops a queued key whose row is gone.
4. The partition is read again. An inbound message whose transaction committed while step 2 read (it had
   found the phone before step 1) is caught here; none can commit later, since that transaction needs
   the session to exist and be active, and every other write to the partition (the sender's outcome, the
   retention stamp) needs its own item to exist.

An interrupted erasure is finished by the next request: the tombstone is kept, the rest is read again.
WAHA's dedupe markers (`WAHA#...`) stay until their TTL (docs/architecture.md says why).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from concierge import aws_clients, keys, store
from concierge.config import settings

logger = Logger(child=True)

BATCH_WRITE_LIMIT = 25
# UnprocessedItems means DynamoDB is throttling us: back off, and give up (the caller retries) before
# the function's timeout.
MAX_BATCH_ATTEMPTS = 6
# Deleting, then reading again: a second round only for a message stored while the first one read.
MAX_ROUNDS = 3
ERASURE_TYPE = "Erasure"


class UnknownGuest(LookupError):
    """No guest ever had this user id: nothing to erase and no trace of an earlier erasure."""


class ErasureIncomplete(RuntimeError):
    """DynamoDB kept some deletes unprocessed; what is done stays done and a repeated request finishes it."""


@dataclass(frozen=True)
class Erasure:
    user_id: str
    # Items removed by this request, by type (User, CheckIn, ChatSession, Message, ...).
    removed: dict[str, int]
    already_erased: bool


def erase(user_id: str) -> Erasure:
    """Removes every item of the guest's partition and their phone's lookup item; leaves the tombstone."""
    profile = store.get(keys.user(user_id), consistent=True)
    if profile is not None and profile.get("phone_e164"):
        _release_phone(profile["phone_e164"], user_id)

    tombstone, remaining = _read_partition(user_id)
    if not remaining:
        if tombstone is None:
            raise UnknownGuest(user_id)
        return Erasure(user_id=user_id, removed={}, already_erased=True)
    if tombstone is None:
        _write_tombstone(keys.erasure(user_id), _count(remaining))

    removed: Counter[str] = Counter()
    profile_sk = keys.user(user_id)["sk"]
    for _ in range(MAX_ROUNDS):
        removed.update(_count(remaining))
        # Session references first (nothing then routes to a session being deleted), the profile last, so
        # that until the end the guest still reads as a guest and not as unknown.
        references = [keys.session_ref(item["session_id"]) for item in remaining if item.get("type") == "ChatSession"]
        remaining.sort(key=lambda item: item["sk"] == profile_sk)
        _delete_all(references + [{"pk": item["pk"], "sk": item["sk"]} for item in remaining])
        _, remaining = _read_partition(user_id)
        if not remaining:
            break
    else:
        raise ErasureIncomplete("items kept appearing in the guest's partition")
    logger.info("guest erased", extra={"user_id": user_id, "removed": dict(removed)})
    return Erasure(user_id=user_id, removed=dict(removed), already_erased=False)


def _count(items: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(str(item.get("type", "unknown")) for item in items))


def _read_partition(user_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The guest's tombstone (if any) and every other item of their partition."""
    tombstone_sk = keys.erasure(user_id)["sk"]
    tombstone, others = None, []
    for item in _partition(user_id):
        if item["sk"] == tombstone_sk:
            tombstone = item
        else:
            others.append(item)
    return tombstone, others


def _release_phone(e164: str, user_id: str) -> None:
    try:
        aws_clients.dynamodb().delete_item(
            TableName=settings().table_name,
            Key=store.to_item(keys.phone(e164)),
            ConditionExpression="user_id = :user",
            ExpressionAttributeValues=store.to_item({":user": user_id}),
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        # The number has passed to another guest (or was released before): their lookup is not ours to touch.
        logger.info("phone lookup no longer names this guest; left in place", extra={"user_id": user_id})


def _partition(user_id: str) -> Iterator[dict[str, Any]]:
    """Every item of the guest's partition: keys, type and session id, page by page."""
    pages = (
        aws_clients.dynamodb()
        .get_paginator("query")
        .paginate(
            TableName=settings().table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=store.to_item({":pk": keys.user_partition(user_id)}),
            ProjectionExpression="pk, sk, #type, session_id",
            ExpressionAttributeNames={"#type": "type"},
            # Strongly consistent: what a transaction committed just before the phone was released is seen.
            ConsistentRead=True,
        )
    )
    for page in pages:
        for item in page.get("Items", []):
            yield store.from_item(item)


def _write_tombstone(key: keys.Key, removed: dict[str, int]) -> None:
    try:
        aws_clients.dynamodb().put_item(
            TableName=settings().table_name,
            Item=store.to_item(
                {**key, "type": ERASURE_TYPE, "erased_at": store.iso(datetime.now(UTC)), "removed": removed}
            ),
            # Two erasures racing: the first tombstone (and its counts) stands.
            ConditionExpression="attribute_not_exists(pk)",
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise


def _delete_all(item_keys: list[keys.Key]) -> None:
    """BatchWriteItem in chunks of 25, each retried with back-off until DynamoDB has processed all of it."""
    table = settings().table_name
    for start in range(0, len(item_keys), BATCH_WRITE_LIMIT):
        chunk = item_keys[start : start + BATCH_WRITE_LIMIT]
        request: dict[str, Any] = {table: [{"DeleteRequest": {"Key": store.to_item(key)}} for key in chunk]}
        for attempt in range(MAX_BATCH_ATTEMPTS):
            request = aws_clients.dynamodb().batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
            time.sleep(min(0.05 * 2**attempt, 1.0) + random.uniform(0, 0.05))  # noqa: S311 - jitter, not a secret
        else:
            raise ErasureIncomplete(f"{len(request.get(table, []))} deletes were left unprocessed")
