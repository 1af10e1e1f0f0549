"""Sender throughput: queued messages drained to a WAHA that takes 50 ms per sendText, ten per batch.

The drain goes through devstack's QueuePoller (receive, invoke, delete, as the SQS event source does) in one
thread, which is one concurrent sender. The sender sends a batch's messages one after another, so a batch of
ten cannot take less than ten WAHA round trips.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bench.harness import SENDER, SLOW_WAHA_LATENCY_SECONDS, BenchStack, chat_id_of
from devstack.sender import QueuePoller

BATCH_SIZE = 10


def measure(stack: BenchStack, messages: int) -> dict[str, Any]:
    stack.purge_queue()
    simulator = stack.slow_waha
    simulator.clear()
    stack.use_waha(simulator)
    user_id = str(uuid.uuid4())
    # Welcome rows and their queue records, written as registration writes them but without its transaction,
    # whose cost in moto grows with the table (setup, not timed).
    keys = stack.write_messages(
        user_id, chat_id_of(stack.phones.next()), messages, pending=True, enqueue=True, kind="welcome"
    )

    handler = stack.handlers[SENDER]
    handler_seconds: list[float] = []

    def timed_handler(event: dict[str, Any], context: Any) -> Any:
        started = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            handler_seconds.append(time.perf_counter() - started)

    spec = stack.specs[SENDER]
    poller = QueuePoller(
        timed_handler,
        stack.queue_url,
        stack.queue_arn,
        batch_size=BATCH_SIZE,
        timeout_seconds=spec.timeout,
        function_name=SENDER,
        sqs_client=stack.client("sqs"),
        memory_size=spec.memory_size,
        wait_time_seconds=0,
    )
    started = time.perf_counter()
    handed_over = 0
    while count := poller.poll_once():
        handed_over += count
    elapsed = time.perf_counter() - started

    delivered = len(simulator.sent_messages())
    stack.use_waha(stack.waha)
    stack.forget(keys)
    if delivered != messages:
        raise RuntimeError(f"throughput run delivered {delivered} of {messages} messages")
    waha_floor = SLOW_WAHA_LATENCY_SECONDS * BATCH_SIZE
    batches = len(handler_seconds)
    return {
        "messages": messages,
        "batches": batches,
        "batch_size": BATCH_SIZE,
        "waha_latency_ms": SLOW_WAHA_LATENCY_SECONDS * 1000,
        "elapsed_s": elapsed,
        "messages_per_second": delivered / elapsed,
        "handler_messages_per_second": delivered / sum(handler_seconds),
        "mean_batch_ms": sum(handler_seconds) / batches * 1000,
        "waha_floor_batch_ms": waha_floor * 1000,
        "ceiling_per_sender": BATCH_SIZE / waha_floor,
        "handed_over": handed_over,
    }
