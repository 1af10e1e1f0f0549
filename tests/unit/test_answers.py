"""The AI concierge end to end through the real handlers: answers from the hotel's file, requests routed to a
department, everything else to staff with the guide's auto-reply; the webhook never waits for any of it."""

from __future__ import annotations

import json
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.calls import count_calls
from concierge.answers import knowledge
from devstack.converse_sim import ConverseSimulator
from tests.conftest import forget_cached_clients
from tests.driver import Concierge, waha_message

SAMPLE = Path(__file__).resolve().parents[2] / "hotels" / "sample-hotel.toml"
HOTEL = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))
FAQ = {faq["id"]: faq for faq in HOTEL["faq"]}
DEPARTMENT = {request["department"]: request for request in HOTEL["request"]}
AUTO_REPLY_ID = "Terima kasih atas pesan Anda."


@pytest.fixture
def answering(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> Concierge:
    """The stack as deployed with AI_ANSWERS on (the default) and the sample hotel's file."""
    monkeypatch.setenv("ANSWER_QUEUE_URL", concierge.resources.queue_urls["AnswerQueue"])
    monkeypatch.setenv("KNOWLEDGE_FILE", str(SAMPLE))
    monkeypatch.delenv("AI_ANSWERS", raising=False)
    knowledge.configured.cache_clear()
    forget_cached_clients()
    yield concierge
    knowledge.configured.cache_clear()


def _guest(concierge: Concierge, **changes: Any) -> dict[str, Any]:
    status, guest = concierge.register(**changes)
    assert status == 201, guest
    concierge.deliver_queued()
    return guest


def _say(concierge: Concierge, text: str) -> None:
    status, body = concierge.webhook(waha_message(text=text))
    assert status == 200 and body["outcome"] == "stored", body


def _bot_replies(concierge: Concierge, user_id: str) -> list[dict[str, Any]]:
    return [m for m in concierge.conversation(user_id) if m["role"] == "System"][1:]  # the welcome first


def _sent_texts(concierge: Concierge) -> list[str]:
    return [sent["text"] for sent in concierge.waha.sent_messages()]


def test_a_question_the_file_answers_gets_its_answer_as_written(answering: Concierge) -> None:
    guest = _guest(answering)
    _say(answering, "wifi nya apa ya kak")

    assert _bot_replies(answering, guest["user_id"]) == []  # the webhook only stored and queued it
    assert answering.answer_queued() == 1
    answering.deliver_queued()

    [reply] = _bot_replies(answering, guest["user_id"])
    assert reply["text"] == FAQ["wifi"]["answer"]["id"]
    assert (reply["kind"], reply["faq_id"], reply["language"], reply["status"]) == ("answer", "wifi", "id", "SENT")
    assert _sent_texts(answering)[-1] == FAQ["wifi"]["answer"]["id"]
    _, listed = answering.sessions(status="waiting")
    assert listed["sessions"] == []  # answered: nobody owes the guest anything


def test_the_answer_is_in_the_language_the_guest_wrote_in(answering: Concierge) -> None:
    guest = _guest(answering)  # an Indonesian number: stored language id
    _say(answering, "what time is breakfast?")
    answering.answer_queued()

    [reply] = _bot_replies(answering, guest["user_id"])
    assert reply["text"] == FAQ["breakfast"]["answer"]["en"]
    assert reply["language"] == "en"


def test_a_request_gets_the_departments_reply_and_waits_for_that_department(answering: Concierge) -> None:
    guest = _guest(answering)
    _say(answering, "Saya butuh handuk tambahan ya kak")
    answering.answer_queued()

    [reply] = _bot_replies(answering, guest["user_id"])
    assert reply["text"] == DEPARTMENT["housekeeping"]["reply"]["id"]
    assert (reply["kind"], reply["department"]) == ("request", "housekeeping")
    _, waiting = answering.sessions(status="waiting")
    [entry] = waiting["sessions"]
    assert entry["request"]["department"] == "housekeeping"
    assert entry["request"]["text"] == "Saya butuh handuk tambahan ya kak"
    assert entry["waiting_since"] == entry["request"]["at"]

    status, _ = answering.staff_reply(entry["session_id"], "Handuk sudah di jalan.")
    assert status == 202
    _, after = answering.sessions(status="open")
    [entry] = after["sessions"]
    assert entry["request"] is None and entry["waiting_since"] is None


def test_resolve_ends_a_request_too(answering: Concierge) -> None:
    _guest(answering)
    _say(answering, "AC di kamar tidak dingin")
    answering.answer_queued()
    _, waiting = answering.sessions(status="waiting")
    [entry] = waiting["sessions"]
    assert entry["request"]["department"] == "maintenance"

    answering.resolve(entry["session_id"])

    _, waiting = answering.sessions(status="waiting")
    assert waiting["sessions"] == []


def test_anything_else_gets_the_guides_auto_reply_and_waits_for_staff(answering: Concierge) -> None:
    guest = _guest(answering)
    _say(answering, "Bisa minta diskon untuk spa?")
    answering.answer_queued()

    [reply] = _bot_replies(answering, guest["user_id"])
    assert reply["kind"] == "auto_reply" and reply["text"].startswith(AUTO_REPLY_ID)
    _, waiting = answering.sessions(status="waiting")
    [entry] = waiting["sessions"]
    assert entry["request"] is None
    [question] = [m for m in answering.conversation(guest["user_id"]) if m["role"] == "User"]
    assert question["routed"]["to"] == "staff"


def test_three_quick_lines_for_staff_still_get_one_auto_reply(answering: Concierge) -> None:
    guest = _guest(answering)
    for text in ("halo", "kamar saya bau", "tolong ya"):
        _say(answering, text)
    answering.answer_queued()

    replies = _bot_replies(answering, guest["user_id"])
    assert [reply["kind"] for reply in replies] == ["auto_reply"]


def test_two_questions_in_a_row_get_two_answers_whatever_the_cooldown(answering: Concierge) -> None:
    guest = _guest(answering)
    _say(answering, "halo kak")  # small talk: the auto-reply starts its cooldown
    _say(answering, "jam brp sarapan?")
    _say(answering, "password wifi nya apa")
    answering.answer_queued()

    kinds = [(reply["kind"], reply.get("faq_id")) for reply in _bot_replies(answering, guest["user_id"])]
    assert sorted(kinds, key=str) == sorted(
        [("auto_reply", None), ("answer", "breakfast"), ("answer", "wifi")], key=str
    )


def test_one_message_asking_two_things_the_file_answers_gets_both(answering: Concierge) -> None:
    guest = _guest(answering)
    _say(answering, "what time is breakfast? and what's the wifi password?")
    answering.answer_queued()

    assert [reply.get("faq_id") for reply in _bot_replies(answering, guest["user_id"])] == ["breakfast", "wifi"]


def test_with_ai_answers_off_every_message_gets_the_auto_reply_at_once(
    answering: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_ANSWERS", "off")
    forget_cached_clients()
    guest = _guest(answering)
    _say(answering, "wifi nya apa ya kak")

    [reply] = _bot_replies(answering, guest["user_id"])
    assert reply["kind"] == "auto_reply"
    assert answering.queue_depth("AnswerQueue") == 0


def test_nothing_is_answered_while_staff_handle_the_conversation(answering: Concierge) -> None:
    guest = _guest(answering)
    _, listed = answering.sessions(status="open")
    answering.staff_reply(listed["sessions"][0]["session_id"], "Selamat datang, ada yang bisa dibantu?")
    _say(answering, "jam berapa sarapan?")

    assert answering.queue_depth("AnswerQueue") == 0
    assert [m["role"] for m in answering.conversation(guest["user_id"])][-1] == "User"


def test_a_handoff_begun_after_the_webhook_queued_the_message_keeps_the_bot_quiet(answering: Concierge) -> None:
    guest = _guest(answering)
    _say(answering, "jam berapa sarapan?")
    _, listed = answering.sessions(status="open")
    answering.staff_reply(listed["sessions"][0]["session_id"], "Saya bantu ya.")

    answering.answer_queued()

    assert [m["role"] for m in answering.conversation(guest["user_id"])][-2:] == ["User", "Staff"]
    question = next(m for m in answering.conversation(guest["user_id"]) if m["role"] == "User")
    assert question["routed"]["to"] == "staff"


def test_a_redelivered_answer_job_answers_once(answering: Concierge) -> None:
    guest = _guest(answering)
    _say(answering, "where can I park my car?")
    queue = answering.resources.queue_urls["AnswerQueue"]
    [record] = answering.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"]
    answering.sqs.send_message(QueueUrl=queue, MessageBody=record["Body"])  # SQS hands it over twice
    answering.sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=record["ReceiptHandle"], VisibilityTimeout=0)

    assert answering.answer_queued() == 2

    assert [reply.get("faq_id") for reply in _bot_replies(answering, guest["user_id"])] == ["parking"]


def test_without_a_knowledge_file_every_message_waits_for_staff(
    answering: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWLEDGE_FILE", "")
    knowledge.configured.cache_clear()
    guest = _guest(answering)
    _say(answering, "What is the wifi password?")
    answering.answer_queued()

    [reply] = _bot_replies(answering, guest["user_id"])
    assert reply["kind"] == "auto_reply"


def test_the_webhook_stays_at_three_calls_and_the_answer_costs_four(answering: Concierge) -> None:
    _guest(answering)

    webhook = count_calls(lambda: answering.webhook(waha_message(text="is there a gym?")))
    answer = count_calls(answering.answer_queued)

    assert webhook == Counter({"DynamoDB.BatchGetItem": 1, "DynamoDB.TransactWriteItems": 1, "SQS.SendMessage": 1})
    # The message and profile, then the phone's lookup; the reply queued; one transaction (the poller's own
    # ReceiveMessage and DeleteMessageBatch are the trigger's, not the function's).
    assert answer["DynamoDB.BatchGetItem"] == 2
    assert answer["DynamoDB.TransactWriteItems"] == 1
    assert answer["SQS.SendMessage"] == 1


def test_an_answer_job_refused_by_sqs_is_swept_to_the_answer_queue(
    answering: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest = _guest(answering)
    monkeypatch.setenv("ANSWER_QUEUE_URL", answering.resources.queue_urls["AnswerQueue"] + "-missing")
    forget_cached_clients()
    _say(answering, "is there a gym?")
    monkeypatch.setenv("ANSWER_QUEUE_URL", answering.resources.queue_urls["AnswerQueue"])
    forget_cached_clients()
    [question] = [item for item in answering.items() if item.get("role") == "User"]
    assert question["outbox_pk"] == "UNANSWERED"

    from datetime import UTC, datetime, timedelta

    from concierge.sending import outbox

    assert outbox.sweep(datetime.now(UTC) + timedelta(minutes=5)) == 1
    answering.answer_queued()

    assert [reply.get("faq_id") for reply in _bot_replies(answering, guest["user_id"])] == ["gym"]
    [question] = [item for item in answering.items() if item.get("role") == "User"]
    assert "outbox_pk" not in question


def test_the_history_says_where_each_message_went(answering: Concierge) -> None:
    guest = _guest(answering)
    _say(answering, "I need more towels")
    answering.answer_queued()

    question = next(m for m in answering.conversation(guest["user_id"]) if m["role"] == "User")
    assert question["routed"] == {"to": "request", "engine": "builtin", "department": "housekeeping"}
    assert json.dumps(question)  # plain JSON


@pytest.fixture
def with_bedrock(answering: Concierge, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConverseSimulator]:
    """AI_MODEL_ID set: the answering function asks the Converse simulator first."""
    from concierge.answers import answering as answering_module
    from concierge.answers import bedrock

    with ConverseSimulator(hang_seconds=1.0) as simulator:
        monkeypatch.setenv("AI_MODEL_ID", "amazon.nova-lite-v1:0")
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", simulator.url)
        monkeypatch.setenv("AI_MODEL_TIMEOUT_SECONDS", "0.3")
        monkeypatch.setattr(answering_module, "_bedrock_resting_until", [0.0])
        bedrock.client.cache_clear()
        forget_cached_clients()
        yield simulator
        bedrock.client.cache_clear()


def test_with_a_model_bedrock_classifies_and_sees_only_this_sessions_messages(
    answering: Concierge, with_bedrock: ConverseSimulator
) -> None:
    other = _guest(answering, phone_number="081299990000", full_name="Other Guest")
    answering.webhook(waha_message(chat_id="6281299990000@c.us", text="my secret plans"))
    answering.answer_queued()
    guest = _guest(answering)
    _say(answering, "halo")
    answering.answer_queued()
    with_bedrock.clear()

    _say(answering, "What is the wifi password?")  # a question of the file, word for word
    answering.answer_queued()

    question = [m for m in answering.conversation(guest["user_id"]) if m["role"] == "User"][-1]
    assert question["routed"] == {"to": "answer", "engine": "bedrock", "faqs": ["wifi"]}
    [request] = with_bedrock.requests()
    sent = json.dumps(request["body"])
    assert "halo" in sent and "my secret plans" not in sent
    assert other["user_id"] != guest["user_id"]


def test_when_bedrock_fails_the_built_in_engine_answers(answering: Concierge, with_bedrock: ConverseSimulator) -> None:
    guest = _guest(answering)
    with_bedrock.fail(500, times=2)

    _say(answering, "wifi nya apa ya kak")
    answering.answer_queued()

    question = [m for m in answering.conversation(guest["user_id"]) if m["role"] == "User"][-1]
    assert question["routed"] == {"to": "answer", "engine": "builtin", "faqs": ["wifi"]}


def test_three_quick_lines_in_one_batch_cost_no_cancelled_transaction(answering: Concierge) -> None:
    guest = _guest(answering)
    for text in ("halo", "kamar saya bau", "tolong ya"):
        _say(answering, text)

    calls = count_calls(answering.answer_queued)

    # Two reads for the batch, one auto-reply queued, one transaction per line (none cancelled and retried).
    assert calls["DynamoDB.BatchGetItem"] == 2
    assert calls["SQS.SendMessage"] == 1
    assert calls["DynamoDB.TransactWriteItems"] == 3
    assert [reply["kind"] for reply in _bot_replies(answering, guest["user_id"])] == ["auto_reply"]


def test_a_job_whose_message_is_never_written_is_dropped_on_its_last_receive(answering: Concierge) -> None:
    from concierge.answers.answering import AnswerLater, Batch

    record = {
        "messageId": "m-1",
        "receiptHandle": "gone",
        "body": json.dumps({"pk": "USER#nobody", "sk": "MSG#2026-01-01T00:00:00.000000Z#x"}),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
    }
    with pytest.raises(AnswerLater):
        Batch([record]).answer(record)  # young: the webhook may still be committing it

    last = {**record, "attributes": {**record["attributes"], "ApproximateReceiveCount": "5"}}
    assert Batch([last]).answer(last) == "missing"  # not sent to the dead-letter queue for nothing


def test_a_knowledge_file_that_cannot_be_used_sends_every_message_to_staff(
    answering: Concierge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "hotel.toml"
    broken.write_text(
        SAMPLE.read_text(encoding="utf-8").replace('answer.en = "Guest Wi-Fi', 'answer.xx = "Guest Wi-Fi')
    )
    monkeypatch.setenv("KNOWLEDGE_FILE", str(broken))
    knowledge.configured.cache_clear()
    guest = _guest(answering)

    _say(answering, "What is the wifi password?")
    answering.answer_queued()

    [reply] = _bot_replies(answering, guest["user_id"])
    assert reply["kind"] == "auto_reply"  # nothing lost: the guest hears from the hotel, staff see the message
    _, waiting = answering.sessions(status="waiting")
    assert len(waiting["sessions"]) == 1
