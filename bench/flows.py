"""Each user-visible flow run once against moto's server: its AWS calls by operation, its HTTP calls to WAHA,
and the bytes it logs. The calls are kept with their parameters so that the cost model can size them."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.calls import CallRecord, http_recording, recording
from bench.harness import BenchStack, Outcome, chat_id_of, webhook_delivery

# The history function's default page size.
HISTORY_PAGE = 50


@dataclass
class FlowCalls:
    key: str
    title: str
    calls: Counter[str]
    waha_calls: int
    log_bytes: int
    records: list[CallRecord] = field(default_factory=list)
    note: str = ""

    @property
    def aws_calls(self) -> int:
        return sum(self.calls.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "aws_calls": self.aws_calls,
            "by_operation": dict(sorted(self.calls.items())),
            "waha_calls": self.waha_calls,
            "log_bytes": self.log_bytes,
            "note": self.note,
        }


@dataclass
class KnownGuest:
    """The guest the inbound flows write as: registered, with an active stay."""

    phone_number: str
    user_id: str

    @property
    def chat_id(self) -> str:
        return chat_id_of(self.phone_number)


def _measured(stack: BenchStack, key: str, title: str, action: Any, note: str = "") -> tuple[FlowCalls, Any]:
    before = stack.sink.bytes_written
    with recording(keep_details=True) as log, http_recording(stack.waha.url) as http:
        value = action()
    flow = FlowCalls(
        key=key,
        title=title,
        calls=Counter(log.counts),
        waha_calls=http.total,
        log_bytes=stack.sink.bytes_written - before,
        records=list(log.records),
        note=note,
    )
    return flow, value


def run(stack: BenchStack) -> tuple[dict[str, FlowCalls], KnownGuest]:
    """Every flow once, in an order where each finds the data it needs; returns them keyed, and the known guest."""
    flows: dict[str, FlowCalls] = {}

    def keep(flow: FlowCalls) -> None:
        flows[flow.key] = flow

    phone = stack.phones.next()
    flow, (registration, _) = _measured(
        stack, "register_new", "Register (new guest)", lambda: stack.register(phone), "the usual case"
    )
    keep(flow)
    known = KnownGuest(phone_number=phone, user_id=registration["user_id"])

    new_stay = {"room": "202", "checkin_date": "2026-11-26"}
    keep(
        _measured(
            stack,
            "register_returning",
            "Register (returning guest, new stay)",
            lambda: stack.register(phone, **new_stay),
            "optimistic insert is cancelled, the guest's phone item comes back with the cancellation",
        )[0]
    )
    keep(
        _measured(
            stack,
            "register_repeat",
            "Register (same stay again, e.g. a retried request)",
            lambda: stack.register(phone, **new_stay),
            "answered from the cancelled transaction's returned item",
        )[0]
    )

    keep(
        _measured(
            stack,
            "inbound_first",
            "Inbound message, first in a container",
            lambda: stack.inbound(webhook_delivery(known.chat_id, "Hello, first message")),
            "reads the webhook HMAC key from SSM; cached for 5 minutes",
        )[0]
    )
    delivery = webhook_delivery(known.chat_id, "Could I have more towels?")
    keep(
        _measured(
            stack,
            "inbound",
            "Inbound message (webhook, known guest)",
            lambda: stack.inbound(delivery),
            "the usual case",
        )[0]
    )
    echo = {**delivery, "event": "message.any", "id": delivery["id"] + "-any"}
    keep(
        _measured(
            stack,
            "inbound_duplicate",
            "Inbound duplicate (WAHA retry, or message.any of a stored message)",
            lambda: stack.inbound(echo, expected="duplicate"),
            "dedupe marker cancels the transaction",
        )[0]
    )
    own = webhook_delivery(known.chat_id, "Welcome!", event="message.any", from_me=True)
    keep(
        _measured(
            stack,
            "inbound_own_echo",
            "Hotel's own message echoed (message.any, fromMe)",
            lambda: stack.inbound(own, expected="ignored"),
            "answered without touching AWS",
        )[0]
    )

    # A conversation long enough to fill the page (the default limit, 50), as a guest's would after a while.
    stack.write_messages(known.user_id, known.chat_id, HISTORY_PAGE, pending=False)
    keep(
        _measured(stack, "history", f"History page ({HISTORY_PAGE} messages)", lambda: stack.history(known.user_id))[0]
    )

    # Ten more replies waiting, so that a full batch of ten is on the queue whatever SQS hands out first.
    for index in range(10):
        stack.inbound(webhook_delivery(known.chat_id, f"Question {index}"))
    batch = stack.receive(10)
    keep(_measured(stack, "sender_batch10", "Sender, one batch of 10 messages", lambda: stack.send(batch))[0])
    stack.delete(batch)
    single = stack.receive(1)
    keep(_measured(stack, "sender_batch1", "Sender, one batch of 1 message", lambda: stack.send(single))[0])
    stack.delete(single)

    keep(_measured(stack, "sweeper", "Sweeper run (nothing stale)", stack.sweep)[0])
    stale = stack.write_messages(known.user_id, known.chat_id, 10, pending=True, age_seconds=3600)
    keep(
        _measured(
            stack,
            "sweeper_stale",
            "Sweeper run (10 stale messages)",
            lambda: _swept(stack.sweep(), 10),
            "messages whose SendMessage failed more than 15 minutes ago",
        )[0]
    )
    # Leave no stale rows behind: every later sweep would queue them again.
    stack.forget(stale)
    stack.purge_queue()
    return flows, known


def _swept(outcome: Outcome, expected: int) -> Outcome:
    requeued = (outcome.result or {}).get("requeued")
    if requeued != expected:
        raise RuntimeError(
            f"the sweeper re-queued {requeued} messages, expected {expected}: {json.dumps(outcome.result)}"
        )
    return outcome
