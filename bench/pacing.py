"""Sending like a person under load: a burst of replies to many guests, sent at the template's pacing settings by
several senders at once, as Lambda runs them (MaximumConcurrency 5). How long until the last one is sent, and,
from the WAHA simulator's log of calls (each with the time it arrived), that no limit was broken: the least time
between two messages to one chat, the least between two messages of the account, the most in any 60 s, and
whether each chat got its replies in the order they were written.

The senders are threads, each taking batches of up to ten records off the queue and delivering them through
`concierge.delivery.Batch` as the handler does (in its send order), deleting what succeeded, as the SQS event
source does. One sender per thread, as one Lambda instance runs one invocation at a time.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.calls import recording
from bench.harness import SENDER, BenchStack, chat_id_of, webhook_delivery
from devstack.sender import sqs_record
from devstack.template import parameter_default

SETTINGS = ("TYPING_SECONDS_MAX", "MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT", "MAX_MESSAGES_PER_MINUTE")
# Each setting's template parameter, whose default is what a deployment runs with.
PARAMETERS = {
    "TYPING_SECONDS_MAX": "TypingSecondsMax",
    "MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT": "MinSecondsBetweenMessagesPerChat",
    "MAX_MESSAGES_PER_MINUTE": "MaxMessagesPerMinute",
}
SENDERS = 5
BATCH_SIZE = 10
# The sender's Lambda timeout: a batch plans its waits within it.
SENDER_BUDGET_MILLIS = 30_000
_EVENT_SOURCE_CALLS = ("SQS.ReceiveMessage", "SQS.DeleteMessage", "SQS.GetQueueAttributes")
_QUEUE_DEPTHS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@contextmanager
def deployed_pacing() -> Iterator[dict[str, str]]:
    """The template's pacing defaults in the environment inside the block (the benchmark runs with pacing off)."""
    from concierge import config

    values = {name: str(parameter_default(PARAMETERS[name])) for name in SETTINGS}
    previous = {name: os.environ.get(name) for name in SETTINGS}
    os.environ.update(values)
    config.pacing_settings.cache_clear()
    try:
        yield values
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config.pacing_settings.cache_clear()


def _drain(stack: BenchStack, senders: int, timeout_seconds: float) -> tuple[Counter[str], Counter[str]]:
    """Runs `senders` threads until the queue is empty, delayed records included; their outcomes and AWS calls."""
    from concierge import delivery, pacing

    outcomes: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    lock = threading.Lock()
    sqs = stack.client("sqs")
    deadline = time.monotonic() + timeout_seconds

    def empty() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=list(_QUEUE_DEPTHS))
        return sum(int(attributes["Attributes"][name]) for name in _QUEUE_DEPTHS) == 0

    def sender() -> None:
        mine: Counter[str] = Counter()
        with recording() as log:
            while time.monotonic() < deadline:
                messages = sqs.receive_message(
                    QueueUrl=stack.queue_url, MaxNumberOfMessages=BATCH_SIZE, AttributeNames=["All"], WaitTimeSeconds=1
                ).get("Messages", [])
                if not messages:
                    if empty():
                        break
                    continue
                records = [sqs_record(message, stack.queue_arn) for message in messages]
                batch = delivery.Batch(pacing.ordered(records), _budget(time.monotonic()))
                for record in batch.send_order(records):
                    try:
                        mine[batch.deliver(record)] += 1
                    except Exception as error:  # a failed record comes back, as with SQS
                        mine[f"failed: {type(error).__name__}"] += 1
                        continue
                    sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=record["receiptHandle"])
        with lock:
            outcomes.update(mine)
            # The senders' own calls; receiving and deleting records is the event source's work, not theirs.
            calls.update({name: n for name, n in log.counts.items() if name not in _EVENT_SOURCE_CALLS})

    threads = [threading.Thread(target=sender, name=f"bench-sender-{index}") for index in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes, calls


def _budget(started: float) -> Callable[[], int]:
    """The batch's remaining time, as Lambda's context gives it, from the sender's timeout."""
    return lambda: int(SENDER_BUDGET_MILLIS - (time.monotonic() - started) * 1000)


def _max_in_window(times: list[float], window: float) -> int:
    most = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def _gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def measure(stack: BenchStack, guests: int = 50, replies_per_guest: int = 2, senders: int = SENDERS) -> dict[str, Any]:
    """A burst of guests × replies_per_guest auto-replies, queued at once, drained at the deployed pacing."""
    from devstack import moto_dynamodb

    # Several senders change the schedule at once: moto must apply each conditional write atomically, as DynamoDB.
    moto_dynamodb.install()
    stack.purge_queue()
    with stack.more_guests(guests) as registrations:
        stack.deliver_queued()  # the welcomes, unpaced (setup)
        chats = {registration["user_id"]: chat_id_of(registration["phone_number"]) for registration in registrations}
        for chat in chats.values():
            for index in range(replies_per_guest):
                stack.inbound(webhook_delivery(chat, f"Question {index + 1}"))
        stack.waha.clear()
        with deployed_pacing() as settings:
            started = time.time()
            outcomes, calls = _drain(stack, senders, timeout_seconds=guests * replies_per_guest * 10 + 60)
        log = stack.waha.calls()
        sends = {
            chat: [call for call in log.get(chat, []) if call["call"] == "sendText" and call["status"] == 201]
            for chat in chats.values()
        }
        in_order = 0
        for user_id, chat in chats.items():
            written = [
                key["sk"].rsplit("#", 1)[-1].replace("-", "").upper()
                for key in stack.message_keys(user_id, "auto_reply")
            ]
            sent = [call["id"].rsplit("_", 1)[-1] for call in sends[chat]]
            in_order += sent == written
    times = sorted(call["at"] for calls_ in sends.values() for call in calls_)
    per_chat_gaps = [gap for calls_ in sends.values() for gap in _gaps([call["at"] for call in calls_])]
    per_minute = int(settings["MAX_MESSAGES_PER_MINUTE"])
    replies = guests * replies_per_guest
    courtesy = Counter(call["call"] for calls_ in log.values() for call in calls_)
    return {
        "guests": guests,
        "replies": replies,
        "senders": senders,
        "settings": settings,
        "sent": len(times),
        "elapsed_s": (times[-1] - started) if times else None,
        # The account limit alone allows no less: replies - 1 gaps of 60 s / MAX_MESSAGES_PER_MINUTE.
        "floor_s": (replies - 1) * 60 / per_minute if per_minute else 0.0,
        "min_gap_per_chat_s": min(per_chat_gaps) if per_chat_gaps else None,
        "min_gap_account_s": min(_gaps(times)) if len(times) > 1 else None,
        "max_in_60_s": _max_in_window(times, 60.0),
        "chats_in_order": in_order,
        "chats": len(chats),
        "outcomes": dict(outcomes),
        "aws_calls": dict(calls),
        "waha_calls": dict(courtesy),
        "limits_kept": bool(per_chat_gaps)
        and min(per_chat_gaps) >= float(settings["MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT"])
        and (not per_minute or _max_in_window(times, 60.0) <= per_minute),
        "function": SENDER,
    }


def section(results: dict[str, Any]) -> list[str]:
    """The report's lines for the burst (docs/performance.md)."""
    burst = results.get("pacing")
    if not burst:
        return []
    settings = burst["settings"]
    calls = ", ".join(f"{count} {name.split('.', 1)[1]}" for name, count in sorted(burst["aws_calls"].items()))
    waha = ", ".join(f"{count} {name}" for name, count in sorted(burst["waha_calls"].items()))
    return [
        "## Pacing: a burst of replies",
        "",
        f"{burst['replies']} auto-replies to {burst['guests']} guests queued at once and drained by "
        f"{burst['senders']} senders at the template's settings (TYPING_SECONDS_MAX={settings['TYPING_SECONDS_MAX']}, "
        f"MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT={settings['MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT']}, "
        f"MAX_MESSAGES_PER_MINUTE={settings['MAX_MESSAGES_PER_MINUTE']}); times from the WAHA simulator's log of "
        "calls.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| Sent | {burst['sent']} of {burst['replies']} |",
        f"| Until the last was sent | {burst['elapsed_s']:.1f} s (the account limit alone: {burst['floor_s']:.1f} s) |",
        f"| Least time between two messages to one chat | {burst['min_gap_per_chat_s']:.2f} s |",
        f"| Least time between two messages of the account | {burst['min_gap_account_s']:.2f} s |",
        f"| Most messages in any 60 s | {burst['max_in_60_s']} |",
        f"| Chats whose replies went in the order written | {burst['chats_in_order']} of {burst['chats']} |",
        f"| Limits kept | {'yes' if burst['limits_kept'] else 'NO'} |",
        f"| Record outcomes | {', '.join(f'{n} {k}' for k, n in sorted(burst['outcomes'].items()))} |",
        f"| AWS calls of the senders | {calls}: {sum(burst['aws_calls'].values()) / max(burst['sent'], 1):.1f} per "
        "message sent |",
        f"| WAHA calls | {waha} |",
        "",
    ]
