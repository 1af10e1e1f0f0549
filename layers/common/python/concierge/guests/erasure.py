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

5. The guest's photos and files are deleted from the media bucket: every object under their prefix
   (`keys.media_prefix`), listed a thousand at a time and deleted in one DeleteObjects per page. This comes
   after the table, so no copy can slip past it: a copy put before the listing is in it, and one put after it
   finds its message row gone and deletes itself (concierge.sending.media).

An interrupted erasure is finished by the next request: the tombstone is kept, the rest is read again, and
every request, a repeat included, clears the guest's prefix in the bucket (which also removes the files of a
guest erased before files were erased).
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
from botocore.exceptions import BotoCoreError, ClientError

from concierge import aws_clients, keys, store
from concierge.config import MissingSetting, settings

logger = Logger(child=True)

BATCH_WRITE_LIMIT = 25
# UnprocessedItems means DynamoDB is throttling us: back off, and give up (the caller retries) before
# the function's timeout.
MAX_BATCH_ATTEMPTS = 6
# Deleting, then reading again: a second round only for a message stored while the first one read.
MAX_ROUNDS = 3
ERASURE_TYPE = "Erasure"
# S3's most keys per ListObjectsV2 page and per DeleteObjects call.
S3_BATCH_LIMIT = 1000
# How the answer counts the guest's files in the media bucket, next to the table's item types.
FILE_TYPE = "File"


class UnknownGuest(LookupError):
    """No guest ever had this user id: nothing to erase and no trace of an earlier erasure."""


class ErasureIncomplete(RuntimeError):
    """DynamoDB kept some deletes unprocessed; what is done stays done and a repeated request finishes it."""


@dataclass(frozen=True)
class Erasure:
    user_id: str
    # Items removed by this request, by type (User, CheckIn, ChatSession, Message, ...; File: the media bucket's).
    removed: dict[str, int]
    already_erased: bool


def erase(user_id: str) -> Erasure:
    """Removes every item of the guest's partition, their phone's lookup item and their files in the media
    bucket; leaves the tombstone."""
    bucket = settings().media_bucket
    if not bucket:
        # Checked before anything is deleted: an erasure that could not reach the files must not start.
        raise MissingSetting("MEDIA_BUCKET must be set: an erasure removes the guest's files too")
    profile = store.get(keys.user(user_id), consistent=True)
    if profile is not None and profile.get("phone_e164"):
        _release_phone(profile["phone_e164"], user_id)

    tombstone, remaining = _read_partition(user_id)
    if not remaining:
        if tombstone is None:
            raise UnknownGuest(user_id)
        # The table is done; the files may not be (an earlier request stopped between the two).
        files = _delete_files(bucket, user_id)
        return Erasure(user_id=user_id, removed={FILE_TYPE: files} if files else {}, already_erased=True)
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
    # After the table: see step 5 of the module's description.
    if files := _delete_files(bucket, user_id):
        removed[FILE_TYPE] = files
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


def _delete_files(bucket: str, user_id: str) -> int:
    """Deletes every object under the guest's prefix, a page (up to 1,000 keys) at a time; returns how many.

    What is deleted stays deleted: S3 failing part-way is ErasureIncomplete, and the next request lists again.
    """
    s3 = aws_clients.s3()
    deleted = 0
    listing: dict[str, Any] = {"Bucket": bucket, "Prefix": keys.media_prefix(user_id), "MaxKeys": S3_BATCH_LIMIT}
    try:
        while True:
            page = s3.list_objects_v2(**listing)
            objects = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
            if objects:
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                if errors := answer.get("Errors"):
                    raise ErasureIncomplete(f"S3 kept {len(errors)} of the guest's files ({errors[0].get('Code')})")
                deleted += len(objects)
            if not page.get("IsTruncated"):
                return deleted
            listing["ContinuationToken"] = page["NextContinuationToken"]
    except (BotoCoreError, ClientError) as error:
        raise ErasureIncomplete(f"the media bucket refused the deletion of the guest's files ({error})") from error
