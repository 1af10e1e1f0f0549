"""Each flow makes the fewest AWS calls the design allows (docs/architecture.md), and none to WAHA inline."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bench.calls import count_calls, http_recording
from concierge.conversations.ticks import ACK_DEVICE, ACK_READ, ACK_SERVER
from tests.conftest import forget_cached_clients
from tests.driver import Concierge, hotel_message, our_waha_id, waha_message

HOUR_MS = 3_600_000


def test_register_new_guest_is_one_read_one_transaction_and_one_send(concierge: Concierge) -> None:
    """A new guest: the phone's lookup read, 1 TransactWriteItems and 1 SQS SendMessage."""
    calls = count_calls(concierge.register)

    assert calls == Counter({"DynamoDB.GetItem": 1, "DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1})


def test_returning_guest_costs_the_same_as_a_new_one(concierge: Concierge) -> None:
    """A returning guest: the read finds them, one transaction closes the old stay and writes the new one."""
    concierge.register()

    calls = count_calls(lambda: concierge.register(room_number="202", checkin_date="2025-12-01"))

    assert calls == Counter({"DynamoDB.GetItem": 1, "DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1})


def test_repeated_stay_is_one_read(concierge: Concierge) -> None:
    """The same stay registered again is answered from the lookup item: nothing written or queued."""
    concierge.register()

    calls = count_calls(concierge.register)

    assert calls == Counter({"DynamoDB.GetItem": 1})


def test_inbound_message_is_one_read_one_transaction_one_send_and_no_waha_call(concierge: Concierge) -> None:
    """The webhook's budget: 1 BatchGetItem, 1 TransactWriteItems, 1 SendMessage, and nothing sent to WAHA."""
    concierge.register()
    concierge.deliver_queued()

    with http_recording(concierge.waha.url) as waha_calls:
        calls = count_calls(lambda: concierge.webhook(waha_message()))

    assert calls == Counter({"DynamoDB.BatchGetItem": 1, "DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1})
    assert waha_calls.total == 0


def test_redelivered_event_costs_one_read(concierge: Concierge) -> None:
    """A duplicate delivery is recognised by the read that finds the guest: nothing written or queued."""
    concierge.register()
    delivery = waha_message()
    concierge.webhook(delivery)

    calls = count_calls(lambda: concierge.webhook(delivery))

    assert calls == Counter({"DynamoDB.BatchGetItem": 1})


def test_history_page_is_one_query(concierge: Concierge) -> None:
    """A page of the conversation is one Query."""
    _, guest = concierge.register()

    calls = count_calls(lambda: concierge.history(guest["user_id"]))

    assert calls == Counter({"DynamoDB.Query": 1})


def test_sender_batch_of_ten_reads_once_and_claims_and_records_each(concierge: Concierge) -> None:
    """Ten welcomes, each the first message to its number: 1 BatchGetItem (the messages and the guests'
    profiles), per message a claim, its outcome and the number's answer on the profile (3 UpdateItem); to WAHA
    a check-exists and a sendText each, no look-up."""
    for index in range(10):
        concierge.register(phone_number=f"08123456781{index}")
    poller = concierge.poller()

    with http_recording(concierge.waha.url) as waha_calls:
        calls = count_calls(poller.poll_once)

    assert waha_calls.total == 20
    ours = Counter({op: n for op, n in calls.items() if op.startswith("DynamoDB.")})
    assert ours == Counter({"DynamoDB.BatchGetItem": 1, "DynamoDB.UpdateItem": 30})
    assert len(concierge.waha.sent_messages()) == 10


def _paced(monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    for name, value in {"AUTO_REPLY_COOLDOWN_MINUTES": "0", **settings}.items():
        monkeypatch.setenv(name, value)
    forget_cached_clients()


def test_a_paced_batch_takes_its_slots_in_one_write(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten replies with both limits and typing on: besides the batch's read, one conditional PutItem of the send
    schedule for the whole batch, then a claim and an outcome per message (numbers already known); to WAHA
    sendSeen, startTyping, stopTyping and sendText each."""
    for index in range(10):
        concierge.register(phone_number=f"08123456781{index}")
    concierge.deliver_all()
    _paced(
        monkeypatch,
        TYPING_SECONDS_MAX="0.05",
        MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT="1",
        MAX_MESSAGES_PER_MINUTE="600",
    )
    for index in range(10):
        concierge.webhook(waha_message(chat_id=f"628123456781{index}@c.us", text="Is the pool open?"))
    poller = concierge.poller()

    with http_recording(concierge.waha.url) as waha_calls:
        calls = count_calls(poller.poll_once)

    assert waha_calls.total == 40 and len(concierge.waha.sent_messages()) == 20
    ours = Counter({op: n for op, n in calls.items() if not op.startswith("SQS.ReceiveMessage")})
    assert ours == Counter(
        {"DynamoDB.BatchGetItem": 1, "DynamoDB.PutItem": 1, "DynamoDB.UpdateItem": 20, "SQS.DeleteMessageBatch": 1}
    )


def test_messages_waiting_for_their_slots_are_queued_again_in_one_call(
    concierge: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replies whose slots lie far ahead (a minute between two messages to a chat) cost one SendMessageBatch for
    the batch, beside the read and the schedule's write; nothing is claimed or sent."""
    concierge.register()
    concierge.deliver_all()
    _paced(monkeypatch, MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT="60", MAX_MESSAGES_PER_MINUTE="0")
    for text in ("One", "Two", "Three"):
        concierge.webhook(waha_message(text=text))
    poller = concierge.poller()

    calls = count_calls(poller.poll_once)

    ours = Counter({op: n for op, n in calls.items() if not op.startswith("SQS.ReceiveMessage")})
    assert ours == Counter(
        {
            "DynamoDB.BatchGetItem": 1,
            "DynamoDB.PutItem": 1,
            "DynamoDB.UpdateItem": 2,
            "SQS.SendMessageBatch": 1,
            "SQS.DeleteMessageBatch": 1,
        }
    )
    assert len(concierge.waha.sent_messages()) == 2 and concierge.waiting_records() == 2


def test_an_ack_is_one_query_and_one_conditional_write(concierge: Concierge) -> None:
    """A delivery tick: the waha_ids index finds the message, one UpdateItem moves it forward (or not)."""
    _, guest = concierge.register()
    concierge.deliver_queued()
    (welcome,) = concierge.conversation(guest["user_id"])

    read = count_calls(lambda: concierge.ack(our_waha_id(welcome["id"]), ACK_READ))
    late = count_calls(lambda: concierge.ack(our_waha_id(welcome["id"]), ACK_DEVICE))
    server = count_calls(lambda: concierge.ack(our_waha_id(welcome["id"]), ACK_SERVER))

    assert read == late == Counter({"DynamoDB.Query": 1, "DynamoDB.UpdateItem": 1})
    assert server == Counter()


def test_a_guest_message_still_costs_three_calls_beside_ticks_and_hotel_messages(concierge: Concierge) -> None:
    """The webhook's budget for a guest's message holds now that acks and fromMe messages share the handler."""
    concierge.register()
    concierge.deliver_queued()

    calls = count_calls(lambda: concierge.webhook(waha_message(text="Where is the gym?")))

    assert calls == Counter({"DynamoDB.BatchGetItem": 1, "DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1})


def test_the_hotels_own_messages_cost_one_query_when_echoed_and_three_calls_when_stored(
    concierge: Concierge,
) -> None:
    """Our echo ends at the waha_ids Query; a message from the hotel's phone is read and written like a guest's,
    with nothing queued."""
    _, guest = concierge.register()
    concierge.deliver_queued()
    (welcome,) = concierge.conversation(guest["user_id"])

    echo = count_calls(lambda: concierge.webhook(hotel_message(message_id=our_waha_id(welcome["id"], "NOWEB"))))
    stored = count_calls(lambda: concierge.from_hotel("Your laundry is ready."))

    assert echo == Counter({"DynamoDB.Query": 1})
    assert stored == Counter({"DynamoDB.Query": 1, "DynamoDB.BatchGetItem": 1, "DynamoDB.TransactWriteItems": 1})


def test_an_idempotency_key_is_read_with_the_lookup_and_a_retry_is_that_read_alone(concierge: Concierge) -> None:
    """With an Idempotency-Key the read takes the key's record beside the lookup (one BatchGetItem, not two reads);
    the retried request is answered from it."""
    headers = {"Idempotency-Key": "pms-request-1"}

    first = count_calls(lambda: concierge.register(headers=headers))
    retry = count_calls(lambda: concierge.register(headers=headers))

    assert first == Counter({"DynamoDB.BatchGetItem": 1, "DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1})
    assert retry == Counter({"DynamoDB.BatchGetItem": 1})


def test_an_invalid_phone_is_registered_with_one_transaction(concierge: Concierge) -> None:
    """No lookup to read for a number that is not valid, and no welcome to queue."""
    calls = count_calls(lambda: concierge.register(phone_number="12345"))

    assert calls == Counter({"DynamoDB.TransactWriteItems": 1})


def test_three_quick_lines_cost_three_calls_then_two_each(concierge: Concierge) -> None:
    """The answered line costs the budget's 3; the lines within the cooldown are stored without a reply: no
    SendMessage."""
    concierge.register()

    lines = [count_calls(lambda text=text: concierge.webhook(waha_message(text=text))) for text in ("a", "b", "c")]

    answered = Counter({"DynamoDB.BatchGetItem": 1, "DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1})
    quiet = Counter({"DynamoDB.BatchGetItem": 1, "DynamoDB.TransactWriteItems": 1})
    assert lines == [answered, quiet, quiet]


def test_a_stale_delivery_is_refused_without_any_call(concierge: Concierge) -> None:
    """Too old to trust: answered from the envelope alone."""
    concierge.register()
    delivery = waha_message()
    delivery["timestamp"] = int(time.time() * 1000) - 25 * HOUR_MS

    calls = count_calls(lambda: concierge.webhook(delivery))

    assert calls == Counter()


def test_a_staff_reply_is_a_read_a_send_and_a_transaction_and_resolve_a_read_and_a_transaction(
    concierge: Concierge,
) -> None:
    """The SessionRef names the partition; one transaction stores the message with the session and the lookup."""
    _, guest = concierge.register()

    reply = count_calls(lambda: concierge.staff_reply(guest["session_id"]))
    resolve = count_calls(lambda: concierge.resolve(guest["session_id"]))

    assert reply == Counter({"DynamoDB.GetItem": 1, "DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1})
    assert resolve == Counter({"DynamoDB.GetItem": 1, "DynamoDB.TransactWriteItems": 1})


def test_check_out_is_four_calls_and_a_repeat_is_one_query(concierge: Concierge) -> None:
    """The guest's sessions, the phone's lookup, the farewell queued, one transaction; again: the sessions only."""
    _, guest = concierge.register()

    first = count_calls(lambda: concierge.checkout(guest["user_id"]))
    again = count_calls(lambda: concierge.checkout(guest["user_id"]))

    assert first == Counter(
        {"DynamoDB.Query": 1, "DynamoDB.GetItem": 1, "DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1}
    )
    assert again == Counter({"DynamoDB.Query": 1})


def test_the_list_of_conversations_is_one_query_with_or_without_the_waiting_filter(concierge: Concierge) -> None:
    concierge.register()
    concierge.register(phone_number="081234567891", full_name="Another Guest")
    concierge.webhook(waha_message())

    everyone = count_calls(concierge.sessions)
    waiting = count_calls(lambda: concierge.sessions(status="waiting"))

    assert everyone == waiting == Counter({"DynamoDB.Query": 1})


def test_the_closing_run_is_one_query_and_a_transaction_per_stay_it_closes(concierge: Concierge) -> None:
    """A stay past its checkout date is closed (session and lookup in one transaction); an open one costs nothing."""
    today = datetime.now(UTC).date()
    concierge.register(checkin_date=str(today - timedelta(days=3)), checkout_date=str(today - timedelta(days=2)))
    concierge.register(phone_number="081234567891", full_name="Staying Guest", checkin_date=str(today))

    due = count_calls(concierge.close_stays)
    none_due = count_calls(concierge.close_stays)

    assert due == Counter({"DynamoDB.Query": 1, "DynamoDB.TransactWriteItems": 1})
    assert none_due == Counter({"DynamoDB.Query": 1})


def test_a_guests_photo_costs_the_webhook_three_calls_and_its_copy_job_five(concierge: Concierge) -> None:
    """The webhook's budget holds for a photo: its one SendMessage is the copy job (which carries the reply's key).
    The copy: the batch's read, the reply handed on, the file put in the bucket and the row's update."""
    concierge.register()
    concierge.deliver_queued()

    with http_recording(concierge.waha.url) as waha_calls:
        webhook = count_calls(lambda: concierge.webhook(concierge.media_message("My room's view")))
    media_jobs, outbound = concierge.queue_depth("MediaQueue"), concierge.queue_depth()
    copy = count_calls(concierge.copy_media)

    assert webhook == Counter({"DynamoDB.BatchGetItem": 1, "DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1})
    assert waha_calls.total == 0 and (media_jobs, outbound) == (1, 0)
    ours = Counter({op: n for op, n in copy.items() if not op.startswith("SQS.") or op == "SQS.SendMessage"})
    assert ours == Counter(
        {"DynamoDB.BatchGetItem": 1, "SQS.SendMessage": 1, "S3.PutObject": 1, "DynamoDB.UpdateItem": 1}
    )
