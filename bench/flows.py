"""Each user-visible flow run once against moto's server: its AWS calls by operation, its HTTP calls to WAHA,
the bytes it logs, and the table's items before and after it (what the cost model sizes the writes by).

Every flow also carries what docs/architecture.md's "Flows and what each costs" table says it calls, so the
report shows where the two part ways. The flows run in an order where each finds the data it needs, on guests
of their own where one flow would change another's outcome (a staff reply quiets the bot for the guest).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.calls import CallRecord, http_recording, recording
from bench.cost import MESSAGES_PER_STAY, touched_keys
from bench.harness import (
    CLOSE_STAYS,
    CONVERSATIONS,
    DEPLOYED_COOLDOWN_MINUTES,
    ERASE,
    EXPIRE,
    HEALTH,
    HISTORY,
    BenchStack,
    Outcome,
    ack_delivery,
    chat_id_of,
    checkout_event,
    days_ago,
    erase_event,
    health_event,
    history_event,
    our_waha_id,
    resolve_event,
    session_status_delivery,
    sessions_event,
    staff_reply_event,
    webhook_delivery,
)

# The history function's default page size, and the list of conversations'.
HISTORY_PAGE = 50
SESSIONS_PAGE = 50
# Messages a "small guest" has when erased: the welcome and two questions with their answers.
SMALL_GUEST_QUESTIONS = 2

Key = tuple[str, str]
Images = dict[Key, dict[str, Any]]

# The rows of docs/architecture.md's flow table, in its order; the report lists the flows so.
DOCUMENT_ORDER = (
    "register_new",
    "register_returning",
    "register_idempotency_key",
    "register_repeat",
    "register_idempotency_replay",
    "register_invalid_phone",
    "inbound_first",
    "inbound",
    "burst_1",
    "burst_2",
    "burst_3",
    "staff_reply",
    "resolve",
    "checkout",
    "checkout_again",
    "sessions",
    "sessions_waiting",
    "close_stays",
    "close_stays_none",
    "inbound_duplicate",
    "webhook_other_session",
    "webhook_stale",
    "ack",
    "ack_late",
    "ack_unknown",
    "hotel_message",
    "inbound_own_echo",
    "session_status",
    "health",
    "history",
    "history_unknown",
    "sender_batch10",
    "sender_batch1",
    "sweeper",
    "sweeper_stale",
    "erase",
    "erase_again",
    "retention",
    "retention_none",
)


def in_document_order(flows: dict[str, FlowCalls]) -> list[str]:
    """The flows' keys as docs/architecture.md lists them; any flow it does not list comes last."""
    listed = [key for key in DOCUMENT_ORDER if key in flows]
    return listed + [key for key in flows if key not in DOCUMENT_ORDER]


def _calls(**operations: int) -> Counter[str]:
    """A documented call count, e.g. _calls(GetItem=1, SendMessage=1): DynamoDB unless the name says SQS or SSM."""
    services = {
        "SendMessage": "SQS",
        "SendMessageBatch": "SQS",
        "GetQueueAttributes": "SQS",
        "GetParameter": "SSM",
        "ListObjectsV2": "S3",
        "DeleteObjects": "S3",
    }
    return Counter({f"{services.get(name, 'DynamoDB')}.{name}": count for name, count in operations.items() if count})


@dataclass
class FlowCalls:
    key: str
    title: str
    calls: Counter[str]
    waha_calls: int
    log_bytes: int
    records: list[CallRecord] = field(default_factory=list)
    note: str = ""
    # What docs/architecture.md's flow table gives for this case; None where the table says nothing.
    documented: Counter[str] | None = None
    # The items the flow changed, as they were before and after it (not in the JSON).
    before: Images = field(default_factory=dict)
    after: Images = field(default_factory=dict)

    @property
    def aws_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def as_documented(self) -> bool | None:
        return None if self.documented is None else +self.calls == +self.documented

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "aws_calls": self.aws_calls,
            "by_operation": dict(sorted(self.calls.items())),
            "waha_calls": self.waha_calls,
            "log_bytes": self.log_bytes,
            "note": self.note,
            "documented": dict(sorted(self.documented.items())) if self.documented is not None else None,
            "as_documented": self.as_documented,
        }


@dataclass
class KnownGuest:
    """The guest the inbound flows write as: registered, with an active stay and no staff in the conversation."""

    phone_number: str
    user_id: str

    @property
    def chat_id(self) -> str:
        return chat_id_of(self.phone_number)


def _changed(before: Images, after: Images) -> set[Key]:
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def _measured(
    stack: BenchStack,
    key: str,
    title: str,
    action: Callable[[], Any],
    note: str = "",
    documented: Counter[str] | None = None,
) -> tuple[FlowCalls, Any]:
    images_before = stack.images()
    logged_before = stack.sink.bytes_written
    with recording(keep_details=True) as log, http_recording(stack.waha.url) as http:
        value = action()
    flow = FlowCalls(
        key=key,
        title=title,
        calls=Counter(log.counts),
        waha_calls=http.total,
        log_bytes=stack.sink.bytes_written - logged_before,
        records=list(log.records),
        note=note,
        documented=documented,
    )
    images_after = stack.images()
    # What the cost model needs: the items the calls named (a failed write costs by its item's size too)
    # and every item the flow changed (what the indexes are charged for).
    kept = touched_keys(flow.records) | _changed(images_before, images_after)
    flow.before = {key: images_before[key] for key in kept if key in images_before}
    flow.after = {key: images_after[key] for key in kept if key in images_after}
    return flow, value


class Flows:
    """Runs the flows and keeps them by key."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.flows: dict[str, FlowCalls] = {}

    def measure(
        self,
        key: str,
        title: str,
        action: Callable[[], Any],
        note: str = "",
        documented: Counter[str] | None = None,
    ) -> Any:
        flow, value = _measured(self.stack, key, title, action, note, documented)
        self.flows[key] = flow
        return value

    def webhook(self, key: str, title: str, delivery: dict[str, Any], expected: str, **details: Any) -> Outcome:
        return self.measure(key, title, lambda: self.stack.inbound(delivery, expected=expected), **details)


def run(stack: BenchStack) -> tuple[dict[str, FlowCalls], KnownGuest]:
    """Every flow once; returns them keyed, and the known guest."""
    flows = Flows(stack)
    known = _registrations(flows)
    _inbound(flows, known)
    _hotel_side(flows)
    _stays(flows)
    _history_and_sender(flows, known)
    _sweeper(flows, known)
    return flows.flows, known


def _registrations(flows: Flows) -> KnownGuest:
    stack = flows.stack
    phone = stack.phones.next()
    registration, _ = flows.measure(
        "register_new",
        "Register (new guest)",
        lambda: stack.register(phone),
        "the usual case: the phone's lookup read, the welcome queued, one transaction",
        _calls(GetItem=1, SendMessage=1, TransactWriteItems=1),
    )
    known = KnownGuest(phone_number=phone, user_id=registration["user_id"])
    new_stay = {"room": "202", "checkin_date": days_ago(-1)}
    flows.measure(
        "register_returning",
        "Register (returning guest, new stay)",
        lambda: stack.register(phone, **new_stay),
        "the same transaction also closes the guest's earlier stay",
        _calls(GetItem=1, SendMessage=1, TransactWriteItems=1),
    )
    flows.measure(
        "register_repeat",
        "Register (same stay again, e.g. a retried request)",
        lambda: stack.register(phone, **new_stay),
        "answered from the lookup item",
        _calls(GetItem=1),
    )
    idempotency_key, keyed_phone = "bench-registration-1", stack.phones.next()
    flows.measure(
        "register_idempotency_key",
        "Register with an Idempotency-Key (new guest)",
        lambda: stack.register(keyed_phone, idempotency_key=idempotency_key),
        "one BatchGetItem reads the lookup and the key's record together",
        _calls(BatchGetItem=1, SendMessage=1, TransactWriteItems=1),
    )
    flows.measure(
        "register_idempotency_replay",
        "Register, retried with the same Idempotency-Key",
        lambda: stack.register(keyed_phone, idempotency_key=idempotency_key),
        "answered from the key's record",
        _calls(BatchGetItem=1),
    )
    flows.measure(
        "register_invalid_phone",
        "Register (invalid phone number)",
        lambda: stack.register("12345"),
        "no lookup to read, nothing queued; the welcome is stored FAILED",
        _calls(TransactWriteItems=1),
    )
    return known


def _inbound(flows: Flows, known: KnownGuest) -> None:
    stack = flows.stack
    flows.webhook(
        "inbound_first",
        "Inbound message, first in a container",
        webhook_delivery(known.chat_id, "Hello, first message"),
        "stored",
        note="reads the webhook HMAC key from SSM; cached for 5 minutes",
        documented=_calls(BatchGetItem=1, SendMessage=1, TransactWriteItems=1, GetParameter=1),
    )
    delivery = webhook_delivery(known.chat_id, "Could I have more towels?")
    flows.webhook(
        "inbound",
        "Inbound message (webhook, known guest, answered)",
        delivery,
        "stored",
        note="the usual case: lookup and dedupe marker read together, the reply queued, one transaction",
        documented=_calls(BatchGetItem=1, SendMessage=1, TransactWriteItems=1),
    )
    flows.webhook(
        "inbound_duplicate",
        "Inbound message, redelivered (WAHA retry, or message.any of a stored message)",
        {**delivery, "event": "message.any"},
        "duplicate",
        note="the dedupe marker is found by the read",
        documented=_calls(BatchGetItem=1),
    )
    # A guest typing three lines in a row, with the cooldown the template deploys: one answer for the three.
    burst = stack.register()[0]
    chat_id = chat_id_of(burst["phone_number"])
    with stack.conversation_setting("AUTO_REPLY_COOLDOWN_MINUTES", DEPLOYED_COOLDOWN_MINUTES):
        for index, (suffix, note, documented) in enumerate(
            [
                (
                    "first, answered",
                    "as an inbound message",
                    _calls(BatchGetItem=1, SendMessage=1, TransactWriteItems=1),
                ),
                (
                    "second, within the cooldown",
                    "stored without a reply: nothing queued",
                    _calls(BatchGetItem=1, TransactWriteItems=1),
                ),
                ("third, within the cooldown", "the same", _calls(BatchGetItem=1, TransactWriteItems=1)),
            ],
            start=1,
        ):
            flows.webhook(
                f"burst_{index}",
                f"Three quick lines from a guest: the {suffix}",
                webhook_delivery(chat_id, f"Line {index} of three"),
                "stored",
                note=note,
                documented=documented,
            )
    stale = webhook_delivery(known.chat_id, "An old delivery replayed")
    stale["timestamp"] -= 25 * 3600 * 1000
    flows.webhook(
        "webhook_stale",
        "Webhook, `stale` (envelope older than WEBHOOK_MAX_AGE_HOURS)",
        stale,
        "stale",
        note="refused from the envelope alone",
        documented=Counter(),
    )
    other_session = webhook_delivery(known.chat_id, "Hello from another account")
    other_session["session"] = "another-account"
    flows.webhook(
        "webhook_other_session",
        "Webhook, another WAHA session",
        other_session,
        "ignored",
        note="refused from the envelope alone",
        documented=Counter(),
    )
    flows.webhook(
        "session_status",
        "Webhook, `session.status`",
        session_status_delivery("WORKING"),
        "stored",
        note="conditional on no newer status stored",
        documented=_calls(UpdateItem=1),
    )
    flows.measure(
        "health",
        "Health",
        lambda: stack.api(HEALTH, health_event()),
        "the served sessions' status items; the outbound and dead-letter queues",
        _calls(BatchGetItem=1, GetQueueAttributes=4),
    )


def _hotel_side(flows: Flows) -> None:
    """Staff and the hotel's own WhatsApp, on a guest of their own (a staff message quiets the bot)."""
    stack = flows.stack
    registration = stack.register()[0]
    chat_id, session_id = chat_id_of(registration["phone_number"]), registration["session_id"]
    flows.measure(
        "staff_reply",
        "Staff reply",
        lambda: stack.api(CONVERSATIONS, staff_reply_event(session_id), expected=202),
        "the SessionRef names the partition; one transaction writes the message, session and lookup",
        _calls(GetItem=1, SendMessage=1, TransactWriteItems=1),
    )
    flows.measure(
        "resolve",
        "Resolve (hand back to the bot)",
        lambda: stack.api(CONVERSATIONS, resolve_event(session_id)),
        documented=_calls(GetItem=1, TransactWriteItems=1),
    )
    flows.webhook(
        "hotel_message",
        "Webhook, the hotel's own message (message.any, fromMe)",
        webhook_delivery(chat_id, "Your laundry is ready.", event="message.any", from_me=True),
        "stored",
        note="not one of our sends (the waha_ids Query finds nothing): stored as Staff, nothing queued",
        documented=_calls(Query=1, BatchGetItem=1, TransactWriteItems=1),
    )
    # The welcome, sent: WAHA echoes it on message.any and ticks it with message.ack, by the id we asked for.
    stack.deliver_queued()
    welcome = stack.message_keys(registration["user_id"], kind="welcome")[0]
    waha_id = our_waha_id(chat_id, welcome)
    flows.webhook(
        "inbound_own_echo",
        "Webhook, our own send echoed (message.any, fromMe)",
        webhook_delivery(chat_id, "Welcome!", message_id=waha_id, event="message.any", from_me=True),
        "ignored",
        note="the waha_ids Query finds our message: nothing else",
        documented=_calls(Query=1),
    )
    flows.webhook(
        "ack",
        "Webhook, delivery tick (message.ack READ)",
        ack_delivery(chat_id, waha_id, 3),
        "updated",
        note="the waha_ids Query, then an UpdateItem conditioned on the statuses the tick may move from",
        documented=_calls(Query=1, UpdateItem=1),
    )
    flows.webhook(
        "ack_late",
        "Webhook, delivery tick that is not news (DEVICE after READ)",
        ack_delivery(chat_id, waha_id, 2),
        "unchanged",
        note="the UpdateItem's condition fails",
        documented=_calls(Query=1, UpdateItem=1),
    )
    flows.webhook(
        "ack_unknown",
        "Webhook, delivery tick for an id we never sent",
        ack_delivery(chat_id, f"true_{chat_id}_{'0' * 32}", 3),
        "ignored",
        note="the Query only",
        documented=_calls(Query=1),
    )
    with stack.more_guests(SESSIONS_PAGE):
        flows.measure(
            "sessions",
            f"List of conversations (a page of {SESSIONS_PAGE})",
            lambda: stack.api(CONVERSATIONS, sessions_event()),
            "one Query on open_sessions",
            _calls(Query=1),
        )
        flows.measure(
            "sessions_waiting",
            f"List of conversations, ?status=waiting (of {SESSIONS_PAGE} open)",
            lambda: stack.api(CONVERSATIONS, sessions_event("waiting")),
            "a filter, not a call",
            _calls(Query=1),
        )


def _stays(flows: Flows) -> None:
    """Check-out, the scheduled closing and retention, and erasure: each on guests of its own."""
    stack = flows.stack
    # Earlier flows closed stays (a returning guest's, the burst guest's...); the measured run finds one only.
    stack.scheduled(EXPIRE)
    # A stay as the cost model has it (bench.cost): the welcome and ten questions, each answered.
    leaving = stack.register()[0]
    for index in range(MESSAGES_PER_STAY):
        stack.inbound(webhook_delivery(chat_id_of(leaving["phone_number"]), f"Question {index} before leaving"))
    flows.measure(
        "checkout",
        "Check-out",
        lambda: stack.api(CONVERSATIONS, checkout_event(leaving["user_id"])),
        "the guest's sessions, the phone's lookup; one transaction closes, frees the lookup, stores the farewell",
        _calls(Query=1, GetItem=1, SendMessage=1, TransactWriteItems=1),
    )
    flows.measure(
        "checkout_again",
        "Check-out, again (stay already closed)",
        lambda: stack.api(CONVERSATIONS, checkout_event(leaving["user_id"])),
        "answered with the closed session",
        _calls(Query=1),
    )
    messages = 2 + 2 * MESSAGES_PER_STAY  # with the welcome and the farewell
    flows.measure(
        "retention",
        f"Retention run (1 closed stay of {messages} messages)",
        lambda: _expected_run(stack.scheduled(EXPIRE), sessions=1, messages=messages),
        "the closed_sessions index, the stay's messages by range, then n + 3 UpdateItem",
        _calls(Query=2, UpdateItem=messages + 3),
    )
    flows.measure(
        "retention_none",
        "Retention run (nothing closed)",
        lambda: _expected_run(stack.scheduled(EXPIRE), sessions=0, messages=0),
        "hourly",
        _calls(Query=1),
    )
    # A stay whose checkout date is two days past: due to close.
    stack.register(checkin_date=days_ago(3), checkout_date=days_ago(2))
    flows.measure(
        "close_stays",
        "Closing stays past close_at (1 due)",
        lambda: _expected_closed(stack.scheduled(CLOSE_STAYS), 1),
        "one Query on open_sessions, a transaction per stay closed (session and lookup)",
        _calls(Query=1, TransactWriteItems=1),
    )
    flows.measure(
        "close_stays_none",
        "Closing stays past close_at (none due)",
        lambda: _expected_closed(stack.scheduled(CLOSE_STAYS), 0),
        "every 15 minutes",
        _calls(Query=1),
    )
    erased = stack.register()[0]
    for index in range(SMALL_GUEST_QUESTIONS):
        stack.inbound(webhook_delivery(chat_id_of(erased["phone_number"]), f"Question {index}"))
    items = stack.partition_size(erased["user_id"]) + 1  # and the session's reference item
    flows.measure(
        "erase",
        f"Erase a guest ({items} items)",
        lambda: stack.api(ERASE, erase_event(erased["user_id"]), expected=204),
        "the query pages through the partition (1 MB a page); one BatchWriteItem per 25 items",
        _calls(GetItem=1, DeleteItem=1, Query=2, PutItem=1, BatchWriteItem=-(-items // 25), ListObjectsV2=1),
    )
    flows.measure(
        "erase_again",
        "Erase, repeated",
        lambda: stack.api(ERASE, erase_event(erased["user_id"]), expected=204),
        "only the tombstone is left (the guest's files are listed again, to finish an interrupted erasure)",
        _calls(GetItem=1, Query=1, ListObjectsV2=1),
    )


def _history_and_sender(flows: Flows, known: KnownGuest) -> None:
    stack = flows.stack
    # A conversation long enough to fill the page (the default limit, 50), as a guest's would after a while.
    stack.write_messages(known.user_id, known.chat_id, HISTORY_PAGE, pending=False)
    flows.measure(
        "history",
        f"History page ({HISTORY_PAGE} messages)",
        lambda: stack.history(known.user_id),
        documented=_calls(Query=1),
    )
    flows.measure(
        "history_unknown",
        "History of an id no guest has (404)",
        lambda: stack.api(HISTORY, history_event(str(uuid.uuid4())), expected=404),
        "the first page is empty: the GetItem of the profile tells an unknown user from one without messages",
        _calls(Query=1, GetItem=1),
    )
    # Replies waiting, so that a full batch of ten is on the queue whatever SQS hands out first.
    stack.purge_queue()
    for index in range(11):
        stack.inbound(webhook_delivery(known.chat_id, f"Question {index}"))
    batch = stack.receive(10)
    flows.measure(
        "sender_batch10",
        "Sender, one batch of 10 messages",
        lambda: stack.send(batch),
        "per message a claim, a sendText and the outcome",
        _calls(BatchGetItem=1, UpdateItem=20),
    )
    stack.delete(batch)
    single = stack.receive(1)
    flows.measure(
        "sender_batch1",
        "Sender, one batch of 1 message",
        lambda: stack.send(single),
        documented=_calls(BatchGetItem=1, UpdateItem=2),
    )
    stack.delete(single)


def _sweeper(flows: Flows, known: KnownGuest) -> None:
    stack = flows.stack
    stack.purge_queue()
    flows.measure(
        "sweeper", "Sweeper run (nothing stale)", lambda: _swept(stack.sweep(), 0), documented=_calls(Query=1)
    )
    stale = stack.write_messages(known.user_id, known.chat_id, 10, pending=True, age_seconds=3600)
    flows.measure(
        "sweeper_stale",
        "Sweeper run (10 unqueued messages)",
        lambda: _swept(stack.sweep(), 10),
        "messages whose SendMessage failed more than a minute ago: queued 10 a call, then each one's mark removed",
        _calls(Query=1, SendMessageBatch=1, UpdateItem=10),
    )
    # Leave no stale rows behind: every later sweep would queue them again.
    stack.forget(stale)
    stack.purge_queue()


def _swept(outcome: Outcome, expected: int) -> Outcome:
    requeued = (outcome.result or {}).get("requeued")
    if requeued != expected:
        raise RuntimeError(
            f"the sweeper re-queued {requeued} messages, expected {expected}: {json.dumps(outcome.result)}"
        )
    return outcome


def _expected_closed(outcome: Outcome, expected: int) -> Outcome:
    if (outcome.result or {}).get("closed") != expected:
        raise RuntimeError(f"the closing run closed {outcome.result}, expected {expected}")
    return outcome


def _expected_run(outcome: Outcome, sessions: int, messages: int) -> Outcome:
    result = outcome.result or {}
    if (result.get("sessions"), result.get("messages")) != (sessions, messages):
        raise RuntimeError(f"the retention run stamped {result}, expected {sessions} sessions, {messages} messages")
    return outcome
