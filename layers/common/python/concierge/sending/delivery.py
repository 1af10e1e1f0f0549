"""Delivering queued messages through WAHA, once, and recording each one's true status.

A queue record carries a message key. The batch's messages are read in one consistent
BatchGetItem; a message already SENT (or DELIVERED, READ) is not sent again. SQS hands a record over at least once,
and one message can have two records (the sweeper re-queued one whose queueing only looked
failed), so the send itself is made exclusive: a conditional write claims the message
(PENDING or FAILED -> SENDING, with an owner and a lease) before WAHA is called, and the outcome
is written only while the claim is still ours. A claim whose lease ran out (its sender died) may
be taken over. WAHA is not trusted to drop a repeated pre-generated id, so a send whose outcome is
unknown (a timeout, a dropped connection, a lease taken over) is looked up among the chat's
recent messages in WAHA before it is sent again. A failed send is retried by SQS with growing
delay; on the last receive the message is marked FAILED with the reason and SQS moves the record
to the dead-letter queue. Before any claim, concierge.sending.pacing plans the batch's sends like a person's: a number
not on WhatsApp gets nothing, and each message gets a send slot, waited for here or in the queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from concierge import keys, store
from concierge.config import settings
from concierge.sending import outbox, pacing, waha

logger = Logger(child=True)

# Claimed by one sender, which is calling WAHA; `lease_until` says when others may take it over.
SENDING = "SENDING"
# WAHA took the message; ticks may have moved it on since. A record finding one of these has nothing to do.
_ALREADY_SENT = frozenset({store.SENT, store.DELIVERED, store.READ})

# Lambda's budget left for writing the outcome after WAHA answers.
SAFETY_MARGIN_MILLIS = 1500
MAX_VISIBILITY_SECONDS = 12 * 3600
# Callers queue a message's key before they commit its row, so a record can arrive first (or for a row
# whose transaction was cancelled). Such a record is looked at again after 2 s, 6 s, 18 s...; a row that
# is still missing once the record is this old will never be written: no caller lives that long.
UNCOMMITTED_RETRY_SECONDS = 2
UNCOMMITTED_WINDOW_SECONDS = 120
# A look-up in WAHA starts this long before the message was created, in case WAHA's clock is behind ours.
CLOCK_SKEW_SECONDS = 300


class DeliveryFailed(Exception):
    """This record must go back to the queue (and, on its last receive, to the dead-letter queue)."""


class _ClaimLost(Exception):
    """Another sender changed the message first; `current` is the row as it is now (None: no row)."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("the message was claimed or finished by another sender")
        self.current = current


def waha_message_id(message_id: str) -> str:
    """A stable pre-generated WAHA id: the same message retried keeps its id."""
    return message_id.replace("-", "").upper()


def retry_delay_seconds(receive_count: int) -> int:
    """Visibility timeout before the next attempt: base, 3x base, 9x base..., capped at 12 hours."""
    return min(settings().retry_base_seconds * 3 ** max(receive_count - 1, 0), MAX_VISIBILITY_SECONDS)


def _claim_millis(client: waha.WahaClient) -> float:
    # A claim covers a look-up and a send at WAHA's worst case, and the outcome write after them.
    return 2 * client.worst_case_seconds * 1000 + SAFETY_MARGIN_MILLIS


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
        # The guests' profiles and the send schedule come in the same read (concierge.sending.pacing).
        self._messages = store.get_many(wanted + pacing.keys_to_read(wanted)) if wanted else {}
        self._pacer = pacing.Pacer(self._messages, remaining_millis)
        if self._messages:
            self._pacer.plan(waha.client(), records, _claim_millis(waha.client()))

    def send_order(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records in the order to deliver them: by their send slots (concierge.sending.pacing)."""
        return self._pacer.send_order(records)

    def deliver(self, record: dict[str, Any]) -> str:
        """Sends one record's message; returns what happened, raises DeliveryFailed to retry it."""
        try:
            key = outbox.parse_body(record["body"])
        except ValueError as error:
            raise DeliveryFailed("queue record is not a message key") from error
        # Counting the receives of the records this one replaced while the message waited for its send slot.
        receive_count = pacing.receive_count(record)
        message = self._messages.get((key["pk"], key["sk"]))
        if message is None:
            return self._missing(key, record, receive_count)
        settled = self._settled(key, message, record)
        if settled is not None:
            return settled

        client = waha.client()
        slot = self._pacer.slot_for(client, key, message, record, receive_count, _claim_millis(client))
        if isinstance(slot, str):
            return slot  # not on WhatsApp, or queued again for its send slot
        claim_millis = _claim_millis(client) + slot.lease_millis()
        if self._remaining_millis() < claim_millis:
            # Not enough time left to wait for WAHA: hand the record back untouched.
            raise DeliveryFailed("not enough time left in this invocation")
        owner = uuid.uuid4().hex
        try:
            before = self._claim(key, owner, claim_millis)
        except _ClaimLost as lost:
            if lost.current is None:
                return self._missing(key, record, receive_count)
            settled = self._settled(key, lost.current, record)
            if settled is None:
                # A lease that ended between the write and this read: look again soon.
                raise DeliveryFailed("the claim raced another sender") from lost
            return settled
        return self._send(client, key, before, owner, record, receive_count, slot)

    def _settled(self, key: keys.Key, message: dict[str, Any], record: dict[str, Any]) -> str | None:
        """What to answer without sending (None: go on and claim it); raises DeliveryFailed to look again later."""
        status = message.get("status")
        if status in _ALREADY_SENT:
            logger.info(
                "message already sent; redelivery ignored",
                extra={"message_id": message["message_id"], "status": status},
            )
            return "already_sent"
        if status == SENDING and message.get("lease_until", "") > store.iso(datetime.now(UTC)):
            # Another sender is calling WAHA for it. Dropping this record could lose the message (if it is
            # the same SQS message, the holder's receipt handle is stale), so it comes back after the lease.
            self._delay_retry(record, _seconds_until(message["lease_until"]) + 1)
            raise DeliveryFailed("another sender is sending this message")
        if status not in (store.PENDING, store.FAILED, SENDING) or not message.get("chat_id"):
            logger.warning("queued message is not one to send; dropped", extra={"message_sk": key["sk"]})
            return "not_sendable"
        return None

    def _missing(self, key: keys.Key, record: dict[str, Any], receive_count: int) -> str:
        attributes = record.get("attributes", {})
        sent_millis = int(attributes.get("SentTimestamp") or 0)
        age_seconds = datetime.now(UTC).timestamp() - sent_millis / 1000
        last_receive = receive_count >= settings().outbound_max_receive_count
        if age_seconds < UNCOMMITTED_WINDOW_SECONDS and not last_receive:
            # Its writer may still be committing the row.
            self._delay_retry(record, UNCOMMITTED_RETRY_SECONDS * 3 ** max(receive_count - 1, 0))
            raise DeliveryFailed("message row not written yet")
        # Its transaction was cancelled (a redelivered webhook, a retried registration) or the guest erased.
        logger.info("queued message is not in the table; dropped", extra={"message_sk": key["sk"]})
        return "missing"

    @staticmethod
    def _claim(key: keys.Key, owner: str, claim_millis: float) -> dict[str, Any]:
        """Makes the message ours for a lease; returns the row as it was before. Raises _ClaimLost."""
        now = datetime.now(UTC)
        try:
            return store.update_returning_old(
                key,
                "SET #status = :sending, claim_owner = :owner, lease_until = :lease, "
                "attempts = if_not_exists(attempts, :zero) + :one",
                {
                    ":sending": SENDING,
                    ":owner": owner,
                    ":lease": store.iso(now + timedelta(milliseconds=claim_millis)),
                    ":now": store.iso(now),
                    ":pending": store.PENDING,
                    ":failed": store.FAILED,
                    ":zero": 0,
                    ":one": 1,
                },
                condition="attribute_exists(chat_id) AND (#status IN (:pending, :failed) "
                "OR (#status = :sending AND lease_until < :now))",
                names={"#status": "status"},
            )
        except store.ConditionFailed as failed:
            raise _ClaimLost(failed.old_item) from failed

    def _send(
        self,
        client: waha.WahaClient,
        key: keys.Key,
        before: dict[str, Any],
        owner: str,
        record: dict[str, Any],
        receive_count: int,
        slot: pacing.Slot,
    ) -> str:
        message_id = before["message_id"]
        pre_generated = waha_message_id(message_id)
        # The last attempt may have reached WhatsApp: it timed out, or its sender died holding the claim.
        unknown = before.get("status") == SENDING or bool(before.get("delivery_unknown"))
        if before.get("status") == SENDING:
            logger.warning("took over a claim whose lease ran out", extra={"message_id": message_id})
        checked = False
        try:
            if unknown:
                since = int(datetime.fromisoformat(before["created_at"]).timestamp()) - CLOCK_SKEW_SECONDS
                # A photo or file has no pre-generated id (sendImage, sendFile take none): found by its caption.
                caption = before["text"] if before.get("media") else None
                found = client.find_sent(before["chat_id"], pre_generated, since, media_caption=caption)
                checked = True
                if found is not None:
                    logger.info("WAHA already has this message; not sent again", extra={"message_id": message_id})
                    self._record_sent(key, owner, found, pre_generated, message_id)
                    return "confirmed"
            slot.before_send(client, before["chat_id"])
            if before.get("media"):
                waha_id = client.send_media(before["chat_id"], before["media"], before["text"])
            else:
                waha_id = client.send_text(before["chat_id"], before["text"], pre_generated)
        except waha.WahaError as error:
            still_unknown = error.maybe_delivered or (unknown and not checked)
            if self._record_failure(key, owner, message_id, error.reason, still_unknown, receive_count, record):
                return "dead_lettered"
            raise DeliveryFailed(error.reason) from error
        self._record_sent(key, owner, waha_id or pre_generated, pre_generated, message_id)
        return "sent"

    @staticmethod
    def _record_sent(key: keys.Key, owner: str, waha_id: str, pre_generated: str, message_id: str) -> None:
        values = {":sent": store.SENT, ":now": store.iso(datetime.now(UTC)), ":waha_id": waha_id, ":owner": owner}
        expression = "SET #status = :sent, sent_at = :now, waha_message_id = :waha_id"
        bare_id = keys.split_message_id(waha_id)[1]
        if bare_id != pre_generated:
            # WAHA gave the message an id of its own: its acks and echoes will carry that one, and the
            # waha_ids index (written with ours) must find the message by it.
            expression += ", waha_id = :bare_id"
            values[":bare_id"] = bare_id
        recorded = store.update_item(
            key,
            # The outbox marker goes too: a row marked unqueued that was sent anyway must not be re-queued.
            expression + " REMOVE claim_owner, lease_until, last_error, delivery_unknown, outbox_pk, outbox_sk",
            values,
            condition="claim_owner = :owner",
            names={"#status": "status"},
        )
        if not recorded:
            # Our lease ran out first; whoever took over looks the message up in WAHA and finds it.
            logger.warning("sent, but the claim had passed to another sender", extra={"message_id": message_id})

    def _record_failure(
        self,
        key: keys.Key,
        owner: str,
        message_id: str,
        reason: str,
        unknown: bool,
        receive_count: int,
        record: dict[str, Any],
    ) -> bool:
        """Records the failure and delays the retry; True when the message went to the dead-letter queue here."""
        last_attempt = receive_count >= settings().outbound_max_receive_count
        status = store.FAILED if last_attempt else store.PENDING
        logger.warning(
            "WhatsApp send failed",
            extra={
                "message_id": message_id,
                "reason": reason,
                "attempt": receive_count,
                "final": last_attempt,
                "outcome_unknown": unknown,
            },
        )
        expression = (
            "SET #status = :status, last_error = :reason, delivery_unknown = :unknown REMOVE claim_owner, lease_until"
        )
        if last_attempt:
            # The dead-letter queue holds it now; the sweeper must not send it again on its own.
            expression += ", outbox_pk, outbox_sk"
        store.update_item(
            key,
            expression,
            {":status": status, ":reason": reason, ":unknown": unknown, ":owner": owner},
            condition="claim_owner = :owner",
            names={"#status": "status"},
        )
        if last_attempt and pacing.dead_letter(record, key):
            return True
        # After the last attempt, visible again at once: SQS then moves it to the dead-letter queue.
        self._delay_retry(record, 0 if last_attempt else retry_delay_seconds(receive_count))
        return False

    @staticmethod
    def _delay_retry(record: dict[str, Any], delay_seconds: int) -> None:
        outbox.retry_after(record, settings().outbound_queue_url, min(delay_seconds, MAX_VISIBILITY_SECONDS))


def _seconds_until(moment: str) -> int:
    return max(int((datetime.fromisoformat(moment) - datetime.now(UTC)).total_seconds()), 0)
