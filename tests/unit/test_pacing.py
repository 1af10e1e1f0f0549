"""Sending like a person: seen, typing and a pause before a reply; slots per chat and per account shared by every
sender; no message to a number that is not on WhatsApp. Through the handlers, moto, and the WAHA simulator over
HTTP, whose log of calls per chat gives the order and the times."""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

import boto3
import pytest
import urllib3

from concierge.sending import delivery, pacing
from devstack.resources import LocalResources
from devstack.sender import sqs_record
from devstack.waha_sim import WahaSimulator
from tests.conftest import forget_cached_clients, lambda_context
from tests.driver import GUEST, GUEST_CHAT_ID, Concierge, waha_message
from tests.lambda_events import sqs_event

# Short settings: a pause of at most 0.3 s, 1 s between two messages to a chat, 120 a minute (0.5 s apart).
PACED = {
    "TYPING_SECONDS_MAX": "0.3",
    "MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT": "1",
    "MAX_MESSAGES_PER_MINUTE": "120",
    "AUTO_REPLY_COOLDOWN_MINUTES": "0",
}
ACCOUNT_GAP_SECONDS = 60 / 120


@pytest.fixture
def paced(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> Concierge:
    for name, value in PACED.items():
        monkeypatch.setenv(name, value)
    forget_cached_clients()
    return concierge


def _phone(index: int) -> str:
    return f"08123456780{index}"


def _chat(index: int) -> str:
    return f"628123456780{index}@c.us"


def _calls(waha: WahaSimulator, chat: str = GUEST_CHAT_ID) -> list[str]:
    return [call["call"] for call in waha.calls(chat)[chat]]


def _sends(waha: WahaSimulator, chat: str | None = None) -> list[dict[str, Any]]:
    """Every sendText the simulator took (to one chat, or to any), in the order it took them."""
    chats = waha.calls(chat) if chat else waha.calls()
    sends = [call for calls in chats.values() for call in calls if call["call"] == "sendText" and call["status"] == 201]
    return sorted(sends, key=lambda call: call["at"])


def _gaps(sends: list[dict[str, Any]]) -> list[float]:
    return [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(sends)]


def _guest_writes(concierge: Concierge, text: str, chat: str = GUEST_CHAT_ID) -> dict[str, Any]:
    delivery_ = waha_message(chat_id=chat, text=text)
    status, body = concierge.webhook(delivery_)
    assert status == 200 and body["outcome"] == "stored", body
    return delivery_


# --- seen, typing, pause ----------------------------------------------------------------------------------------


def test_a_reply_marks_the_guests_message_seen_and_types_before_it_is_sent(paced: Concierge) -> None:
    """The welcome: the number's check, typing, the send. The reply: sendSeen for the guest's message, typing, send."""
    _, guest = paced.register()
    paced.deliver_all()
    written = _guest_writes(paced, "Is breakfast included?")

    paced.deliver_all()

    assert _calls(paced.waha) == [
        "checkExists",
        "startTyping",
        "stopTyping",
        "sendText",
        "sendSeen",
        "startTyping",
        "stopTyping",
        "sendText",
    ]
    seen = next(call for call in paced.waha.calls(GUEST_CHAT_ID)[GUEST_CHAT_ID] if call["call"] == "sendSeen")
    assert seen["messageIds"] == [written["payload"]["id"]] and seen["status"] == 201
    assert [message["status"] for message in paced.conversation(guest["user_id"])] == [
        "SENT",
        "RECEIVED",
        "SENT",
    ]


def test_the_pause_grows_with_the_text_up_to_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short text types for the least pause, a longer one longer, and none longer than TYPING_SECONDS_MAX."""
    monkeypatch.setenv("TYPING_SECONDS_MAX", "3")
    forget_cached_clients()

    short, longer, longest = (pacing.typing_seconds("x" * length) for length in (5, 80, 2000))

    assert short == pacing.MIN_TYPING_SECONDS < longer < longest == 3


def test_typing_off_still_marks_the_message_seen_and_sends_at_once(concierge: Concierge) -> None:
    """TYPING_SECONDS_MAX=0 (the tests' default): no typing calls; a reply is still preceded by sendSeen."""
    concierge.register()
    concierge.deliver_all()
    _guest_writes(concierge, "Hello")

    concierge.deliver_all()

    assert _calls(concierge.waha) == ["checkExists", "sendText", "sendSeen", "sendText"]


@pytest.mark.parametrize("fault", ["error500", "slow"])
def test_seen_and_typing_failures_never_hold_up_the_send(paced: Concierge, fault: str) -> None:
    """sendSeen and the typing calls refused (500) or hanging (longer than the pause): the reply still goes, at once."""
    _, guest = paced.register()
    paced.deliver_all()
    paced.waha.set_courtesy_fault(fault)
    _guest_writes(paced, "Can I check out late?")

    paced.deliver_all()

    reply = paced.conversation(guest["user_id"])[-1]
    assert reply["status"] == "SENT" and "error" not in reply
    calls = paced.waha.calls(GUEST_CHAT_ID)[GUEST_CHAT_ID]
    if fault == "error500":
        assert [(call["call"], call["status"]) for call in calls][-4:] == [
            ("sendSeen", 500),
            ("startTyping", 500),
            ("stopTyping", 500),
            ("sendText", 201),
        ]
    else:
        # The hanging calls give up at the slot (a call with no time left is not made); the send keeps its time.
        after_seen = [call["call"] for call in calls][[call["call"] for call in calls].index("sendSeen") :]
        assert after_seen[-1] == "sendText" and set(after_seen[1:-1]) <= {"startTyping", "stopTyping"}
    # One attempt: nothing failed.
    (row,) = [item for item in paced.items_of_type("Message") if item["message_id"] == reply["id"]]
    assert row["attempts"] == 1


# --- slots per chat and per account ---------------------------------------------------------------------------


def test_one_chats_messages_go_in_order_and_at_least_the_minimum_apart(paced: Concierge) -> None:
    """Three quick lines, three replies: sent in the order they were written, each at least 1 s after the last."""
    _, guest = paced.register()
    paced.deliver_all()
    for text in ("One", "Two", "Three"):
        _guest_writes(paced, text)

    paced.deliver_all()

    sends = _sends(paced.waha, GUEST_CHAT_ID)
    ours = [m for m in paced.conversation(guest["user_id"]) if m["role"] == "System"]
    assert [send["id"].rsplit("_", 1)[-1] for send in sends] == [m["id"].replace("-", "").upper() for m in ours]
    assert len(sends) == 4 and min(_gaps(sends)) >= 1.0
    assert all(m["status"] == "SENT" for m in ours)


def test_the_account_limit_spaces_every_send_and_a_waiting_chat_holds_up_no_other(
    paced: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guest A writes three lines, then guest B one: A's replies keep 2 s apart, B's reply goes in between
    rather than after them, and no two sends of the account are closer than 60 s / 120."""
    monkeypatch.setenv("MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT", "2")
    forget_cached_clients()
    for index in (1, 2):
        paced.register(phone_number=_phone(index))
    paced.deliver_all()
    for text in ("A1", "A2", "A3"):
        _guest_writes(paced, text, _chat(1))
    _guest_writes(paced, "B1", _chat(2))

    paced.deliver_all()

    a_sends, b_sends = _sends(paced.waha, _chat(1)), _sends(paced.waha, _chat(2))
    assert len(a_sends) == 4 and len(b_sends) == 2
    assert min(_gaps(a_sends)) >= 2.0
    assert b_sends[-1]["at"] < a_sends[-2]["at"]
    assert min(_gaps(_sends(paced.waha))) >= ACCOUNT_GAP_SECONDS


def test_a_message_far_from_its_slot_is_queued_again_without_spending_a_receive(
    paced: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replies 6 s apart in one chat: the second is not waited for. Its record ends, a new one carries the slot
    and the receives so far (none), and comes back in time to be sent."""
    monkeypatch.setenv("MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT", "6")
    forget_cached_clients()
    _, guest = paced.register()
    paced.deliver_all()
    first_sent = _sends(paced.waha, GUEST_CHAT_ID)[-1]["at"]
    _guest_writes(paced, "Where is the pool?")
    records = paced.sqs.receive_message(
        QueueUrl=paced.resources.outbound_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]

    result = paced.handlers["SendWhatsappFunction"](
        sqs_event(records, paced.resources.queue_arns["OutboundQueue"]), lambda_context("SendWhatsappFunction", 30)
    )

    # The record succeeded (Lambda deletes it); nothing was sent yet; a delayed record holds the slot.
    assert result == {"batchItemFailures": []} and len(_sends(paced.waha, GUEST_CHAT_ID)) == 1
    paced.sqs.delete_message(QueueUrl=paced.resources.outbound_queue_url, ReceiptHandle=records[0]["ReceiptHandle"])
    assert paced.waiting_records() == 1
    paced.deliver_all()
    sends = _sends(paced.waha, GUEST_CHAT_ID)
    assert len(sends) == 2 and sends[1]["at"] - first_sent >= 6
    reply = paced.conversation(guest["user_id"])[-1]
    assert reply["status"] == "SENT"
    (row,) = [item for item in paced.items_of_type("Message") if item["message_id"] == reply["id"]]
    assert row["attempts"] == 1


def test_a_later_message_that_took_a_slot_first_makes_way_for_an_earlier_one(
    paced: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replies to one guest whose records reach senders in the wrong order (the later one first): both wait in
    the queue (4 a minute leaves them far off), and the earlier reply ends up with the earlier slot."""
    monkeypatch.setenv("MAX_MESSAGES_PER_MINUTE", "4")
    forget_cached_clients()
    _, guest = paced.register()
    paced.deliver_all()
    for text in ("First question", "Second question"):
        _guest_writes(paced, text)
    records = paced.sqs.receive_message(
        QueueUrl=paced.resources.outbound_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    earlier, later = sorted(records, key=lambda record: json.loads(record["Body"])["sk"])

    for record in (later, earlier):
        result = paced.handlers["SendWhatsappFunction"](
            sqs_event([record], paced.resources.queue_arns["OutboundQueue"]), lambda_context("SendWhatsappFunction")
        )
        assert result == {"batchItemFailures": []}

    (schedule,) = paced.items_of_type("SendPacing")
    reserved = schedule["chats"][guest["user_id"]]
    earlier_sk, later_sk = (json.loads(record["Body"])["sk"] for record in (earlier, later))
    assert reserved[earlier_sk] < reserved[later_sk]
    assert reserved[later_sk] - reserved[earlier_sk] >= 60 / 4
    assert paced.waiting_records() == 2 and len(_sends(paced.waha, GUEST_CHAT_ID)) == 1


def test_receives_spent_waiting_do_not_count_but_failures_do(paced: Concierge) -> None:
    """A record that replaced others carries their receives: failing on what is the fifth receive by that count,
    the message is FAILED and moved to the dead-letter queue by the sender, though SQS counted the record once."""
    _, guest = paced.register()
    (original,) = paced.sqs.receive_message(QueueUrl=paced.resources.outbound_queue_url)["Messages"]
    paced.sqs.delete_message(QueueUrl=paced.resources.outbound_queue_url, ReceiptHandle=original["ReceiptHandle"])
    key = json.loads(original["Body"])
    paced.sqs.send_message(QueueUrl=paced.resources.outbound_queue_url, MessageBody=json.dumps({**key, "receives": 4}))
    paced.waha.set_fault("error500")

    paced.deliver_all()

    (welcome,) = paced.conversation(guest["user_id"])
    assert welcome["status"] == "FAILED" and welcome["error"].startswith("WAHA answered 500")
    (dead,) = paced.sqs.receive_message(QueueUrl=paced.resources.dead_letter_queue_url)["Messages"]
    assert json.loads(dead["Body"]) == key
    assert paced.queue_depth() == 0 and paced.waiting_records() == 0


def test_a_record_handed_on_for_its_slot_keeps_the_count_of_real_receives(paced: Concierge) -> None:
    """A failed attempt, then a wait for the slot: the new record says one receive so far, not two."""
    receives = pacing.receive_count(
        {
            "body": json.dumps({"pk": "USER#u", "sk": "MSG#x", "receives": 1}),
            "attributes": {"ApproximateReceiveCount": "2"},
        }
    )
    assert receives == 3
    entry = pacing._Entry({}, {"pk": "USER#u", "sk": "MSG#x"}, {}, receives, send_at=10.0)
    assert json.loads(pacing._requeued_body(entry)) == {"pk": "USER#u", "sk": "MSG#x", "receives": 2}


# --- not on WhatsApp ----------------------------------------------------------------------------------------------


def test_a_number_not_on_whatsapp_gets_nothing_and_its_messages_fail(paced: Concierge) -> None:
    """check-exists says no: the welcome ends FAILED `not on WhatsApp`, no typing and no send reach the chat, the
    answer is kept on the profile, and a later staff reply fails the same way without asking again."""
    paced.waha.set_not_on_whatsapp([GUEST_CHAT_ID])
    _, guest = paced.register()

    paced.deliver_all()

    (welcome,) = paced.conversation(guest["user_id"])
    assert (welcome["status"], welcome["error"]) == ("FAILED", "not on WhatsApp")
    assert _calls(paced.waha) == ["checkExists"]
    (profile,) = [item for item in paced.items_of_type("User") if item["user_id"] == guest["user_id"]]
    assert profile["on_whatsapp"] is False
    status, _ = paced.staff_reply(guest["session_id"], "We tried to reach you.")
    assert status == 202
    paced.deliver_all()
    assert _calls(paced.waha) == ["checkExists"]
    assert [(m["status"], m.get("error")) for m in paced.conversation(guest["user_id"])] == [
        ("FAILED", "not on WhatsApp")
    ] * 2
    assert paced.queue_depth("OutboundDeadLetterQueue") == 0


@pytest.mark.parametrize("mode", ["missing", "error500"])
def test_a_failing_check_is_not_a_no(paced: Concierge, mode: str) -> None:
    """check-exists answering 404 (an engine without it) or 500: the welcome is sent as before, and the number is
    asked again before the next first message, since nothing was learnt."""
    paced.waha.set_check_exists(mode)
    _, guest = paced.register()

    paced.deliver_all()

    (welcome,) = paced.conversation(guest["user_id"])
    assert welcome["status"] == "SENT"
    assert _calls(paced.waha)[:1] == ["checkExists"] and _calls(paced.waha)[-1] == "sendText"
    (profile,) = [item for item in paced.items_of_type("User") if item["user_id"] == guest["user_id"]]
    assert "on_whatsapp" not in profile


def test_waha_down_for_the_check_is_not_a_no(concierge: Concierge) -> None:
    """WAHA unreachable: the check tells nothing, the send fails as before and is retried; once WAHA is back, the
    number is checked and the welcome sent."""
    concierge.waha.set_fault("down")
    _, guest = concierge.register()
    concierge.deliver_queued()  # every receive fails while WAHA is down...
    concierge.waha.set_fault("ok")
    dead = concierge.sqs.receive_message(QueueUrl=concierge.resources.dead_letter_queue_url)["Messages"]
    concierge.sqs.send_message(QueueUrl=concierge.resources.outbound_queue_url, MessageBody=dead[0]["Body"])

    concierge.deliver_all()  # ...and the redriven record goes through

    # A dropped connection may have sent: WAHA's chat is looked at before the send.
    (welcome,) = concierge.conversation(guest["user_id"])
    assert welcome["status"] == "SENT" and _calls(concierge.waha) == ["checkExists", "chatMessages", "sendText"]


def test_a_guest_who_writes_is_on_whatsapp_whatever_an_old_answer_said(paced: Concierge) -> None:
    """A stored "no" does not stop a reply to the guest's own message (they wrote on WhatsApp); the answer flips."""
    paced.waha.set_not_on_whatsapp([GUEST_CHAT_ID])
    _, guest = paced.register()
    paced.deliver_all()
    paced.waha.set_not_on_whatsapp([])
    _guest_writes(paced, "I have WhatsApp now")

    paced.deliver_all()

    assert paced.conversation(guest["user_id"])[-1]["status"] == "SENT"
    (profile,) = [item for item in paced.items_of_type("User") if item["user_id"] == guest["user_id"]]
    assert profile["on_whatsapp"] is True


# --- several senders at once --------------------------------------------------------------------------------------


def test_senders_running_at_once_share_one_schedule(
    shared_table: LocalResources, waha_sim: WahaSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four senders on one queue at the same moment, eight guests' welcomes: every slot is taken by one conditional
    write, so the account's sends stay 60 s / 120 apart and each welcome goes once."""
    from concierge.guests.registration import RegistrationRequest, register_guest

    for name, value in PACED.items():
        monkeypatch.setenv(name, value)
    forget_cached_clients()
    for index in range(8):
        register_guest(RegistrationRequest.model_validate({**GUEST, "phone_number": f"0812345679{index:02d}"}))
    sqs = boto3.client("sqs")
    arn = shared_table.queue_arns["OutboundQueue"]

    def sender() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            messages = sqs.receive_message(
                QueueUrl=shared_table.outbound_queue_url, MaxNumberOfMessages=3, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                depth = sqs.get_queue_attributes(QueueUrl=shared_table.outbound_queue_url, AttributeNames=["All"])
                waiting = depth["Attributes"]
                if sum(int(waiting[name]) for name in _DEPTHS) == 0:
                    return
                time.sleep(0.05)
                continue
            records = [sqs_record(message, arn) for message in messages]
            batch = delivery.Batch(pacing.ordered(records), lambda: 30_000)
            for record in batch.send_order(records):
                try:
                    batch.deliver(record)
                except Exception:  # noqa: S112 - a failed record comes back, as with SQS
                    continue
                sqs.delete_message(QueueUrl=shared_table.outbound_queue_url, ReceiptHandle=record["receiptHandle"])

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sends = _sends(waha_sim)
    assert len(sends) == 8 and len({send["id"] for send in sends}) == 8
    assert min(_gaps(sends)) >= ACCOUNT_GAP_SECONDS


_DEPTHS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")


# --- the simulator's share ----------------------------------------------------------------------------------------


def _http(waha: WahaSimulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = urllib3.request(
        method,
        waha.url + path,
        body=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    return response.status, json.loads(response.data) if response.data else None


def test_the_simulator_checks_numbers_and_validates_seen_and_typing_as_waha(waha_sim: WahaSimulator) -> None:
    """check-exists answers WANumberExistResult (numbers listed through /api/sim/not-on-whatsapp say no); sendSeen
    and the typing calls are checked against WAHA's request schemas; /api/sim/messages lists each chat's calls."""
    status, listed = _http(waha_sim, "POST", "/api/sim/not-on-whatsapp", {"phones": ["081234567891"]})
    assert status == 200 and listed == {"not_on_whatsapp": ["*********7891"]}

    assert _http(waha_sim, "GET", "/api/contacts/check-exists?phone=6281234567891&session=default") == (
        200,
        {"numberExists": False},
    )
    assert _http(waha_sim, "GET", "/api/contacts/check-exists?phone=6281234567890&session=default") == (
        200,
        {"numberExists": True, "chatId": GUEST_CHAT_ID},
    )
    assert _http(waha_sim, "GET", "/api/contacts/check-exists?session=default")[0] == 400
    assert _http(waha_sim, "POST", "/api/sendSeen", {"session": "default"})[0] == 400
    assert _http(waha_sim, "POST", "/api/startTyping", {"chatId": GUEST_CHAT_ID, "session": "other"})[0] == 422
    assert _http(waha_sim, "POST", "/api/sendSeen", {"chatId": GUEST_CHAT_ID, "session": "default"})[0] == 201
    assert _http(waha_sim, "POST", "/api/startTyping", {"chatId": GUEST_CHAT_ID, "session": "default"}) == (201, None)
    _http(waha_sim, "POST", "/api/sim/check-exists", {"mode": "missing"})
    assert _http(waha_sim, "GET", "/api/contacts/check-exists?phone=6281234567890&session=default")[0] == 404

    status, seen = _http(waha_sim, "GET", "/api/sim/messages")
    assert status == 200 and seen["messages"] == []
    assert [(call["call"], call["status"]) for call in seen["calls"][GUEST_CHAT_ID]] == [
        ("checkExists", 200),
        ("startTyping", 422),
        ("sendSeen", 201),
        ("startTyping", 201),
        ("checkExists", 404),
    ]
    assert _http(waha_sim, "POST", "/api/sim/check-exists", {"mode": "sometimes"})[0] == 400


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TYPING_SECONDS_MAX", "6"),
        ("TYPING_SECONDS_MAX", "-1"),
        ("MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT", "two"),
        ("MAX_MESSAGES_PER_MINUTE", "2.5"),
    ],
)
def test_a_pacing_setting_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """A deployment mistake is named when the sender starts, not guessed around."""
    from concierge import config

    monkeypatch.setenv(name, value)
    forget_cached_clients()

    with pytest.raises(config.InvalidSetting, match=name):
        config.pacing_settings()
