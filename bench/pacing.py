"""Sending like a person under load: a burst of replies to many guests, queued at once and sent at the template's
pacing settings by five senders at once (the event source's MaximumConcurrency), as Lambda runs them.

Each sender is a thread running devstack's QueuePoller over the sender's handler (receive up to ten, invoke,
delete what succeeded). From the WAHA simulator's log of calls (each with the time it arrived): how long until the
last send, the least time between two messages to one chat and between two of the account, the most in any 60 s,
and whether each chat got its replies in the order they were written.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from typing import Any

from bench.calls import recording
from bench.flows import more_guests
from bench.stack import SENDER, BenchStack, chat_id_of
from devstack.sender import QueuePoller
from devstack.template import parameter_default

SETTINGS = {
    "TYPING_SECONDS_MAX": "TypingSecondsMax",
    "MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT": "MinSecondsBetweenMessagesPerChat",
    "MAX_MESSAGES_PER_MINUTE": "MaxMessagesPerMinute",
}
SENDERS = 5
EVENT_SOURCE_CALLS = ("SQS.ReceiveMessage", "SQS.DeleteMessageBatch", "SQS.DeleteMessage", "SQS.GetQueueAttributes")
DEPTHS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]


def _drain(stack: BenchStack, deadline: float) -> Counter[str]:
    """SENDERS threads until the queue is empty, delayed records included; the senders' own AWS calls."""
    calls: Counter[str] = Counter()
    lock = threading.Lock()
    spec, sqs = stack.specs[SENDER], stack.client("sqs")

    def empty() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=DEPTHS)["Attributes"]
        return sum(int(attributes[name]) for name in DEPTHS) == 0

    def sender() -> None:
        poller = QueuePoller(
            stack.local.handlers[SENDER],
            stack.queue_url,
            stack.resources.queue_arns["OutboundQueue"],
            batch_size=10,
            timeout_seconds=spec.timeout,
            function_name=SENDER,
            sqs_client=sqs,
            memory_size=spec.memory_size,
            wait_time_seconds=1,
        )
        with recording() as log:
            while time.monotonic() < deadline and (poller.poll_once() or not empty()):
                pass
        with lock:
            calls.update({name: n for name, n in log.counts.items() if name not in EVENT_SOURCE_CALLS})

    threads = [threading.Thread(target=sender, name=f"bench-sender-{index}") for index in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return calls


def _most_in(times: list[float], window: float) -> int:
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def measure(stack: BenchStack, guests: int = 50, replies: int = 2) -> dict[str, Any]:
    """guests x replies auto-replies, queued at once, drained at the deployed pacing."""
    settings = {name: str(parameter_default(parameter)) for name, parameter in SETTINGS.items()}
    stack.purge_queue()
    with more_guests(stack, guests) as registered:
        stack.deliver_queued()  # the welcomes, unpaced (setup)
        chats = {guest["user_id"]: chat_id_of(guest["phone_number"]) for guest in registered}
        written = {
            user: stack.write_messages(user, chat, replies, pending=True, enqueue=True) for user, chat in chats.items()
        }
        stack.waha.clear()
        with stack.setting(**settings):
            started = time.time()
            calls = _drain(stack, time.monotonic() + guests * replies * 10 + 60)
        log = stack.waha.calls()
        for keys in written.values():
            stack.forget(keys)
    sends = {
        chat: [c for c in log.get(chat, []) if c["call"] == "sendText" and c["status"] == 201]
        for chat in chats.values()
    }
    in_order = sum(
        [call["id"].rsplit("_", 1)[-1] for call in sends[chat]]
        == [key["sk"].rsplit("#", 1)[-1].replace("-", "").upper() for key in written[user]]
        for user, chat in chats.items()
    )
    times = sorted(call["at"] for chat_sends in sends.values() for call in chat_sends)
    per_chat = [b["at"] - a["at"] for chat_sends in sends.values() for a, b in itertools.pairwise(chat_sends)]
    per_minute, gap = int(settings["MAX_MESSAGES_PER_MINUTE"]), float(settings["MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT"])
    total = guests * replies
    return {
        "guests": guests,
        "replies": total,
        "senders": SENDERS,
        "settings": settings,
        "sent": len(times),
        "elapsed_s": times[-1] - started if times else None,
        "floor_s": (total - 1) * 60 / per_minute if per_minute else 0.0,  # the account limit alone
        "min_gap_chat_s": min(per_chat, default=None),
        "min_gap_account_s": min((b - a for a, b in itertools.pairwise(times)), default=None),
        "most_in_60_s": _most_in(times, 60.0),
        "chats_in_order": in_order,
        "chats": len(chats),
        "aws_calls": dict(calls),
        "waha_calls": dict(Counter(call["call"] for chat_calls in log.values() for call in chat_calls)),
        "limits_kept": bool(per_chat)
        and min(per_chat) >= gap
        and (not per_minute or _most_in(times, 60) <= per_minute),
    }
