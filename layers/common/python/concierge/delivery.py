"""Delivering queued messages through WAHA and recording each one's true status.

A queue record carries a message key. The batch's messages are read in one consistent
BatchGetItem; a message already SENT is not sent again (SQS delivers at least once), and
each send carries a pre-generated id derived from our message id, so that WAHA sees a retry
of a send it accepted as the same message. A failed send is retried by SQS with growing
delay; on the last receive the message is marked FAILED with the reason and SQS moves the
record to the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from concierge import aws_clients, keys, outbox, store, waha
from concierge.config import settings

logger = Logger(child=True)

# Lambda's budget left for writing the outcome after WAHA answers.
SAFETY_MARGIN_MILLIS = 1500
MAX_VISIBILITY_SECONDS = 12 * 3600


class DeliveryFailed(Exception):
    """This record must go back to the queue (and, on its last receive, to the dead-letter queue)."""


def waha_message_id(message_id: str) -> str:
    """A stable pre-generated WAHA id: the same message retried keeps its id."""
    return message_id.replace("-", "").upper()


def retry_delay_seconds(receive_count: int) -> int:
    """Visibility timeout before the next attempt: base, 3x base, 9x base..., capped at 12 hours."""
    return min(settings().retry_base_seconds * 3 ** max(receive_count - 1, 0), MAX_VISIBILITY_SECONDS)


class Batch:
    """One SQS batch: its messages read once, then delivered record by record."""

    def __init__(self, records: list[dict[str, Any]], remaining_millis: Callable[[], int]) -> None:
        self._remaining_millis = remaining_millis
        wanted = []
        for record in records:
            try:
                wanted.append(outbox.parse_body(record["body"]))
            except ValueError:
                continue  # reported when its record is processed
        self._messages = store.get_many(wanted) if wanted else {}

    def deliver(self, record: dict[str, Any]) -> str:
        """Sends one record's message; returns what happened, raises DeliveryFailed to retry it."""
        try:
            key = outbox.parse_body(record["body"])
        except ValueError as error:
            raise DeliveryFailed("queue record is not a message key") from error
        message = self._messages.get((key["pk"], key["sk"]))
        if message is None:
            logger.error("queued message is not in the table; dropped", extra={"message_sk": key["sk"]})
            return "missing"
        if message.get("status") == store.SENT:
            logger.info("message already sent; redelivery ignored", extra={"message_id": message["message_id"]})
            return "already_sent"

        receive_count = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        client = waha.client()
        if self._remaining_millis() < client.worst_case_seconds * 1000 + SAFETY_MARGIN_MILLIS:
            # Not enough time left to wait for WAHA: hand the record back untouched.
            raise DeliveryFailed("not enough time left in this invocation")
        try:
            waha_id = client.send_text(message["chat_id"], message["text"], waha_message_id(message["message_id"]))
        except waha.WahaError as error:
            self._record_failure(key, message, error.reason, receive_count, record)
            raise DeliveryFailed(error.reason) from error
        store.update_item(
            key,
            "SET #status = :sent, sent_at = :now, waha_message_id = :waha_id, attempts = :attempts "
            "REMOVE outbox_pk, outbox_sk, last_error",
            {
                ":sent": store.SENT,
                ":now": store.iso(datetime.now(UTC)),
                ":waha_id": waha_id or waha_message_id(message["message_id"]),
                ":attempts": receive_count,
            },
            names={"#status": "status"},
        )
        return "sent"

    def _record_failure(
        self, key: keys.Key, message: dict[str, Any], reason: str, receive_count: int, record: dict[str, Any]
    ) -> None:
        last_attempt = receive_count >= settings().outbound_max_receive_count
        status = store.FAILED if last_attempt else store.PENDING
        logger.warning(
            "WhatsApp send failed",
            extra={
                "message_id": message["message_id"],
                "reason": reason,
                "attempt": receive_count,
                "final": last_attempt,
            },
        )
        expression = "SET #status = :status, last_error = :reason, attempts = :attempts"
        if last_attempt:
            # The dead-letter queue holds it now; the sweeper must not send it again on its own.
            expression += " REMOVE outbox_pk, outbox_sk"
        store.update_item(
            key,
            expression,
            {":status": status, ":reason": reason, ":attempts": receive_count, ":sent": store.SENT},
            condition="attribute_exists(pk) AND #status <> :sent",
            names={"#status": "status"},
        )
        # After the last attempt, visible again at once: SQS then moves it to the dead-letter queue.
        self._delay_retry(record, 0 if last_attempt else retry_delay_seconds(receive_count))

    @staticmethod
    def _delay_retry(record: dict[str, Any], delay_seconds: int) -> None:
        try:
            aws_clients.sqs().change_message_visibility(
                QueueUrl=settings().outbound_queue_url,
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=delay_seconds,
            )
        except (BotoCoreError, ClientError):
            # The queue's own visibility timeout still brings the record back.
            logger.exception("could not delay the retry")
