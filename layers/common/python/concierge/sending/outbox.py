"""The outbound queue: a message row's key goes to SQS; the sender reads the text from the table.

Only keys travel through the queue, so no guest text sits in SQS. Callers queue a message's key
before they commit its row; only when SQS refused it is the row written with the `UNQUEUED`
outbox marker (the table's sparse `outbox` index). The sweeper queues exactly those rows and then
removes their marker, so it never queues a message that is already waiting in the queue. Guests' messages
waiting for an answer from the hotel's knowledge (concierge.answers) go the same way through the answer
queue, under the index's `UNANSWERED` partition.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from concierge import aws_clients, keys, store
from concierge.config import settings

logger = Logger(child=True)


def body(message_key: keys.Key) -> str:
    return json.dumps({"pk": message_key["pk"], "sk": message_key["sk"]}, separators=(",", ":"))


def parse_body(raw: str) -> keys.Key:
    """The message key from a queue record; ValueError for anything this system did not enqueue."""
    value = json.loads(raw)
    if not isinstance(value, dict) or not isinstance(value.get("pk"), str) or not isinstance(value.get("sk"), str):
        raise ValueError("queue record is not a message key")
    return {"pk": value["pk"], "sk": value["sk"]}


def enqueue(message_key: keys.Key, queue_url: str | None = None) -> bool:
    """Queues one key (to the outbound queue unless told another); False when SQS refused it (the caller then
    marks the row for the sweeper)."""
    try:
        aws_clients.sqs().send_message(
            QueueUrl=queue_url or settings().outbound_queue_url, MessageBody=body(message_key)
        )
    except (BotoCoreError, ClientError):
        logger.exception(
            "could not queue message; the outbox sweeper will retry it", extra={"message_sk": message_key["sk"]}
        )
        return False
    return True


def enqueue_many(message_keys: Iterable[keys.Key], queue_url: str | None = None) -> list[keys.Key]:
    """Queues keys ten at a time (SQS's batch limit); returns the keys SQS accepted."""
    pending = list(message_keys)
    accepted: list[keys.Key] = []
    for start in range(0, len(pending), 10):
        chunk = pending[start : start + 10]
        entries = [{"Id": str(index), "MessageBody": body(key)} for index, key in enumerate(chunk)]
        try:
            response = aws_clients.sqs().send_message_batch(
                QueueUrl=queue_url or settings().outbound_queue_url, Entries=entries
            )
        except (BotoCoreError, ClientError):
            logger.exception("could not queue a batch of messages")
            continue
        accepted += [chunk[int(success["Id"])] for success in response.get("Successful", [])]
    return accepted


def retry_after(record: dict[str, Any], queue_url: str, seconds: int) -> None:
    """Brings a record back after `seconds` rather than after its queue's visibility timeout (best effort: when
    SQS refuses, the queue's own timeout still brings it back)."""
    try:
        aws_clients.sqs().change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=max(seconds, 0)
        )
    except (BotoCoreError, ClientError):
        logger.exception("could not set when a queue record comes back")


# A row is marked only after SQS refused its key; a minute lets a short SQS outage pass first.
SWEEP_AGE_SECONDS = 60
SWEEP_LIMIT = 100


def unqueued(created_before: str, limit: int = SWEEP_LIMIT, marker: str = keys.UNQUEUED_OUTBOX) -> list[keys.Key]:
    """Keys of the messages whose key never reached the queue, created before the given time, oldest first."""
    response = aws_clients.dynamodb().query(
        TableName=settings().table_name,
        IndexName="outbox",
        KeyConditionExpression="outbox_pk = :unqueued AND outbox_sk < :before",
        ExpressionAttributeValues=store.to_item({":unqueued": marker, ":before": created_before}),
        Limit=limit,
    )
    return [{"pk": item["pk"]["S"], "sk": item["sk"]["S"]} for item in response.get("Items", [])]


def sweep(now: datetime | None = None) -> int:
    """Queues the messages marked unqueued (up to SWEEP_LIMIT a run per queue), then removes their marker."""
    now = now or datetime.now(UTC)
    created_before = store.iso(now - timedelta(seconds=SWEEP_AGE_SECONDS))
    queues = [(keys.UNQUEUED_OUTBOX, settings().outbound_queue_url)]
    if settings().answer_queue_url:
        queues.append((keys.UNANSWERED_OUTBOX, settings().answer_queue_url))
    return sum(_sweep_one(marker, queue_url, created_before) for marker, queue_url in queues)


def _sweep_one(marker: str, queue_url: str, created_before: str) -> int:
    marked = unqueued(created_before, marker=marker)
    if not marked:
        return 0
    queued = enqueue_many(marked, queue_url)
    for key in queued:
        # Conditional: the sender (or the answerer) may have removed the marker meanwhile. A crash before this
        # line queues the key again on the next run; the sender's claim (the answerer's `routed` condition)
        # makes that second record harmless.
        store.update_item(
            key,
            "REMOVE outbox_pk, outbox_sk",
            {":unqueued": marker},
            condition="outbox_pk = :unqueued",
        )
    logger.warning(
        "queued messages that had never reached the queue",
        extra={"found": len(marked), "queued": len(queued), "marker": marker},
    )
    return len(queued)
