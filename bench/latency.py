"""Warm handler latency per flow, split into time inside botocore (AWS), waiting on WAHA, and our own code;
and, over the same warm invocations, the AWS clients, boto3 sessions and urllib3 PoolManagers they create.

The rows each measured call wrote are deleted again every few calls, and what they queued is purged (not
timed): moto copies the whole table on each TransactWriteItems and its SendMessage slows as a queue grows, so
without this every call would be slower than the one before and the series would measure moto's state rather
than the handler.
"""

from __future__ import annotations

import json
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.calls import CreationLog, counting_creations, http_recording, recording
from bench.flows import HISTORY_PAGE, SESSIONS_PAGE, KnownGuest
from bench.harness import (
    CLOSE_STAYS,
    CONVERSATIONS,
    EXPIRE,
    HEALTH,
    BenchStack,
    Outcome,
    ack_delivery,
    chat_id_of,
    health_event,
    our_waha_id,
    sessions_event,
    staff_reply_event,
    webhook_delivery,
    written_keys,
)
from concierge.ticks import ACK_READ

# The container is already warm (bench.flows ran every function); these only settle caches and connections.
WARM_UP = 5
TIDY_EVERY = 10


@dataclass(frozen=True)
class Sample:
    total: float
    aws: float
    waha: float
    aws_calls: int
    log_bytes: int

    @property
    def ours(self) -> float:
        return max(self.total - self.aws - self.waha, 0.0)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation between two."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summarise(title: str, unit: str, samples: list[Sample], creations: CreationLog) -> dict[str, Any]:
    totals = [sample.total for sample in samples]
    total_time = sum(totals)

    def share(part: Callable[[Sample], float]) -> float:
        return sum(part(sample) for sample in samples) / total_time if total_time else 0.0

    return {
        "title": title,
        "unit": unit,
        "n": len(samples),
        "p50_ms": percentile(totals, 0.50) * 1000,
        "p95_ms": percentile(totals, 0.95) * 1000,
        "p99_ms": percentile(totals, 0.99) * 1000,
        "max_ms": max(totals) * 1000,
        "mean_ms": statistics.fmean(totals) * 1000,
        "aws_p50_ms": statistics.median(sample.aws for sample in samples) * 1000,
        "waha_p50_ms": statistics.median(sample.waha for sample in samples) * 1000,
        "ours_p50_ms": statistics.median(sample.ours for sample in samples) * 1000,
        "ours_p95_ms": percentile([sample.ours for sample in samples], 0.95) * 1000,
        "ours_p99_ms": percentile([sample.ours for sample in samples], 0.99) * 1000,
        "ours_share": share(lambda sample: sample.ours),
        "aws_share": share(lambda sample: sample.aws),
        "waha_share": share(lambda sample: sample.waha),
        "aws_calls_mean": statistics.fmean(sample.aws_calls for sample in samples),
        "log_bytes_mean": statistics.fmean(sample.log_bytes for sample in samples),
        "created": {
            "clients": dict(creations.clients),
            "sessions": creations.sessions,
            "pool_managers": creations.pool_managers,
            "total": creations.total,
        },
    }


class Series:
    """Runs one flow repeatedly, timing each call and cleaning up after it in batches."""

    def __init__(self, stack: BenchStack, tidy: bool) -> None:
        self._stack = stack
        self._tidy = tidy
        self._written: list[dict[str, str]] = []
        self._since_tidy = 0

    def sample(self, invoke: Callable[[], Outcome]) -> Sample:
        stack = self._stack
        before = stack.sink.bytes_written
        with recording(keep_details=self._tidy) as log, http_recording(stack.waha.url) as http:
            outcome = invoke()
        if self._tidy:
            self._written += written_keys(log.records)
            self._since_tidy += 1
            if self._since_tidy >= TIDY_EVERY:
                self.flush()
        return Sample(
            total=outcome.seconds,
            aws=log.seconds,
            waha=http.seconds,
            aws_calls=sum(log.counts.values()),
            log_bytes=stack.sink.bytes_written - before,
        )

    def flush(self) -> None:
        if self._written:
            self._stack.forget(self._written)
            # What these calls queued is not read in this series, and moto's SendMessage slows as a queue grows.
            self._stack.purge_queue()
        self._written, self._since_tidy = [], 0

    def run(self, count: int, invoke: Callable[[], Outcome]) -> tuple[list[Sample], CreationLog]:
        for _ in range(WARM_UP):
            self.sample(invoke)
        with counting_creations() as creations:
            samples = [self.sample(invoke) for _ in range(count)]
        self.flush()
        # Registration and the webhook queue a message per call; nothing reads them in this series.
        self._stack.purge_queue()
        return samples, creations


def _series(
    stack: BenchStack, title: str, unit: str, count: int, invoke: Callable[[], Outcome], tidy: bool = True
) -> dict[str, Any]:
    samples, creations = Series(stack, tidy).run(count, invoke)
    return summarise(title, unit, samples, creations)


class PendingMessages:
    """Queued PENDING rows for the sender, written the way registration writes a welcome; a batch is read
    off the real queue (not timed), sent by the handler (timed), and then removed, queue record and row."""

    def __init__(self, stack: BenchStack) -> None:
        self._stack = stack
        self._user_id = str(uuid.uuid4())
        self._chat_id = chat_id_of(stack.phones.next())

    def fill(self, count: int) -> None:
        self._stack.write_messages(self._user_id, self._chat_id, count, pending=True, enqueue=True)

    def batch(self, size: int) -> list[dict[str, Any]]:
        messages = self._stack.receive(size)
        if len(messages) < size:
            raise RuntimeError(f"the queue ran dry: {len(messages)} of {size} messages")
        return messages

    def done(self, messages: list[dict[str, Any]]) -> None:
        self._stack.delete(messages)
        self._stack.forget([json.loads(message["Body"]) for message in messages])


def _sender_series(stack: BenchStack, title: str, batches: int, batch_size: int) -> dict[str, Any]:
    pending = PendingMessages(stack)
    pending.fill((batches + WARM_UP) * batch_size)
    series = Series(stack, tidy=False)

    def one_batch() -> Sample:
        messages = pending.batch(batch_size)
        sample = series.sample(lambda: stack.send(messages))
        pending.done(messages)
        return sample

    for _ in range(WARM_UP):
        one_batch()
    with counting_creations() as creations:
        samples = [one_batch() for _ in range(batches)]
    return summarise(title, "batch", samples, creations)


def measure(stack: BenchStack, known: KnownGuest, calls: int, sender_batches: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    results["register"] = _series(stack, "Register (new guest)", "request", calls, lambda: stack.register()[1])
    results["inbound"] = _series(
        stack,
        "Inbound message (webhook, known guest)",
        "request",
        calls,
        lambda: stack.inbound(webhook_delivery(known.chat_id, "Is breakfast included?")),
    )
    # bench.flows left the guest with more than a page of messages, so every call returns a full page.
    results["history"] = _series(
        stack, f"History page ({HISTORY_PAGE} messages)", "request", calls, lambda: stack.history(known.user_id)
    )
    # Deliveries WAHA makes when it also sends message.any: the duplicate of a stored message, and the echo of
    # a message the hotel sent. Shorter series: they only price the message.any scenario.
    stored = webhook_delivery(known.chat_id, "Already stored")
    stack.inbound(stored)
    duplicate = {**stored, "event": "message.any"}
    results["inbound_duplicate"] = _series(
        stack,
        "Inbound duplicate (message.any of a stored message)",
        "request",
        sender_batches,
        lambda: stack.inbound(duplicate, expected="duplicate"),
        tidy=False,
    )
    results.update(_webhook_series(stack, sender_batches))
    results.update(_staff_series(stack, sender_batches))
    results["sender_batch10"] = _sender_series(stack, "Sender, batch of 10 (WAHA answers at once)", sender_batches, 10)
    results["sender_batch1"] = _sender_series(stack, "Sender, batch of 1 (WAHA answers at once)", sender_batches, 1)
    results["sweeper"] = _series(stack, "Sweeper run (nothing stale)", "run", sender_batches, stack.sweep, tidy=False)
    results["close_stays_none"] = _series(
        stack, "Closing run (none due)", "run", sender_batches, lambda: stack.scheduled(CLOSE_STAYS), tidy=False
    )
    results["retention_none"] = _series(
        stack, "Retention run (nothing closed)", "run", sender_batches, lambda: stack.scheduled(EXPIRE), tidy=False
    )
    return results


def _webhook_series(stack: BenchStack, count: int) -> dict[str, dict[str, Any]]:
    """Deliveries WAHA makes beside the guests' messages: our sends echoed, their ticks, the hotel's own lines.

    Shorter series: they price the message.any and message.ack scenarios of the cost model."""
    results: dict[str, dict[str, Any]] = {}
    user_id, chat_id = str(uuid.uuid4()), chat_id_of(stack.phones.next())
    # Our messages as the sender leaves them (SENT, with the id WAHA knows them by), one per tick.
    rows = stack.write_messages(user_id, chat_id, 2 * (count + WARM_UP), pending=False)
    sent = iter(rows[1::2])
    echoed = our_waha_id(chat_id, rows[1])
    results["inbound_own_echo"] = _series(
        stack,
        "Our own send echoed (message.any, fromMe)",
        "request",
        count,
        lambda: stack.inbound(
            webhook_delivery(chat_id, "Welcome!", message_id=echoed, event="message.any", from_me=True),
            expected="ignored",
        ),
        tidy=False,
    )
    results["ack"] = _series(
        stack,
        "Delivery tick (message.ack READ)",
        "request",
        count,
        lambda: stack.inbound(ack_delivery(chat_id, our_waha_id(chat_id, next(sent)), ACK_READ), expected="updated"),
        tidy=False,
    )
    stack.forget(rows)
    return results


def _staff_series(stack: BenchStack, count: int) -> dict[str, dict[str, Any]]:
    """The hotel's side, on a guest of its own: staff replies, the hotel's own WhatsApp lines, the list, health."""
    results: dict[str, dict[str, Any]] = {}
    registration = stack.register()[0]
    chat_id, session_id = chat_id_of(registration["phone_number"]), registration["session_id"]
    results["staff_reply"] = _series(
        stack,
        "Staff reply",
        "request",
        count,
        lambda: stack.api(CONVERSATIONS, staff_reply_event(session_id), expected=202)[1],
    )
    results["hotel_message"] = _series(
        stack,
        "The hotel's own message (message.any, fromMe), stored",
        "request",
        count,
        lambda: stack.inbound(webhook_delivery(chat_id, "Your laundry is ready.", event="message.any", from_me=True)),
    )
    with stack.more_guests(SESSIONS_PAGE):
        results["sessions"] = _series(
            stack,
            f"List of conversations (a page of {SESSIONS_PAGE})",
            "request",
            count,
            lambda: stack.api(CONVERSATIONS, sessions_event())[1],
            tidy=False,
        )
    results["health"] = _series(
        stack, "Health", "request", count, lambda: stack.api(HEALTH, health_event())[1], tidy=False
    )
    return results
