"""Each flow of docs/architecture.md's table "Flows and what each costs", run once: its AWS calls by operation
(checked against what the table says), its HTTP calls to WAHA, the bytes it logs, and its DynamoDB capacity
(bench.capacity) from the table's items before and after it.

The flows run in an order where each finds the data it needs, on guests of their own where one flow would
change another's outcome (a staff reply quiets the bot for the guest).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench import capacity
from bench.calls import http_recording, recording
from bench.stack import (
    ANSWERER,
    ANSWERS,
    CLOSE_STAYS,
    CONVERSATIONS,
    DEPLOYED_COOLDOWN_MINUTES,
    ERASE,
    EXPIRE,
    HEALTH,
    HISTORY,
    SWEEPER,
    BenchStack,
    ack_delivery,
    chat_id_of,
    checkout_event,
    days_ago,
    erase_event,
    history_event,
    our_waha_id,
    sample_event,
    session_event,
    session_status_delivery,
    sessions_event,
    webhook_delivery,
    written_keys,
)
from devstack.waha_sim import InboundMedia

SERVICES = {"SendMessage": "SQS", "SendMessageBatch": "SQS", "GetQueueAttributes": "SQS", "GetParameter": "SSM"}
SERVICES |= {"ListObjectsV2": "S3", "DeleteObjects": "S3", "PutObject": "S3"}
MESSAGES_PER_STAY = 10  # the cost model's stay (bench.cost)
PAGE = 50  # the history's and the list of conversations' default page
# key | title | the calls docs/architecture.md's table gives (DynamoDB unless SERVICES says) | note (an indented
# line goes on with the note)
TABLE = """
register_new | Register (new guest) | GetItem SendMessage TransactWriteItems | the phone's lookup, one transaction
register_returning | Register (returning guest, new stay) | GetItem SendMessage TransactWriteItems | closes the old stay
register_key | Register with an Idempotency-Key | BatchGetItem SendMessage TransactWriteItems | lookup and key together
register_repeat | Register (same stay again, e.g. a retry) | GetItem | answered from the lookup item
register_key_replay | Register, retried with the same Idempotency-Key | BatchGetItem | answered from the key's record
register_invalid_phone | Register (invalid phone number) | TransactWriteItems | no lookup, nothing queued: stored FAILED
inbound_first | Inbound message, first in a container | BatchGetItem SendMessage TransactWriteItems GetParameter |
  the webhook's HMAC key read from SSM, then cached 5 minutes
inbound | Inbound message (known guest, answered) | BatchGetItem SendMessage TransactWriteItems | the usual case
burst_1 | Three quick lines: the first | BatchGetItem SendMessage TransactWriteItems | queued for answering
burst_2 | Three quick lines: the second | BatchGetItem SendMessage TransactWriteItems | the same: the answering
  function decides the replies
burst_3 | Three quick lines: the third | BatchGetItem SendMessage TransactWriteItems | the same
answer_pair | Answering two (a request, a line for staff) | BatchGetItem*2 SendMessage*2 TransactWriteItems*2 |
  messages and profiles, then lookups; per message its reply queued and one transaction
answer_burst | Answering the three quick lines in one batch | BatchGetItem*2 SendMessage TransactWriteItems*3 |
  one auto-reply; each line decided on the memory the previous one left
staff_reply | Staff reply | GetItem SendMessage TransactWriteItems | the SessionRef names the partition
resolve | Resolve (hand back to the bot) | GetItem TransactWriteItems |
checkout | Check-out | Query GetItem SendMessage TransactWriteItems | close, free the lookup, store the farewell
checkout_again | Check-out, again (stay already closed) | Query | answered with the closed session
sessions | List of conversations (a page of 50) | Query | one Query on open_sessions
sessions_waiting | List of conversations, ?status=waiting | Query | a filter, not a call
close_stays | Closing stays past close_at (1 due) | Query TransactWriteItems | a transaction per stay closed
close_stays_none | Closing stays past close_at (none due) | Query | every 15 minutes
inbound_duplicate | Inbound message, redelivered (WAHA retry or message.any) | BatchGetItem | the dedupe marker is found
webhook_other_session | Webhook, another WAHA session | | refused from the envelope alone
webhook_stale | Webhook, `stale` (older than WEBHOOK_MAX_AGE_HOURS) | | refused from the envelope alone
ack | Webhook, delivery tick (message.ack READ) | Query UpdateItem | conditioned on the statuses it may move from
ack_late | Webhook, delivery tick that is not news (DEVICE after READ) | Query UpdateItem | the condition fails
ack_unknown | Webhook, delivery tick for an id we never sent | Query | the Query only
hotel_message | Webhook, the hotel's own message (message.any, fromMe) | Query BatchGetItem TransactWriteItems |
  not one of our sends: stored as Staff, nothing queued
own_echo | Webhook, our own send echoed (message.any, fromMe) | Query | the waha_ids Query finds it: nothing else
session_status | Webhook, `session.status` | UpdateItem | conditional on no newer status stored
health | Health | BatchGetItem GetQueueAttributes*6 | the sessions' status items, six queues
history | History page (50 messages) | Query |
history_unknown | History of an id no guest has (404) | Query GetItem | an unknown user or one without messages?
inbound_photo | Inbound photo | BatchGetItem SendMessage TransactWriteItems | SendMessage: the copy job, with the reply
copy_job | Copy job (FetchMediaFunction), batch of 1 | BatchGetItem SendMessage PutObject UpdateItem |
  the reply's key handed on, the file copied from WAHA
sender_batch10 | Sender, one batch of 10 messages | BatchGetItem UpdateItem*20 | per message a claim and its outcome
sender_batch1 | Sender, one batch of 1 message | BatchGetItem UpdateItem*2 |
sweeper | Sweeper run (nothing stale) | Query*2 | the outbound and the answer queue's markers
sweeper_stale | Sweeper run (10 unqueued messages) | Query*2 SendMessageBatch UpdateItem*10 | queued 10 a call
erase | Erase a guest (two questions) | GetItem DeleteItem Query*2 PutItem BatchWriteItem ListObjectsV2 | 25 a batch
erase_again | Erase, repeated | GetItem Query ListObjectsV2 | only the tombstone is left; files listed again
retention | Retention run (1 closed stay of 10 questions) | Query*2 UpdateItem*(n + 3) | n: the stay's messages
retention_none | Retention run (nothing closed) | Query | hourly
"""


def _rows(table: str) -> dict[str, tuple[str, ...]]:
    lines: list[str] = []
    for line in table.strip().splitlines():
        if line.startswith(" "):  # a note that goes on
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return {key: tuple(rest) for key, *rest in ([part.strip() for part in line.split("|")] for line in lines)}


FLOWS = _rows(TABLE)


def documented(text: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for word in text.split():
        name, _, times = word.partition("*")
        counts[f"{SERVICES.get(name, 'DynamoDB')}.{name}"] += int(times or 1)
    return counts


class Flows:
    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.flows: dict[str, dict[str, Any]] = {}

    def __call__(self, key: str, action: Callable[[], Any], expected: str | None = None) -> Any:
        stack, (title, listed, note) = self.stack, FLOWS[key]
        expected = listed if expected is None else expected
        before, logged = stack.images(), stack.sink.bytes_written
        with recording(keep_details=True) as log, http_recording(stack.waha.url) as waha:
            value = action()
        after = stack.images()
        changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        kept = capacity.touched(log.records) | changed
        images = [{key: images[key] for key in kept if key in images} for images in (before, after)]
        self.flows[key] = {
            "title": title,
            "aws_calls": sum(log.counts.values()),
            "by_operation": dict(sorted(log.counts.items())),
            "documented": dict(sorted(documented(expected).items())),
            "as_documented": +log.counts == +documented(expected),
            "waha_calls": waha.total,
            "log_bytes": stack.sink.bytes_written - logged,
            "note": note,
            "capacity": capacity.of_flow(log.records, *images),
        }
        return value

    def webhook(self, key: str, delivery: dict[str, Any], outcome: str = "stored") -> Any:
        return self(key, lambda: self.stack.inbound(delivery, outcome))


def measure(stack: BenchStack) -> dict[str, dict[str, Any]]:
    """Every flow once, in the table's order."""
    flow = Flows(stack)
    guest = stack.new_guest()
    known, chat = flow("register_new", lambda: stack.register(guest)), chat_id_of(guest["phone_number"])
    returning = {**guest, "room_number": "202", "checkin_date": days_ago(-1)}
    flow("register_returning", lambda: stack.register(returning))
    flow("register_repeat", lambda: stack.register(returning))
    keyed = stack.new_guest()
    flow("register_key", lambda: stack.register(keyed, "bench-key-1"))
    flow("register_key_replay", lambda: stack.register(keyed, "bench-key-1"))
    flow("register_invalid_phone", lambda: stack.register(stack.new_guest(phone_number="12345")))

    flow.webhook("inbound_first", webhook_delivery(chat, "Hello, first message"))
    delivery = webhook_delivery(chat, "Could I have more towels?")
    flow.webhook("inbound", delivery)
    flow.webhook("inbound_duplicate", {**delivery, "event": "message.any"}, "duplicate")
    photo = webhook_delivery(chat, "The tap in my bathroom")
    photo["payload"].update(hasMedia=True, media=stack.waha.keep_file(photo["payload"]["id"], InboundMedia()))
    flow.webhook("inbound_photo", photo)
    jobs = stack.receive(1, "MediaQueue")
    flow("copy_job", lambda: stack.call("FetchMediaFunction", stack.sqs_event(jobs, "MediaQueue")))
    stack.delete(jobs, "MediaQueue")
    pair = stack.receive(2, ANSWERS)  # the first line and the towels
    flow("answer_pair", lambda: stack.call(ANSWERER, stack.sqs_event(pair, ANSWERS)))
    stack.delete(pair, ANSWERS)
    burst = chat_id_of(stack.register()["phone_number"])
    with stack.setting(AUTO_REPLY_COOLDOWN_MINUTES=DEPLOYED_COOLDOWN_MINUTES):
        for index in (1, 2, 3):
            flow.webhook(f"burst_{index}", webhook_delivery(burst, f"Line {index} of three"))
        lines = stack.receive(3, ANSWERS)
        flow("answer_burst", lambda: stack.call(ANSWERER, stack.sqs_event(lines, ANSWERS)))
        stack.delete(lines, ANSWERS)
    stale = webhook_delivery(chat, "An old delivery replayed")
    stale["timestamp"] -= 25 * 3600 * 1000
    flow.webhook("webhook_stale", stale, "stale")
    flow.webhook("webhook_other_session", {**webhook_delivery(chat, "Hi"), "session": "another"}, "ignored")
    flow.webhook("session_status", session_status_delivery())
    flow("health", lambda: stack.api(HEALTH, sample_event("health")))

    hotel = stack.register()  # a guest of their own: a staff message quiets the bot
    hotel_chat, session_id = chat_id_of(hotel["phone_number"]), hotel["session_id"]
    reply = {"text": "Your towels are on their way.", "author": "Front desk"}
    flow("staff_reply", lambda: stack.api(CONVERSATIONS, session_event(session_id, "messages", reply), 202))
    flow("resolve", lambda: stack.api(CONVERSATIONS, session_event(session_id, "resolve", {})))
    laundry = webhook_delivery(hotel_chat, "Your laundry is ready.", event="message.any", from_me=True)
    flow.webhook("hotel_message", laundry)
    stack.deliver_queued()
    waha_id = our_waha_id(hotel_chat, stack.message_keys(hotel["user_id"], "welcome")[0])
    echo = webhook_delivery(hotel_chat, "Welcome!", message_id=waha_id, event="message.any", from_me=True)
    flow.webhook("own_echo", echo, "ignored")
    flow.webhook("ack", ack_delivery(hotel_chat, waha_id, 3), "updated")
    flow.webhook("ack_late", ack_delivery(hotel_chat, waha_id, 2), "unchanged")
    flow.webhook("ack_unknown", ack_delivery(hotel_chat, f"true_{hotel_chat}_{'0' * 32}", 3), "ignored")
    with more_guests(stack, PAGE):
        flow("sessions", lambda: stack.api(CONVERSATIONS, sessions_event()))
        flow("sessions_waiting", lambda: stack.api(CONVERSATIONS, sessions_event("waiting")))

    stack.scheduled(EXPIRE)  # earlier flows closed stays; the measured run finds one only
    leaving = stack.register()
    for index in range(MESSAGES_PER_STAY):
        stack.inbound(webhook_delivery(chat_id_of(leaving["phone_number"]), f"Question {index} before leaving"))
    flow("checkout", lambda: stack.api(CONVERSATIONS, checkout_event(leaving["user_id"])))
    flow("checkout_again", lambda: stack.api(CONVERSATIONS, checkout_event(leaving["user_id"])))
    stay = sum(item["sk"]["S"].startswith("MSG#") for item in stack.partition(leaving["user_id"]))
    flow("retention", lambda: _expect(stack.scheduled(EXPIRE), sessions=1), f"Query*2 UpdateItem*{stay + 3}")
    flow("retention_none", lambda: _expect(stack.scheduled(EXPIRE), sessions=0, messages=0))
    stack.register(stack.new_guest(checkin_date=days_ago(3), checkout_date=days_ago(2)))
    flow("close_stays", lambda: _expect(stack.scheduled(CLOSE_STAYS), closed=1))
    flow("close_stays_none", lambda: _expect(stack.scheduled(CLOSE_STAYS), closed=0))
    erased = stack.register()
    for index in range(2):
        stack.inbound(webhook_delivery(chat_id_of(erased["phone_number"]), f"Question {index}"))
    flow("erase", lambda: stack.api(ERASE, erase_event(erased["user_id"]), 204))
    flow("erase_again", lambda: stack.api(ERASE, erase_event(erased["user_id"]), 204))

    stack.write_messages(known["user_id"], chat, PAGE, pending=False)
    flow("history", lambda: stack.api(HISTORY, history_event(known["user_id"])))
    flow("history_unknown", lambda: stack.api(HISTORY, history_event(str(uuid.uuid4())), 404))
    stack.purge_queue()
    stack.write_messages(known["user_id"], chat, 11, pending=True, enqueue=True)
    for size in (10, 1):
        batch = stack.receive(size)
        flow(f"sender_batch{size}", lambda batch=batch: stack.send(batch))
        stack.delete(batch)
    stack.purge_queue()
    flow("sweeper", lambda: _expect(stack.scheduled(SWEEPER), requeued=0))
    stale_rows = stack.write_messages(known["user_id"], chat, 10, pending=True, age_seconds=3600)
    flow("sweeper_stale", lambda: _expect(stack.scheduled(SWEEPER), requeued=10))
    stack.forget(stale_rows)
    stack.purge_queue()
    return {key: flow.flows[key] for key in FLOWS if key in flow.flows}


def _expect(outcome: Any, **expected: int) -> Any:
    if any((outcome.result or {}).get(name) != value for name, value in expected.items()):
        raise RuntimeError(f"the scheduled run answered {outcome.result}, expected {expected}")
    return outcome


@contextmanager
def more_guests(stack: BenchStack, count: int) -> Iterator[list[dict[str, Any]]]:
    """`count` more registered guests with open stays inside the block; their items and welcomes are gone after
    it (moto's transactions slow down as the table grows)."""
    with recording(keep_details=True) as log:
        guests = [stack.register() for _ in range(count)]
    try:
        yield guests
    finally:
        stack.forget(written_keys(log.records))
        stack.purge_queue()
