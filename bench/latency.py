"""Warm handler latency per flow, split into time inside botocore (AWS), waiting on WAHA, and our own code; and
the AWS clients those warm invocations create (there should be none).

Every function has served requests before a series starts, and each series has five calls of warm-up. The rows
the measured calls write are deleted every ten calls, and what they queued is purged (not timed): moto copies the
whole table on each TransactWriteItems, so otherwise each call would be slower than the one before.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from bench.flows import PAGE, more_guests
from bench.process import tail
from bench.stack import (
    CLOSE_STAYS,
    CONVERSATIONS,
    EXPIRE,
    HEALTH,
    HISTORY,
    REGISTER,
    SWEEPER,
    BenchStack,
    Outcome,
    ack_delivery,
    chat_id_of,
    history_event,
    our_waha_id,
    register_event,
    sample_event,
    session_event,
    sessions_event,
    webhook_delivery,
    written_keys,
)

WARM_UP = 5
TIDY_EVERY = 10
TITLES = {
    "register": "Register (new guest)",
    "inbound": "Inbound message (known guest)",
    "history": f"History page ({PAGE} messages)",
    "inbound_duplicate": "Inbound duplicate (message.any of a stored message)",
    "own_echo": "Our own send echoed (message.any, fromMe)",
    "ack": "Delivery tick (message.ack READ)",
    "staff_reply": "Staff reply",
    "hotel_message": "The hotel's own message (message.any, fromMe), stored",
    "sessions": f"List of conversations (a page of {PAGE})",
    "health": "Health",
    "sender_batch10": "Sender, batch of 10 (WAHA answers at once)",
    "sender_batch1": "Sender, batch of 1 (WAHA answers at once)",
    "sweeper": "Sweeper run (nothing stale)",
    "close_stays_none": "Closing run (none due)",
    "retention_none": "Retention run (nothing closed)",
}


def series(stack: BenchStack, title: str, count: int, invoke: Callable[[], Outcome], tidy: bool = True) -> dict:
    """`count` timed calls after the warm-up, summarised."""
    outcomes: list[tuple[Outcome, int]] = []
    written: list[dict[str, str]] = []
    for index in range(WARM_UP + count):
        logged = stack.sink.bytes_written
        outcome = invoke()
        outcomes.append((outcome, stack.sink.bytes_written - logged))
        written += written_keys(outcome.aws.records)
        if tidy and (index + 1) % TIDY_EVERY == 0:
            stack.forget(written)
            stack.purge_queue()  # moto's SendMessage slows as a queue grows
            written = []
    stack.forget(written)
    stack.purge_queue()
    measured = outcomes[WARM_UP:]
    totals = [outcome.seconds * 1000 for outcome, _ in measured]
    aws = [outcome.aws.seconds * 1000 for outcome, _ in measured]
    waha = [outcome.waha.seconds * 1000 for outcome, _ in measured]
    ours = [max(total - a - w, 0.0) for total, a, w in zip(totals, aws, waha, strict=True)]
    return {
        "title": title,
        "n": count,
        **tail(totals),
        "aws_p50": statistics.median(aws),
        "waha_p50": statistics.median(waha),
        "ours_p50": statistics.median(ours),
        "ours_p99": tail(ours)["p99"],
        "ours_share": sum(ours) / sum(totals),
        "log_bytes_mean": statistics.fmean(logged for _, logged in measured),
        "clients_created": sum(outcome.aws.clients_created for outcome, _ in measured),
    }


def measure(stack: BenchStack, calls: int = 500, short: int = 100) -> dict[str, dict[str, Any]]:
    """Register, inbound and history `calls` times each; the other flows, which price the cost model's scenarios
    and the scheduled runs, `short` times."""
    guest = stack.register()
    chat = chat_id_of(guest["phone_number"])
    stack.write_messages(guest["user_id"], chat, PAGE, pending=False)  # a full history page
    results = {}

    def add(key: str, invoke: Callable[[], Outcome], count: int = short, tidy: bool = False) -> None:
        results[key] = series(stack, TITLES[key], count, invoke, tidy)

    add("register", lambda: stack.api(REGISTER, register_event(stack.new_guest()), 201), calls, tidy=True)
    add("inbound", lambda: stack.inbound(webhook_delivery(chat, "Is breakfast included?")), calls, tidy=True)
    add("history", lambda: stack.api(HISTORY, history_event(guest["user_id"])), calls)
    stored = webhook_delivery(chat, "Already stored")
    stack.inbound(stored)
    add("inbound_duplicate", lambda: stack.inbound({**stored, "event": "message.any"}, "duplicate"))
    rows = iter(stack.write_messages(guest["user_id"], chat, 2 * (short + WARM_UP + 1), pending=False)[1::2])
    ours = {"event": "message.any", "from_me": True}
    echo = webhook_delivery(chat, "Welcome!", message_id=our_waha_id(chat, next(rows)), **ours)
    add("own_echo", lambda: stack.inbound(echo, "ignored"))
    add("ack", lambda: stack.inbound(ack_delivery(chat, our_waha_id(chat, next(rows)), 3), "updated"))
    session_id = stack.register()["session_id"]
    reply = session_event(session_id, "messages", {"text": "Your towels are on their way.", "author": "Front desk"})
    add("staff_reply", lambda: stack.api(CONVERSATIONS, reply, 202), tidy=True)
    add("hotel_message", lambda: stack.inbound(webhook_delivery(chat, "Your laundry is ready.", **ours)), tidy=True)
    with more_guests(stack, PAGE):
        add("sessions", lambda: stack.api(CONVERSATIONS, sessions_event()))
    add("health", lambda: stack.api(HEALTH, sample_event("health")))
    add("sender_batch10", lambda: _send(stack, guest, 10))
    add("sender_batch1", lambda: _send(stack, guest, 1))
    add("sweeper", lambda: stack.scheduled(SWEEPER))
    add("close_stays_none", lambda: stack.scheduled(CLOSE_STAYS))
    add("retention_none", lambda: stack.scheduled(EXPIRE))
    return results


def _send(stack: BenchStack, guest: dict[str, Any], size: int) -> Outcome:
    """A batch of `size` pending replies, queued and received before the handler runs; removed after."""
    keys = stack.write_messages(guest["user_id"], chat_id_of(guest["phone_number"]), size, pending=True, enqueue=True)
    batch = stack.receive(size)
    outcome = stack.send(batch)
    stack.delete(batch)
    stack.forget(keys)
    return outcome
