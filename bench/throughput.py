"""Sender throughput: queued messages drained by one sender to a WAHA that takes 50 ms per sendText.

devstack's QueuePoller drains the queue as the SQS event source does (receive up to ten, invoke, delete), in
one thread: one concurrent sender. The sender sends a batch's messages one after another, so a batch of ten
cannot take less than ten WAHA round trips.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bench.stack import SENDER, BenchStack, chat_id_of
from devstack.sender import QueuePoller
from devstack.stack import EnvironmentPatch
from devstack.waha_sim import WahaSimulator

WAHA_SECONDS = 0.05
BATCH = 10


def _reread_waha_host() -> None:
    """As a new container would see a changed WAHA_HOST."""
    from concierge import config
    from concierge.sending import waha

    config.settings.cache_clear()
    waha.client.cache_clear()


def measure(stack: BenchStack, messages: int = 200) -> dict[str, Any]:
    stack.purge_queue()
    slow = WahaSimulator(session="default", latency_seconds=WAHA_SECONDS)
    slow.start()
    patch = EnvironmentPatch()
    patch.set("WAHA_HOST", slow.url)
    _reread_waha_host()
    chat = chat_id_of(stack.new_guest()["phone_number"])
    keys = stack.write_messages(str(uuid.uuid4()), chat, messages, pending=True, enqueue=True)
    handler, in_handler = stack.local.handlers[SENDER], []

    def timed(event: dict[str, Any], context: Any) -> Any:
        started = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            in_handler.append(time.perf_counter() - started)

    spec = stack.specs[SENDER]
    poller = QueuePoller(
        timed,
        stack.queue_url,
        stack.resources.queue_arns["OutboundQueue"],
        batch_size=BATCH,
        timeout_seconds=spec.timeout,
        function_name=SENDER,
        sqs_client=stack.client("sqs"),
        memory_size=spec.memory_size,
        wait_time_seconds=0,
    )
    started = time.perf_counter()
    while poller.poll_once():
        pass
    elapsed = time.perf_counter() - started
    delivered = len(slow.sent_messages())
    patch.restore()
    _reread_waha_host()
    slow.stop()
    stack.forget(keys)
    if delivered != messages:
        raise RuntimeError(f"the throughput run delivered {delivered} of {messages} messages")
    return {
        "messages": messages,
        "batches": len(in_handler),
        "waha_ms": WAHA_SECONDS * 1000,
        "elapsed_s": elapsed,
        "per_second": delivered / elapsed,
        "per_second_in_handler": delivered / sum(in_handler),
        "mean_batch_ms": sum(in_handler) / len(in_handler) * 1000,
        "ceiling_per_sender": BATCH / (BATCH * WAHA_SECONDS),
    }
