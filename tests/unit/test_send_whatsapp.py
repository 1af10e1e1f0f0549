"""The sender: queued messages reach WAHA once, failures retry, and the last failure is FAILED in the DLQ."""

from __future__ import annotations

import json

import pytest

from tests.conftest import forget_cached_clients, lambda_context
from tests.driver import Concierge
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
    assert welcome["status"] == "FAILED" and welcome["error"] == "WAHA answered 500"
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
    monkeypatch.setattr("concierge.waha.READ_TIMEOUT_SECONDS", 0.2)
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
    from devstack.waha_sim import WahaSimulator

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
