"""The outbound queue: a message row's key goes to SQS; the sender reads the text from the table.

Only keys travel through the queue, so no guest text sits in SQS. A failed send to SQS is
logged and left to the sweeper: the row stays PENDING in the table's outbox index.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

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


def enqueue(message_key: keys.Key) -> bool:
    try:
        aws_clients.sqs().send_message(QueueUrl=settings().outbound_queue_url, MessageBody=body(message_key))
    except (BotoCoreError, ClientError):
        logger.exception(
            "could not queue message; the outbox sweeper will retry it", extra={"message_sk": message_key["sk"]}
        )
        return False
    return True


def enqueue_many(message_keys: Iterable[keys.Key]) -> int:
    """Queues keys ten at a time (SQS's batch limit); returns how many were accepted."""
    pending = list(message_keys)
    accepted = 0
    for start in range(0, len(pending), 10):
        chunk = pending[start : start + 10]
        entries = [{"Id": str(index), "MessageBody": body(key)} for index, key in enumerate(chunk)]
        try:
            response = aws_clients.sqs().send_message_batch(QueueUrl=settings().outbound_queue_url, Entries=entries)
        except (BotoCoreError, ClientError):
            logger.exception("could not queue a batch of messages")
            continue
        accepted += len(response.get("Successful", []))
    return accepted


# Older than any message still inside its retries (base 10 s: 10+30+90+270 s), so the sweeper
# only picks up messages that never reached the queue.
SWEEP_AGE_SECONDS = 900


def sweep(now: datetime | None = None) -> int:
    """Queues again the PENDING messages the outbox index holds beyond the sweep age."""
    now = now or datetime.now(UTC)
    stale = store.query_pending_outbox(store.iso(now - timedelta(seconds=SWEEP_AGE_SECONDS)))
    queued = enqueue_many(stale) if stale else 0
    if stale:
        logger.warning("re-queued messages that never reached the queue", extra={"found": len(stale), "queued": queued})
    return queued
