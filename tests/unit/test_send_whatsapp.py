"""The sender: queued messages reach WAHA once, failures retry, and the last failure is FAILED in the DLQ."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import boto3
import pytest
import urllib3

from bench.calls import http_recording
from concierge import keys, secrets, store
from concierge.sending import outbox, waha
from concierge.sending.delivery import Batch, DeliveryFailed, waha_message_id
from devstack.waha_sim import WahaSimulator
from tests.conftest import forget_cached_clients, lambda_context
from tests.driver import Concierge, our_waha_id
from tests.lambda_events import sqs_event


def _receive(concierge: Concierge, count: int = 10) -> list[dict]:
    return concierge.sqs.receive_message(
        QueueUrl=concierge.resources.outbound_queue_url, MaxNumberOfMessages=count, AttributeNames=["All"]
    ).get("Messages", [])


def _send(concierge: Concierge, messages: list[dict], timeout_seconds: float = 30) -> dict:
    event = sqs_event(messages, concierge.resources.queue_arns["OutboundQueue"])
    return concierge.handlers["SendWhatsappFunction"](event, lambda_context("SendWhatsappFunction", timeout_seconds))


def test_partial_batch_failure_reports_only_the_failed_records(concierge: Concierge) -> None:
    """In one batch, records whose send fails are reported back; the others are SENT."""
    for index in range(4):
        concierge.register(phone_number=f"08123456780{index}")
    concierge.waha.fail_ratio(0.5, seed=7)

    messages = _receive(concierge)
    result = _send(concierge, messages)

    failed_ids = {failure["itemIdentifier"] for failure in result["batchItemFailures"]}
    statuses = [m["status"] for m in concierge.items_of_type("Message")]
    assert 0 < len(failed_ids) < 4
    assert statuses.count("SENT") == 4 - len(failed_ids) == len(concierge.waha.sent_messages())
    assert statuses.count("PENDING") == len(failed_ids)


def test_after_max_receives_the_message_is_failed_with_reason_and_in_the_dlq(concierge: Concierge) -> None:
    """WAHA down through every retry: the message ends FAILED with the reason and sits in the dead-letter queue."""
    concierge.waha.set_fault("error500")
    _, guest = concierge.register()

    handled = concierge.deliver_queued()

    assert handled == 5  # maxReceiveCount from template.yaml
    (welcome,) = concierge.conversation(guest["user_id"])
    assert welcome["status"] == "FAILED" and welcome["error"].startswith("WAHA answered 500")
    assert concierge.queue_depth("OutboundQueue") == 0
    assert concierge.queue_depth("OutboundDeadLetterQueue") == 1
    (outbox_entry,) = [m for m in concierge.items_of_type("Message")]
    assert "outbox_pk" not in outbox_entry


def test_redriven_message_is_sent_after_recovery(concierge: Concierge) -> None:
    """A FAILED message moved back from the dead-letter queue is sent once WAHA is healthy."""
    concierge.waha.set_fault("down")
    _, guest = concierge.register()
    concierge.deliver_queued()
    concierge.waha.set_fault("ok")

    dead = concierge.sqs.receive_message(QueueUrl=concierge.resources.dead_letter_queue_url).get("Messages", [])
    concierge.sqs.send_message(QueueUrl=concierge.resources.outbound_queue_url, MessageBody=dead[0]["Body"])
    concierge.deliver_queued()

    (welcome,) = concierge.conversation(guest["user_id"])
    assert welcome["status"] == "SENT" and len(concierge.waha.sent_messages()) == 1


def test_redelivered_record_of_a_sent_message_is_not_sent_again(concierge: Concierge) -> None:
    """SQS delivering a record again after WAHA accepted it does not send a second WhatsApp message."""
    concierge.register()
    (message,) = _receive(concierge)

    first = _send(concierge, [message])
    second = _send(concierge, [message])

    assert first == second == {"batchItemFailures": []}
    assert len(concierge.waha.sent_messages()) == 1


def test_send_carries_a_stable_pre_generated_id(concierge: Concierge) -> None:
    """The sendText body carries our message's own id, so a retried send is the same WhatsApp message."""
    concierge.register()
    concierge.deliver_queued()

    (sent,) = concierge.waha.sent_messages()
    (stored,) = concierge.items_of_type("Message")
    assert sent["body"]["id"] == stored["message_id"].replace("-", "").upper()
    assert stored["waha_message_id"].endswith(sent["body"]["id"])


def test_slow_waha_times_out_and_is_retried(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> None:
    """WAHA slower than the read timeout fails the record (retried later) instead of hanging the batch."""
    monkeypatch.setattr("concierge.sending.waha.READ_TIMEOUT_SECONDS", 0.2)
    forget_cached_clients()
    concierge.waha.set_fault("slow")
    _, guest = concierge.register()

    result = _send(concierge, _receive(concierge))

    assert len(result["batchItemFailures"]) == 1
    (welcome,) = concierge.conversation(guest["user_id"])
    assert welcome["status"] == "PENDING" and "in time" in welcome["error"]


def test_records_wait_when_the_invocation_is_about_to_time_out(concierge: Concierge) -> None:
    """With too little time left to wait for WAHA, records go back untouched rather than being cut off."""
    concierge.register()

    result = _send(concierge, _receive(concierge), timeout_seconds=1)

    assert len(result["batchItemFailures"]) == 1 and concierge.waha.sent_messages() == []


def test_waha_api_key_is_sent_when_configured(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> None:
    """With WAHA_API_KEY set, sendText carries X-Api-Key, which a key-protected WAHA requires."""
    with WahaSimulator(api_key="waha-secret") as protected:
        monkeypatch.setenv("WAHA_HOST", protected.url)
        monkeypatch.setenv("WAHA_API_KEY", "waha-secret")
        forget_cached_clients()
        concierge.register()
        concierge.deliver_queued()

        assert len(protected.sent_messages()) == 1


def test_foreign_records_go_back_to_the_queue(concierge: Concierge) -> None:
    """A record that is not a message key fails (and so ends in the DLQ) instead of being dropped silently."""
    concierge.sqs.send_message(QueueUrl=concierge.resources.outbound_queue_url, MessageBody=json.dumps(["x"]))

    result = _send(concierge, _receive(concierge))

    assert len(result["batchItemFailures"]) == 1


# --- exactly one send, without trusting WAHA to drop a repeated id --------------------------------------------


@pytest.fixture
def repeats_accepted(concierge: Concierge) -> Iterator[Concierge]:
    """The simulator sends a repeated pre-generated id again, as real WAHA may: only our claim can stop it."""
    concierge.waha.set_repeated_ids("accept")
    yield concierge
    concierge.waha.set_repeated_ids("accept")


def _records(concierge: Concierge, messages: list[dict]) -> list[dict]:
    return sqs_event(messages, concierge.resources.queue_arns["OutboundQueue"])["Records"]


def _batch(concierge: Concierge, messages: list[dict]) -> Batch:
    """What one sender invocation holds after its BatchGetItem."""
    return Batch(_records(concierge, messages), lambda: 30_000)


def _queue_twice(concierge: Concierge, message: dict) -> list[dict]:
    """A second record for the same message, as the sweeper leaves when a queueing only looked failed."""
    concierge.sqs.send_message(QueueUrl=concierge.resources.outbound_queue_url, MessageBody=message["Body"])
    return [message, *_receive(concierge)]


def _welcome(concierge: Concierge) -> dict:
    (welcome,) = concierge.items_of_type("Message")
    return welcome


def test_one_message_queued_twice_in_one_batch_is_sent_once(repeats_accepted: Concierge) -> None:
    """Two records of one message in one batch (read once as PENDING): the second finds it claimed and SENT."""
    repeats_accepted.register()
    twice = _queue_twice(repeats_accepted, *_receive(repeats_accepted))

    result = _send(repeats_accepted, twice)

    assert len(twice) == 2 and result == {"batchItemFailures": []}
    assert len(repeats_accepted.waha.sent_messages()) == 1
    assert _welcome(repeats_accepted)["status"] == "SENT"


def test_a_sender_holding_a_stale_read_does_not_send_again(repeats_accepted: Concierge) -> None:
    """Two senders both read the message PENDING; the one that comes second finds it SENT and sends nothing."""
    repeats_accepted.register()
    first_record, second_record = _queue_twice(repeats_accepted, *_receive(repeats_accepted))
    first, second = _batch(repeats_accepted, [first_record]), _batch(repeats_accepted, [second_record])

    outcomes = [first.deliver(_records(repeats_accepted, [first_record])[0])]
    outcomes.append(second.deliver(_records(repeats_accepted, [second_record])[0]))

    assert outcomes == ["sent", "already_sent"]
    assert len(repeats_accepted.waha.sent_messages()) == 1


def test_while_one_sender_waits_for_waha_another_does_not_send(
    concierge: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second sender arriving while the first is inside sendText hands its record back; WAHA gets one message."""
    with WahaSimulator(latency_seconds=1.0, repeated_ids="accept") as slow_waha:
        monkeypatch.setenv("WAHA_HOST", slow_waha.url)
        forget_cached_clients()
        concierge.register()
        first_record, second_record = _queue_twice(concierge, *_receive(concierge))
        first, second = _batch(concierge, [first_record]), _batch(concierge, [second_record])

        with ThreadPoolExecutor(max_workers=1) as pool:
            sending = pool.submit(first.deliver, _records(concierge, [first_record])[0])
            _wait_until(lambda: slow_waha.sent_messages() != [])
            with pytest.raises(DeliveryFailed, match="another sender"):
                second.deliver(_records(concierge, [second_record])[0])
            assert sending.result() == "sent"

        assert len(slow_waha.sent_messages()) == 1
        assert _welcome(concierge)["status"] == "SENT"
        # The handed-back record waits out the lease instead of coming straight back.
        assert _receive(concierge) == []


def test_send_that_timed_out_is_found_in_waha_and_not_sent_again(
    repeats_accepted: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAHA sent the message but answered too late: the retry finds our id in the chat and only records SENT."""
    monkeypatch.setattr("concierge.sending.waha.READ_TIMEOUT_SECONDS", 0.2)
    forget_cached_clients()
    repeats_accepted.waha.set_fault("slow")
    repeats_accepted.register()
    (record,) = _receive(repeats_accepted)

    timed_out = _send(repeats_accepted, [record])
    repeats_accepted.waha.set_fault("ok")
    retried = _send(repeats_accepted, [record])

    assert len(timed_out["batchItemFailures"]) == 1 and retried == {"batchItemFailures": []}
    (sent,) = repeats_accepted.waha.sent_messages()
    welcome = _welcome(repeats_accepted)
    assert welcome["status"] == "SENT" and welcome["waha_message_id"] == sent["id"]
    assert "last_error" not in welcome and welcome["attempts"] == 2


def test_send_answered_500_after_waha_sent_it_is_not_sent_again(repeats_accepted: Concierge) -> None:
    """A 5xx may come after the message left (WAHA's engine, a proxy's timeout): the retry looks before sending."""
    repeats_accepted.waha.set_fault("sent500")
    _, guest = repeats_accepted.register()
    (record,) = _receive(repeats_accepted)

    failed = _send(repeats_accepted, [record])
    repeats_accepted.waha.set_fault("ok")
    retried = _send(repeats_accepted, [record])

    assert len(failed["batchItemFailures"]) == 1 and retried == {"batchItemFailures": []}
    assert len(repeats_accepted.waha.sent_messages()) == 1
    (welcome,) = repeats_accepted.conversation(guest["user_id"])
    assert welcome["status"] == "SENT"


def test_send_refused_with_4xx_is_retried_without_a_look_up(
    repeats_accepted: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4xx means WAHA sent nothing: the retry sends straight away (one sendText each, no chat look-up)."""
    monkeypatch.setenv("WAHA_API_KEY", "not-the-key")
    forget_cached_clients()
    with WahaSimulator(api_key="the-key") as protected:
        monkeypatch.setenv("WAHA_HOST", protected.url)
        forget_cached_clients()
        repeats_accepted.register()
        (record,) = _receive(repeats_accepted)
        refused = _send(repeats_accepted, [record])
        monkeypatch.setenv("WAHA_API_KEY", "the-key")

        with http_recording(protected.url) as waha_calls:
            retried = _send(repeats_accepted, [record])

        assert len(refused["batchItemFailures"]) == 1 and retried == {"batchItemFailures": []}
        # The number's check again (the refused one told nothing) and one sendText; no look-up in the chat.
        assert waha_calls.total == 2 and len(protected.sent_messages()) == 1
        calls = [call["call"] for chat in protected.calls().values() for call in chat]
        assert calls == ["checkExists", "sendText", "checkExists", "sendText"]


def test_outcome_unknown_and_waha_cannot_list_the_chat_sends_nothing(
    repeats_accepted: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When WAHA cannot say whether it has the message, nothing is sent; the message waits, still PENDING."""
    monkeypatch.setattr("concierge.sending.waha.READ_TIMEOUT_SECONDS", 0.2)
    forget_cached_clients()
    repeats_accepted.waha.set_fault("slow")
    _, guest = repeats_accepted.register()
    (record,) = _receive(repeats_accepted)
    _send(repeats_accepted, [record])

    repeats_accepted.waha.set_fault("error500")
    result = _send(repeats_accepted, [record])

    assert len(result["batchItemFailures"]) == 1
    assert len(repeats_accepted.waha.sent_messages()) == 1
    (welcome,) = repeats_accepted.conversation(guest["user_id"])
    assert welcome["status"] == "PENDING" and "look-up" in welcome["error"]


@pytest.mark.parametrize("reached_waha", [True, False])
def test_claim_whose_lease_ran_out_is_taken_over_after_a_look_in_waha(
    repeats_accepted: Concierge, reached_waha: bool
) -> None:
    """A sender died holding the claim; once its lease is over the next one takes over and WAHA ends with one."""
    repeats_accepted.register()
    (record,) = _receive(repeats_accepted)
    welcome = _welcome(repeats_accepted)
    _leave_claimed(repeats_accepted, welcome, lease_until=datetime.now(UTC) - timedelta(seconds=1))
    if reached_waha:
        _send_as_the_dead_sender(repeats_accepted.waha, welcome)

    result = _send(repeats_accepted, [record])

    assert result == {"batchItemFailures": []}
    assert len(repeats_accepted.waha.sent_messages()) == 1
    after = _welcome(repeats_accepted)
    assert after["status"] == "SENT" and "claim_owner" not in after and "lease_until" not in after


def test_claim_whose_lease_is_running_is_left_alone(repeats_accepted: Concierge) -> None:
    """A record for a message another sender holds goes back to the queue untouched until the lease ends."""
    repeats_accepted.register()
    (record,) = _receive(repeats_accepted)
    _leave_claimed(repeats_accepted, _welcome(repeats_accepted), lease_until=datetime.now(UTC) + timedelta(minutes=1))

    result = _send(repeats_accepted, [record])

    assert len(result["batchItemFailures"]) == 1 and repeats_accepted.waha.sent_messages() == []
    assert _welcome(repeats_accepted)["claim_owner"] == "a-sender-that-died"


def _leave_claimed(concierge: Concierge, message: dict, lease_until: datetime) -> None:
    """The row as a sender leaves it when it dies between its claim and its outcome."""
    concierge.dynamodb.update_item(
        TableName=concierge.resources.table_name,
        Key=store.to_item({"pk": message["pk"], "sk": message["sk"]}),
        UpdateExpression="SET #status = :sending, claim_owner = :owner, lease_until = :lease, attempts = :one",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues=store.to_item(
            {
                ":sending": "SENDING",
                ":owner": "a-sender-that-died",
                ":lease": store.iso(lease_until),
                ":one": 1,
            }
        ),
    )


def _send_as_the_dead_sender(waha: WahaSimulator, message: dict) -> None:
    body = {"chatId": message["chat_id"], "text": message["text"], "session": "default"}
    body["id"] = waha_message_id(message["message_id"])
    response = urllib3.request("POST", f"{waha.url}/api/sendText", json=body)
    assert response.status == 201


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


# --- records whose row is not (yet) there ---------------------------------------------------------------------


def _queue_unwritten(concierge: Concierge) -> store.StoredMessage:
    """A reply whose key is queued (callers queue before they commit) but whose row is not written yet."""
    message = store.StoredMessage(
        user_id=str(uuid.uuid4()),
        message_id=str(uuid.uuid4()),
        session_id=str(uuid.uuid4()),
        role="System",
        text="Terima kasih atas pesan Anda.",
        created_at=store.iso(datetime.now(UTC)),
        status=store.PENDING,
        chat_id="6281234567890@c.us",
        queued=True,
    )
    concierge.sqs.send_message(QueueUrl=concierge.resources.outbound_queue_url, MessageBody=outbox.body(message.key))
    return message


def test_record_that_arrives_before_its_row_commits_is_sent_once_the_row_is_there(concierge: Concierge) -> None:
    """A young record whose row is missing goes back to the queue; once the row is committed it is sent."""
    message = _queue_unwritten(concierge)
    (record,) = _receive(concierge)

    early = _send(concierge, [record])
    concierge.dynamodb.put_item(TableName=concierge.resources.table_name, Item=store.to_item(message.item()))
    later = _send(concierge, [record])

    assert len(early["batchItemFailures"]) == 1 and later == {"batchItemFailures": []}
    (sent,) = concierge.waha.sent_messages()
    assert sent["body"]["id"] == waha_message_id(message.message_id)


def test_old_record_whose_row_never_committed_is_dropped(concierge: Concierge) -> None:
    """A record for a row that was never written (its transaction was cancelled) is dropped once it is old."""
    _queue_unwritten(concierge)
    (record,) = _receive(concierge)
    record["Attributes"]["SentTimestamp"] = str(int((time.time() - 600) * 1000))

    result = _send(concierge, [record])

    assert result == {"batchItemFailures": []} and concierge.waha.sent_messages() == []


# --- WAHA's API key -------------------------------------------------------------------------------------------


def test_rotated_waha_api_key_is_used_once_the_cached_one_is_five_minutes_old(
    concierge: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key in SSM is rotated: within five minutes the sender uses the new key, without a new container."""
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/concierge/test/waha-api-key", Type="SecureString", Value="key-before")
    monkeypatch.setenv("WAHA_API_KEY_PARAM", "/concierge/test/waha-api-key")
    secrets.forget()
    with WahaSimulator(api_key="key-before") as protected:
        monkeypatch.setenv("WAHA_HOST", protected.url)
        forget_cached_clients()
        concierge.register()
        concierge.deliver_queued()
        pool = waha.client().pool

        ssm.put_parameter(Name="/concierge/test/waha-api-key", Value="key-after", Overwrite=True)
        protected.set_api_key("key-after")
        later = time.monotonic() + secrets.CACHE_SECONDS + 1
        monkeypatch.setattr(secrets, "time", SimpleNamespace(monotonic=lambda: later))
        concierge.register(phone_number="081234567891")
        result = _send(concierge, _receive(concierge))

        assert result == {"batchItemFailures": []}
        assert len(protected.sent_messages()) == 2
        assert waha.client().pool is pool
    secrets.forget()


def test_waha_ids_match_our_pre_generated_id_with_or_without_the_chat_prefix() -> None:
    """WEBJS spells an id `true_<chat>_<ID>`, NOWEB and GOWS the bare `<ID>`; both are our message, others not."""
    ours = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"

    assert waha.is_pre_generated(f"true_6281234567890@c.us_{ours}", ours)
    assert waha.is_pre_generated(ours, ours)
    assert not waha.is_pre_generated(f"true_6281234567890@c.us_X{ours}", ours)
    assert not waha.is_pre_generated(f"true_6281234567890@c.us_{ours}0", ours)


# --- WAHA's ids and WhatsApp's ticks -------------------------------------------------------------------------


def test_waha_answering_an_id_of_its_own_stores_it_bare_so_its_acks_find_the_message(
    concierge: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAHA naming the message itself (not our pre-generated id): the row's `waha_id` becomes WAHA's bare id, so
    the READ tick WAHA sends for it moves the message to READ."""
    with WahaSimulator(own_ids=True) as own_ids:
        monkeypatch.setenv("WAHA_HOST", own_ids.url)
        forget_cached_clients()
        _, guest = concierge.register()
        concierge.deliver_queued()
        (sent,) = own_ids.sent_messages()

    welcome = _welcome(concierge)
    bare = sent["id"].rsplit("_", 1)[1]
    assert bare != waha_message_id(welcome["message_id"])
    assert (welcome["status"], welcome["waha_message_id"], welcome["waha_id"]) == ("SENT", sent["id"], bare)
    status, body = concierge.ack(sent["id"], 3)
    assert status == 200 and (body["outcome"], body["status"]) == ("updated", "READ")
    (message,) = concierge.conversation(guest["user_id"])
    assert message["status"] == "READ" and message["read_at"]


def test_waha_keeping_our_id_leaves_the_index_key_as_written(concierge: Concierge) -> None:
    """WEBJS answers `true_<chat>_<our id>`: the same message, so `waha_id` stays our bare pre-generated id."""
    concierge.register()
    concierge.deliver_queued()

    welcome = _welcome(concierge)
    assert welcome["waha_message_id"].startswith("true_")
    assert welcome["waha_id"] == keys.outbound_waha_id(welcome["message_id"]) == waha_message_id(welcome["message_id"])


@pytest.mark.parametrize(("ack", "status"), [(2, "DELIVERED"), (3, "READ")])
def test_record_of_a_message_already_delivered_or_read_is_skipped_quietly(
    concierge: Concierge, caplog: pytest.LogCaptureFixture, ack: int, status: str
) -> None:
    """A redelivered record whose message WhatsApp has since delivered or read counts as already sent: nothing
    is sent again, the tick is kept, and it is an info line, not a warning."""
    concierge.register()
    (record,) = _receive(concierge)
    assert _send(concierge, [record]) == {"batchItemFailures": []}
    welcome = _welcome(concierge)
    concierge.ack(our_waha_id(welcome["message_id"]), ack)
    caplog.set_level(logging.INFO, logger="concierge")
    caplog.clear()

    outcome = _batch(concierge, [record]).deliver(_records(concierge, [record])[0])

    assert outcome == "already_sent"
    assert _welcome(concierge)["status"] == status
    assert len(concierge.waha.sent_messages()) == 1
    warnings = [
        r.getMessage() for r in caplog.records if r.name.startswith("concierge") and r.levelno >= logging.WARNING
    ]
    assert warnings == []
